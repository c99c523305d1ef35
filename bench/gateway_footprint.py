"""Gateway footprint on a Raspberry Pi budget: resident memory and CPU.

1. The gateway daemon (a real ``homevitals gateway --simulate devices`` process) with six
   simulated devices - glucose meter (RACP download of 20 records), blood pressure, heart rate,
   pulse oximeter, CGM, BTHome call button - each sending a value every ``--interval`` seconds
   (1 s by default: an upper bound; a CGM really sends every 5 min, a BP monitor twice a day)
   to a real Mosquitto. RSS and CPU from psutil over ``--seconds``.
2. One million readings queued on disk (the home offline for weeks): insert rate through the
   gateway's own decode -> queue path (one fsync'd transaction per reading, as in service),
   bulk fill to ``--queued``, file size, the gateway process's RSS with that queue on disk while
   the broker is down, then the drain rate to Mosquitto for ``--drain`` messages.

Targets for a Pi: < 60 MB resident, < 5 % of one core. Prints figures; never gates on time.
Run: .venv/bin/python bench/gateway_footprint.py [--seconds 30] [--queued 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from servers import Mosquitto  # noqa: E402

from homevitals.gateway.gatt import RawValue  # noqa: E402
from homevitals.gateway.service import Gateway  # noqa: E402
from homevitals.infra.outbox import DurableQueue  # noqa: E402
from homevitals.simulators.ble_values import encode_bp_measurement  # noqa: E402
from homevitals.vocab.clock import SystemClock  # noqa: E402
from homevitals.vocab.config import parse_config  # noqa: E402
from homevitals.vocab.topics import Topics  # noqa: E402

TARGET_RSS_MB, TARGET_CPU = 60.0, 5.0
KINDS = ["glucose_meter", "blood_pressure", "heart_rate", "pulse_oximeter", "cgm", "call_button"]


def config(tmp: Path, port: int) -> dict[str, object]:
    devices = [{"id": f"{k.replace('_', '-')}-1", "kind": k, "patient": "ana",
                "address": f"C0:00:00:00:00:0{i}"} for i, k in enumerate(KINDS)]
    return {
        "mqtt": {"host": "127.0.0.1", "port": port},
        "homes": [{"id": "home-bench", "timezone": "Europe/Ljubljana",
                   "patients": [{"id": "ana", "name": "Ana", "care_team": [
                       {"name": "Dr. K", "role": "family_doctor", "phone": "+15550100001"}]}],
                   "devices": devices}],
        "gateway": {"home": "home-bench", "queue_path": str(tmp / "queue.sqlite"),
                    "queue_max_messages": 2_000_000, "heartbeat_seconds": 60},
    }


def start_gateway(cfg_path: Path, tmp: Path, interval: float) -> subprocess.Popen[bytes]:
    log = (tmp / "gateway.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "homevitals.roots.cli", "--log-level", "WARNING", "gateway", "-c",
         str(cfg_path), "--simulate", "devices", "--sim-interval", str(interval)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp)


def sample(proc: subprocess.Popen[bytes], seconds: float, settle: float) -> tuple[float, float]:
    """(peak RSS MB, mean CPU % of one core) after ``settle`` seconds."""
    p = psutil.Process(proc.pid)
    time.sleep(settle)
    cpu0, t0, peak = sum(p.cpu_times()[:2]), time.monotonic(), 0.0
    while time.monotonic() - t0 < seconds:
        peak = max(peak, p.memory_info().rss / 2**20)
        time.sleep(0.5)
    cpu = (sum(p.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
    return peak, cpu


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def live(tmp: Path, broker: Mosquitto, seconds: float, interval: float) -> None:
    cfg = tmp / "live.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp / "live", broker.port)), "utf-8")
    (tmp / "live").mkdir()
    proc = start_gateway(cfg, tmp / "live", interval)
    try:
        rss, cpu = sample(proc, seconds, settle=5.0)
    finally:
        stop(proc)
    print(f"six devices, one value each every {interval:g} s, {seconds:g} s sampled:")
    print(f"  gateway RSS peak {rss:.1f} MB (target < {TARGET_RSS_MB:g}),"
          f" CPU {cpu:.2f} % of one core (target < {TARGET_CPU:g})")


def fill(tmp: Path, queued: int) -> Path:
    cfg = parse_config(json.dumps(config(tmp, 1)))
    path = tmp / "queue.sqlite"
    queue = DurableQueue(path, 2_000_000)
    gw = Gateway(cfg.homes[0], queue, Topics(), SystemClock(), cfg.gateway)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        gw.deliver(RawValue("blood-pressure-1", "2A35", encode_bp_measurement(120, 80, 93),
                            start + timedelta(seconds=i)))
    rate = n / (time.perf_counter() - t0)
    print(f"queue insert through decode -> queue, one fsync'd commit each: {rate:,.0f} readings/s")
    payload = queue.peek(1)[0]
    t0 = time.perf_counter()
    batch = 10_000
    for b in range(n, queued, batch):
        with queue.transaction() as db:
            for i in range(b, min(b + batch, queued)):
                queue.put_in(db, payload.topic, payload.payload.replace(
                    b'"id":"', f'"id":"{i:08d}'.encode(), 1))
    bulk = max(queued - n, 1) / (time.perf_counter() - t0)
    queue.close()
    size = sum(p.stat().st_size for p in tmp.glob("queue.sqlite*")) / 2**20
    print(f"bulk fill to {queued:,} queued: {bulk:,.0f} rows/s; queue files {size:,.0f} MB"
          f" ({size * 2**20 / queued:,.0f} bytes per reading)")
    return path


def offline_rss(tmp: Path, broker_port: int) -> None:
    cfg = tmp / "offline.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp, broker_port)), "utf-8")
    proc = start_gateway(cfg, tmp, 1.0)
    try:
        rss, cpu = sample(proc, 10, settle=5.0)
    finally:
        stop(proc)
    print(f"  gateway with that queue on disk, broker down: RSS {rss:.1f} MB, CPU {cpu:.2f} %")


def drain(tmp: Path, broker: Mosquitto, count: int) -> None:
    from homevitals.gateway.publisher import Publisher
    from homevitals.vocab.config import MqttConfig

    path = tmp / "drain.sqlite"
    queue = DurableQueue(path, 2_000_000)
    src = sqlite3.connect(tmp / "queue.sqlite")
    with queue.transaction() as db:
        for topic, payload in src.execute("SELECT topic, payload FROM outbox LIMIT ?",
                                          (count,)):
            queue.put_in(db, topic, bytes(payload))
    src.close()
    pub = Publisher(MqttConfig(port=broker.port), queue, Topics(), "home-bench", SystemClock(),
                    client_id="bench-drain", max_inflight=100)
    t0 = time.perf_counter()
    pub.start()
    deadline = time.monotonic() + 600
    while len(queue) and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    left = len(queue)
    pub.stop(2)
    queue.close()
    print(f"drain to Mosquitto (QoS 1, 100 in flight, delete on PUBACK): {count - left:,}"
          f" in {elapsed:.1f} s = {(count - left) / elapsed:,.0f} msgs/s; a million drains in"
          f" about {1_000_000 / ((count - left) / elapsed) / 60:.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--drain", type=int, default=50_000)
    args = ap.parse_args()
    print(f"host: {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="hv-gw-bench-") as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        try:
            live(tmp, broker, args.seconds, args.interval)
            fill(tmp, args.queued)
            broker.stop()
            offline_rss(tmp, broker.port)
            broker.start()
            drain(tmp, broker, args.drain)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
