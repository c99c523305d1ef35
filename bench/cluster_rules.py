"""Rules against the RabbitMQ cluster (docs/cluster.md "Rules ownership"): drain throughput and
CPU per reading of one ``homevitals rules`` worker with ``rules.source: amqp``.

The worker starts once (it declares the input queue, the consistent-hash exchange and the
partitions) and is stopped; ``--readings`` readings of ``--homes`` homes are then published to
``amq.topic`` as the MQTT plugin routes them, and the worker starts again and drains them: the
partitioner (one publisher confirm per message) and the engine (one SQLite commit per reading)
in its one AMQP thread. Figures: readings/s from the worker's start to empty queues, and the
worker's CPU seconds (user + system, /proc/PID/stat) per reading, less what it spends to start
(measured on empty queues). For comparison, the same readings through the rule engine alone, in
this process, on its own SQLite file (what one worker costs without the broker).

    .venv/bin/python bench/cluster_rules.py [--readings 2000] [--homes 50]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster_servers import RabbitCluster  # noqa: E402
from daemons import Daemon, write_config  # noqa: E402

from homevitals.infra.amqp import mqtt_filter_to_binding  # noqa: E402
from homevitals.infra.outbox import DurableQueue  # noqa: E402
from homevitals.rules.engine import RuleEngine  # noqa: E402
from homevitals.vocab import wire  # noqa: E402
from homevitals.vocab.config import load_config  # noqa: E402
from homevitals.vocab.readings import FieldValue, Measurement, Reading  # noqa: E402
from homevitals.vocab.topics import Topics  # noqa: E402
from homevitals.vocab.units import Unit  # noqa: E402

T0 = datetime(2026, 11, 20, tzinfo=UTC)
PARTITIONS = 8
RULE = {"id": "hypo", "kind": "threshold", "measurement": "glucose", "field": "glucose",
        "below": 3.9, "clear_at": 4.4, "unit": "mmol/L", "severity": "medium", "reason": "Low"}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks


def _config(tmp: Path, cluster: RabbitCluster, homes: int) -> Path:
    data: dict[str, Any] = {
        "mqtt": {"protocol": "3.1.1", "brokers": cluster.mqtt_brokers},
        "homes": [{"id": f"home-{k}", "timezone": "Europe/Ljubljana",
                   "patients": [{"id": f"pat-{k}", "name": f"P {k}", "care_team": [
                       {"name": "Dr. K", "role": "family_doctor", "phone": "+15550100001"}]}],
                   "devices": [{"id": f"cgm-{k}", "kind": "cgm", "patient": f"pat-{k}"}]}
                  for k in range(homes)],
        "rules": {"source": "amqp", "tick_seconds": 0, "definitions": [RULE],
                  "amqp": {"urls": cluster.amqp_urls, "partitions": PARTITIONS},
                  # source amqp wants a state the workers share; one worker here, and SQLite
                  # keeps the figures comparable with the engine alone
                  "state_url": f"sqlite:///{tmp / 'rules.sqlite'}"},
    }
    (tmp / "rules").mkdir(exist_ok=True)
    return write_config(tmp / "rules" / "hv.yaml", data)


def _readings(n: int, homes: int) -> list[Reading]:
    out = []
    for i in range(n):
        k, step = i % homes, i // homes
        t = T0 + timedelta(minutes=5 * step)
        out.append(Reading(f"r{i}", f"home-{k}", f"pat-{k}", f"cgm-{k}", Measurement.GLUCOSE,
                           {"glucose": FieldValue(5.0 + (step % 10) / 10, Unit.MMOL_PER_L)},
                           t, t))
    return out


def _engine_alone(tmp: Path, cfg: Path, readings: list[Reading]) -> tuple[float, float]:
    """Readings/s and CPU us per reading of the rule engine in this process."""
    config = load_config(cfg)
    engine = RuleEngine(list(config.rules.definitions), config.homes,
                        DurableQueue(tmp / "engine-alone.sqlite"), Topics())
    wall, cpu = time.monotonic(), time.process_time()
    for r in readings:
        engine.on_reading(r)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return len(readings) / wall, 1e6 * cpu / len(readings)


def _fill(url: str, readings: list[Reading]) -> None:
    topics = Topics()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for r in readings:
        key = mqtt_filter_to_binding(topics.reading(r.home, r.device))
        ch.basic_publish("amq.topic", key, wire.encode(r), pika.BasicProperties(delivery_mode=2))
    conn.close()


def _waiting(url: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    names = ["homevitals.rules.in"] + [f"homevitals.rules.p{i}" for i in range(PARTITIONS)]
    total = sum(ch.queue_declare(q, passive=True).method.message_count for q in names)
    conn.close()
    return total


def _drain(tmp: Path, cfg: Path, url: str, expect: int) -> tuple[float, float]:
    worker = Daemon("rules", cfg, tmp / "rules")
    started = time.monotonic()
    try:
        worker.wait_log("consuming", 60)
        while True:
            if _waiting(url) == 0 and (expect == 0 or "partitioning" in worker.log()):
                break
            time.sleep(0.1)
        return time.monotonic() - started, _cpu_seconds(worker.proc.pid)
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=2000)
    ap.add_argument("--homes", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as d:
        tmp = Path(d)
        cluster = RabbitCluster(tmp / "rabbitmq")
        try:
            print(f"cluster of 3 started in {cluster.start():.1f} s")
            cfg = _config(tmp, cluster, args.homes)
            url = cluster.amqp_urls[0]
            _, idle_cpu = _drain(tmp, cfg, url, 0)  # declares the queues; the start's CPU
            readings = _readings(args.readings, args.homes)
            rate, cpu_us = _engine_alone(tmp, cfg, readings)
            print(f"the engine alone: {rate:.0f} readings/s, CPU {cpu_us:.0f} us per reading")
            _fill(url, readings)
            print(f"{_waiting(url)} readings wait in homevitals.rules.in")
            seconds, cpu = _drain(tmp, cfg, url, args.readings)
            print(f"1 worker, {PARTITIONS} partitions: {args.readings} readings drained in"
                  f" {seconds:.1f} s = {args.readings / seconds:.0f} readings/s;"
                  f" CPU {1e6 * (cpu - idle_cpu) / args.readings:.0f} us per reading"
                  f" (start: {idle_cpu:.2f} s)")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
