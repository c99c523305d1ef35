"""Ingest against the raw limits of the broker and the database, measured in one run.

    .venv/bin/python bench/ingest_throughput.py [--homes 1000 --devices 2 --readings 50]

Starts its own Mosquitto and influxd (tests/servers.py) on free loopback ports and prints:
(a) the raw broker limit: the fleet publishes QoS 1 to a bare paho subscriber that only counts;
    (a') the same with the subscriber on homevitals.infra.mqtt.BufferedClient, the client
         ingest uses;
(b) the raw InfluxDB limit: batches of 5 000 points of line protocol to /write;
(c) homevitals ingest end to end (published -> durable in InfluxDB), one worker and two workers
    on an MQTT 5 shared subscription, with loss/duplicates, publish-to-durable latency p50/p99
    (a probe every 100 ms during the run) and the peak resident memory of each worker;
(d) ingest restarted with the readings waiting at the broker: how fast it drains them;
and the ratios against the targets (zero loss at QoS 1, >= 80 % of the raw receive limit, two
workers >= 1.6x one). CPU time per message is printed for every process. Never gates anything:
it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import urllib3
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fleet_publishers import Publish, mosquitto_pub_publishers, paho_publishers  # noqa: E402
from proc_stats import Account, busy_percent, cpu_times, rss_peak_mb  # noqa: E402
from servers import Influxd, Mosquitto  # noqa: E402

from homevitals.infra.mqtt import BufferedClient  # noqa: E402
from homevitals.ingest.points import to_lines  # noqa: E402
from homevitals.simulators.fleet import (  # noqa: E402
    FleetSpec,
    fleet_readings,
)
from homevitals.vocab import wire  # noqa: E402


def raw_broker(
    broker: Mosquitto, spec: FleetSpec, publish: Publish, buffered: bool = False
) -> float:
    """Received per second, from the first publish to the last message at the subscriber.
    ``buffered``: the same counting subscriber on homevitals' BufferedClient (what ingest uses)."""
    got = 0
    last = 0.0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal got, last
        got += 1
        if got >= spec.total:
            last = time.time()
            done.set()

    kind = BufferedClient if buffered else mqtt.Client
    sub = kind(CallbackAPIVersion.VERSION2, client_id="bare-counter", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("homevitals/#", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    go = publish(broker.port, spec)
    cpu = cpu_times()
    account = Account({"mosquitto": broker.pid, "counting subscriber": os.getpid()})
    run = go()
    done.wait(300)
    elapsed = (last or time.time()) - run.started
    print(f"    machine CPU busy: {busy_percent(cpu)}; {account.report(spec.total)}")
    sub.disconnect()
    sub.loop_stop()
    if got < spec.total:
        print(f"    raw subscriber missed {spec.total - got}")
    return got / elapsed


def raw_influx(url: str, spec: FleetSpec) -> float:
    lines = to_lines(
        list(fleet_readings(FleetSpec(spec.homes, spec.devices, spec.readings, tag="raw")))
    )
    body = lines.split("\n")
    http = urllib3.PoolManager()
    t0 = time.perf_counter()
    for i in range(0, len(body), 5000):
        r = http.request(
            "POST", f"{url}/write?db=raw&precision=ns", body="\n".join(body[i : i + 5000]).encode()
        )
        assert r.status == 204, r.data
    return len(body) / (time.perf_counter() - t0)


def _count(url: str, db: str) -> int:
    http = urllib3.PoolManager()
    n = 0
    for m in ("glucose", "blood_pressure"):
        r = http.request(
            "GET",
            f"{url}/query",
            fields={
                "db": db,
                "q": f'SELECT COUNT("reading_id") FROM "{m}" WHERE "home" != \'home-probe\'',
            },
        )
        series = r.json()["results"][0].get("series")
        n += series[0]["values"][0][1] if series else 0
    return n


def ingest_run(
    tmp: Path, broker: Mosquitto, influx: Influxd, spec: FleetSpec, workers: int, publish: Publish
) -> float:
    port = broker.port
    db = f"ingest{workers}"
    influx.create_database(db)
    cfg = _ingest_config(port, influx, db, "bench" if workers > 1 else None)
    procs = [
        _start_ingest(tmp, f"ingest-{workers}-{w}", cfg, f"bench-ingest-{workers}-{w}")
        for w in range(workers)
    ]
    _wait_ready(tmp, [f"ingest-{workers}-{w}" for w in range(workers)])
    latencies: list[float] = []
    stop = threading.Event()
    probes = threading.Thread(
        target=_probe, args=(port, influx.url, db, latencies, stop), daemon=True
    )
    go = publish(port, spec)
    t0 = time.time()
    cpu = cpu_times()
    pids = {f"ingest {w + 1}": p.pid for w, p in enumerate(procs)}
    account = Account(
        {**pids, "mosquitto": broker.pid, "influxd": influx.pid, "bench's probes": os.getpid()}
    )
    probes.start()
    run = go()
    while _count(influx.url, db) < spec.total and time.time() - t0 < 600:
        time.sleep(0.25)  # each count is a query on the same influxd: do not load it
    elapsed = time.time() - run.started  # first publish -> all durable
    busy = busy_percent(cpu)
    spent = account.report(spec.total)
    stop.set()
    probes.join(30)
    stored = _count(influx.url, db)
    rss = [rss_peak_mb(p.pid) for p in procs]
    for p in procs:
        p.terminate()
        p.wait(30)
    rate = spec.total / elapsed
    lat = sorted(latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    print(
        f"  (c) ingest, {workers} worker(s): {rate:8.0f} readings/s durable; stored {stored} of"
        f" {spec.total} (lost {spec.total - stored}); publish->durable p50 {p50:.0f} ms,"
        f" p99 {p99:.0f} ms ({len(lat)} probes); peak RSS {', '.join(f'{r:.0f}' for r in rss)} MB;"
        f" machine CPU busy {busy}\n      {spent}"
    )
    return rate


def _ingest_config(port: int, influx: Influxd, db: str, group: str | None) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1", "port": port},
        "store": {"kind": "influx_v1", "url": influx.url, "database": db},
        "ingest": {
            "batch_size": 5000,
            "batch_seconds": 0.2,
            "backlog_max": 20000,
            "shared_group": group,
        },
    }


def _start_ingest(
    tmp: Path, name: str, cfg: dict[str, Any], client_id: str
) -> subprocess.Popen[bytes]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**cfg, "ingest": {**cfg["ingest"], "client_id": client_id}}))
    log = (tmp / f"{name}.log").open("w")
    argv = [sys.executable, "-m", "homevitals.roots.cli", "--log-level", "INFO", "ingest", "-c"]
    return subprocess.Popen([*argv, str(path)], stdout=log, stderr=log)


def _wait_ready(tmp: Path, names: list[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
        "ready: subscribed" in (tmp / f"{n}.log").read_text() for n in names
    ):
        time.sleep(0.01)


def drain_run(
    tmp: Path, broker: Mosquitto, influx: Influxd, spec: FleetSpec, publish: Publish
) -> float:
    """(d) The readings wait at the broker while ingest is away (a restart, a crash, an upgrade);
    ingest comes back and drains them. Timed from its subscription to the last one durable."""
    db = "drain"
    influx.create_database(db)
    cfg = _ingest_config(broker.port, influx, db, None)
    proc = _start_ingest(tmp, "drain", cfg, "bench-drain")
    _wait_ready(tmp, ["drain"])  # the persistent session and its subscriptions now exist
    proc.terminate()
    proc.wait(30)
    publish(broker.port, spec)()
    proc = _start_ingest(tmp, "drain", cfg, "bench-drain")
    _wait_ready(tmp, ["drain"])
    t0 = time.time()
    account = Account({"ingest": proc.pid, "mosquitto": broker.pid, "influxd": influx.pid})
    while _count(influx.url, db) < spec.total and time.time() - t0 < 600:
        time.sleep(0.1)
    elapsed = time.time() - t0
    spent = account.report(spec.total)
    stored = _count(influx.url, db)
    rss = rss_peak_mb(proc.pid)
    proc.terminate()
    proc.wait(30)
    rate = spec.total / elapsed
    print(
        f"  (d) ingest restarted with {spec.total} readings waiting at the broker: drained at"
        f" {rate:8.0f} readings/s; stored {stored} (lost {spec.total - stored}); peak RSS"
        f" {rss:.0f} MB\n      {spent}"
    )
    return rate


def _probe(port: int, url: str, db: str, out: list[float], stop: threading.Event) -> None:
    """A probe reading is published every 100 ms during the run; a poller finds each one in
    InfluxDB (every 50 ms) and times publish -> durable. Probes still on their way when the run
    ends get 10 s more."""
    from datetime import UTC, datetime

    from homevitals.vocab.readings import FieldValue, Measurement, Reading
    from homevitals.vocab.units import Unit

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{db}", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    http = urllib3.PoolManager()
    sent: dict[str, float] = {}
    seen: set[str] = set()
    q = 'SELECT "glucose", "reading_id" FROM "glucose" WHERE "home" = \'home-probe\''

    def poll() -> None:
        res = http.request("GET", f"{url}/query", fields={"db": db, "q": q}).json()
        series = res["results"][0].get("series") or []
        now = time.perf_counter()
        for s in series:
            col = s["columns"].index("reading_id")
            for row in s["values"]:
                rid = row[col]
                if rid in sent and rid not in seen:
                    seen.add(rid)
                    out.append(now - sent[rid])

    i = 0
    next_probe = time.perf_counter()
    while not stop.is_set():
        if time.perf_counter() >= next_probe:
            t = datetime.now(UTC)
            rid = f"probe-{db}-{i}"
            r = Reading(rid, "home-probe", "probe", "probe", Measurement.GLUCOSE,
                        {"glucose": FieldValue(5.0, Unit.MMOL_PER_L)}, t, t)
            sent[rid] = time.perf_counter()
            client.publish("homevitals/v1/home/home-probe/reading/probe", wire.encode(r), qos=1)
            i += 1
            next_probe += 0.1
        poll()
        time.sleep(0.05)
    deadline = time.perf_counter() + 10
    while len(seen) < len(sent) and time.perf_counter() < deadline:
        poll()
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--readings", type=int, default=50)
    ap.add_argument("--processes", type=int, default=2, help="paho publisher processes")
    ap.add_argument(
        "--publisher",
        choices=["paho", "mosquitto_pub"],
        default="paho",
        help="paho: the fleet simulator's processes; mosquitto_pub: one C publisher per topic"
        " (use fewer homes, e.g. --homes 16 --readings 3125: one process per home x device)",
    )
    a = ap.parse_args()
    spec = FleetSpec(a.homes, a.devices, a.readings)
    with tempfile.TemporaryDirectory(prefix="hv-bench-") as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        influx = Influxd(tmp / "influxd")
        broker.start()
        influx.start()
        if a.publisher == "paho":
            publish = paho_publishers(a.processes)
            publishers = (
                f"{a.processes} paho publisher processes (their start-up and encoding count"
                " under 'publishers and the rest')"
            )
        else:
            publish = mosquitto_pub_publishers(tmp)
            publishers = f"{spec.homes * spec.devices} mosquitto_pub processes"
        try:
            print(
                f"{spec.total} readings from {spec.homes} homes x {spec.devices} devices,"
                f" QoS 1, {publishers}; {os.cpu_count()} cores shared by everything"
            )
            raw = raw_broker(
                broker,
                FleetSpec(spec.homes, spec.devices, spec.readings, tag="rawmq"),
                publish,
            )
            print(f"  (a) raw broker -> bare paho subscriber: {raw:8.0f} msgs/s")
            raw_buffered = raw_broker(
                broker,
                FleetSpec(spec.homes, spec.devices, spec.readings, tag="rawbuf"),
                publish,
                buffered=True,
            )
            print(
                f"  (a') the same counting subscriber on homevitals.infra.mqtt.BufferedClient:"
                f" {raw_buffered:8.0f} msgs/s"
            )
            influx.create_database("raw")
            points = raw_influx(influx.url, spec)
            print(f"  (b) raw InfluxDB /write, batches of 5000: {points:8.0f} points/s")
            one = ingest_run(tmp, broker, influx, spec, 1, publish)
            two = ingest_run(
                tmp,
                broker,
                influx,
                FleetSpec(spec.homes, spec.devices, spec.readings, tag="two"),
                2,
                publish,
            )
            drain_run(
                tmp,
                broker,
                influx,
                FleetSpec(spec.homes, spec.devices, spec.readings, tag="drain"),
                publish,
            )
            print(
                f"  ratios: one worker / raw receive = {one / raw:.2f} (target >= 0.80);"
                f" two workers / one = {two / one:.2f} (target >= 1.6);"
                f" one worker / buffered counting subscriber = {one / raw_buffered:.2f}"
            )
        finally:
            influx.stop()
            broker.stop()


if __name__ == "__main__":
    main()
