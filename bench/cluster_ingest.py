"""Ingest against the RabbitMQ cluster (docs/cluster.md): CPU per reading and drain throughput for
1, 2 and 3 ``homevitals ingest`` workers sharing one quorum queue.

For each worker count: the queue is filled with ``--readings`` readings while no worker runs (the
publishers are stopped before the drain begins), then the workers start and empty it into
InfluxDB. Figures: readings/s from the first row stored to the last, and the workers' CPU seconds
(user + system, /proc/PID/stat) per reading: each worker's whole CPU time less what a worker
spends to start and connect (measured once, on an empty queue), since the first worker is already
draining while the others still start.

    .venv/bin/python bench/cluster_ingest.py [--readings 20000] [--workers 1 2 3]

This machine has two cores shared by the broker nodes, influxd and every worker, so wall-clock
scaling cannot show here: the scaling figure is the CPU per reading staying flat as workers are
added, i.e. the work divides between them without overhead.
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
from daemons import Daemon, wait_until, write_config  # noqa: E402
from servers import Influxd  # noqa: E402

from homevitals.ingest.amqp_source import mqtt_filter_to_binding  # noqa: E402
from homevitals.simulators.household import demo_config  # noqa: E402
from homevitals.vocab import wire  # noqa: E402
from homevitals.vocab.readings import FieldValue, Measurement, Reading  # noqa: E402
from homevitals.vocab.topics import Topics  # noqa: E402
from homevitals.vocab.units import Unit  # noqa: E402

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks


def _fill(url: str, queue: str, n: int, run: int) -> None:
    """``n`` readings into ``queue`` by way of amq.topic, as the MQTT plugin routes them."""
    topics = Topics()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for f in topics.ingest_subscriptions:
        ch.queue_bind(queue, "amq.topic", routing_key=mqtt_filter_to_binding(f))
    ch.confirm_delivery()
    key = mqtt_filter_to_binding(topics.reading("home-novak", "glucometer-1"))
    props = pika.BasicProperties(delivery_mode=2)
    for i in range(n):
        t = T0 + timedelta(seconds=i, microseconds=run)
        r = Reading(f"r{run}-{i}", "home-novak", "ana", "glucometer-1", Measurement.GLUCOSE,
                    {"glucose": FieldValue(5.0 + (i % 40) / 10, Unit.MMOL_PER_L)}, t, t)
        ch.basic_publish("amq.topic", key, wire.encode(r), props)
    conn.close()


def _count(influx: Influxd, db: str) -> int:
    body: Any = influx.query('SELECT COUNT("glucose") FROM "glucose"', db=db)
    series = body["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def _config(tmp: Path, cluster: RabbitCluster, influx: Influxd, db: str, queue: str,
            k: int) -> Path:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    urls = cluster.amqp_urls[k % 3:] + cluster.amqp_urls[:k % 3]
    data = {
        "mqtt": {"protocol": "3.1.1", "brokers": cluster.mqtt_brokers},
        "homes": base["homes"],
        "store": {"kind": "influx_v1", "url": influx.url, "database": db},
        "ingest": {"client_id": f"bench-{queue}-{k}", "source": "amqp",
                   "amqp": {"urls": urls, "queue": queue}},
    }
    workdir = tmp / f"{queue}-{k}"
    workdir.mkdir()
    return write_config(workdir / "hv.yaml", data)


def _delete(cluster: RabbitCluster, queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[0]))
    conn.channel().queue_delete(queue)  # it would get the next run's readings too
    conn.close()


def startup_cpu(tmp: Path, cluster: RabbitCluster, influx: Influxd) -> float:
    """CPU seconds a worker spends to start and begin consuming (an empty queue)."""
    influx.create_database("bench_idle")
    d = Daemon("ingest", _config(tmp, cluster, influx, "bench_idle", "bench.idle", 0),
               tmp / "bench.idle-0")
    try:
        d.wait_log("consuming", 60)
        time.sleep(1.0)
        return _cpu_seconds(d.proc.pid)
    finally:
        d.terminate()
        _delete(cluster, "bench.idle")


def run(tmp: Path, cluster: RabbitCluster, influx: Influxd, workers: int, n: int,
        startup: float) -> dict[str, Any]:
    queue, db = f"bench.ingest.w{workers}", f"bench_w{workers}"
    influx.create_database(db)
    _fill(cluster.amqp_urls[0], queue, n, workers)
    daemons = [Daemon("ingest", _config(tmp, cluster, influx, db, queue, k), tmp / f"{queue}-{k}")
               for k in range(workers)]
    try:
        wait_until("a first row", lambda: _count(influx, db) > 0, 60, 0.05)
        first_at, first = time.monotonic(), _count(influx, db)
        wait_until(f"{n} rows", lambda: _count(influx, db) >= n, 600, 0.1)
        seconds = time.monotonic() - first_at
        for d in daemons:
            d.wait_log("consuming", 60)
        cpu = sum(_cpu_seconds(d.proc.pid) for d in daemons) - workers * startup
    finally:
        for d in daemons:
            d.terminate()
    _delete(cluster, queue)
    return {"workers": workers, "rate": (n - first) / seconds, "cpu_us": 1e6 * cpu / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cluster-ingest-") as name:
        tmp = Path(name)
        cluster, influx = RabbitCluster(tmp / "rabbitmq"), Influxd(tmp / "influxd")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on a kill too
        try:
            cluster.start()
            influx.start()
            startup = startup_cpu(tmp, cluster, influx)
            print(f"{args.readings} readings drained from one quorum queue (3 nodes) into"
                  " InfluxDB 1.6")
            print(f"(a worker spends {startup:.2f} s of CPU to start; left out below)")
            print("| workers | drain readings/s | worker CPU us/reading (all workers) |")
            print("|---|---|---|", flush=True)
            for w in args.workers:
                f = run(tmp, cluster, influx, w, args.readings, startup)
                print(f"| {f['workers']} | {f['rate']:.0f} | {f['cpu_us']:.0f} |", flush=True)
        finally:
            cluster.stop()
            influx.stop()


if __name__ == "__main__":
    main()
