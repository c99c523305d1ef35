"""The cluster profile's readings path (docs/cluster.md), on loopback: four gateways publish over
MQTT 3.1.1 QoS 1 to a three-node RabbitMQ cluster, each from its own list of the nodes; two
InfluxDB replicas are each fed by their own quorum queue, consumed by two ingest workers
(``homevitals ingest`` processes). Under load, one after the other: a broker node, an ingest
worker and an InfluxDB replica are killed with SIGKILL; the replica comes back later and catches
up from its queue. Every reading is then in both replicas exactly once, and ingest went on
within 30 s of each kill."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_fixtures import influx_replicas, rabbit_cluster  # noqa: F401 - fixtures
from cluster_servers import RabbitCluster
from daemons import Daemon, wait_until, write_config
from servers import Influxd

from homevitals.gateway.publisher import Publisher
from homevitals.infra.outbox import DurableQueue
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import MqttConfig, parse_config
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

HOMES = 4
TOTAL = 4000  # readings, from all gateways
SPAN = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
T0 = datetime(2026, 11, 20, tzinfo=UTC)
RESUME_LIMIT_S = 30.0
DB = "cluster"
DB_MAJORITY = "majority"


def _homes() -> list[dict[str, Any]]:
    """The demo home four times over, each with its own patient."""
    demo = demo_config().model_dump(mode="json", exclude_none=True)["homes"][0]
    homes = []
    for k in range(HOMES):
        patient = {**demo["patients"][0], "id": f"pat-{k}"}
        devices = [{**d, "patient": patient["id"]} for d in demo["devices"]]
        homes.append({**demo, "id": f"home-{k}", "patients": [patient], "devices": devices})
    return homes


def _rotated(items: list[str], k: int) -> list[str]:
    return items[k % len(items):] + items[:k % len(items)]


def _ingest_config(tmp: Path, cluster: RabbitCluster, influx: Influxd, queue: str, k: int,
                   db: str = DB) -> Path:
    data = {
        "mqtt": {"protocol": "3.1.1", "brokers": _rotated(cluster.mqtt_brokers, k)},
        "homes": _homes(),
        "store": {"kind": "influx_v1", "url": influx.url, "database": db, "timeout_seconds": 3},
        "ingest": {
            "client_id": f"ingest-{queue}-{k}",
            "source": "amqp",
            "amqp": {"urls": _rotated(cluster.amqp_urls, k), "queue": queue},
            "batch_size": 50, "batch_seconds": 0.2, "backlog_max": 100,
            "retry_initial_seconds": 0.2, "retry_max_seconds": 1,
        },
    }
    workdir = tmp / f"{queue}-{k}"
    workdir.mkdir()
    return write_config(workdir / "hv.yaml", data)


class Gateway:
    """The gateway's own publishing path (durable queue -> Publisher) for one home."""

    def __init__(self, tmp: Path, brokers: list[str], k: int) -> None:
        self.home, self.patient = f"home-{k}", f"pat-{k}"
        self.topics = Topics()
        self.queue = DurableQueue(tmp / f"gw-{k}.sqlite")
        cfg = MqttConfig(protocol="3.1.1", brokers=_rotated(brokers, k))
        self.publisher = Publisher(cfg, self.queue, self.topics, self.home, SystemClock(),
                                   client_id=f"gw-{k}-{tmp.name}")
        self.sent: list[str] = []
        self.publisher.start()

    def send(self, n: int) -> None:
        for _ in range(n):
            i = len(self.sent)
            t = T0 + timedelta(seconds=30 * i)
            reading = Reading(f"{self.home}-{i}", self.home, self.patient, "glucometer-1",
                              Measurement.GLUCOSE,
                              {"glucose": FieldValue(5.0 + (i % 40) / 10, Unit.MMOL_PER_L)}, t, t)
            self.queue.put(self.topics.reading(self.home, "glucometer-1"), wire.encode(reading))
            self.sent.append(reading.reading_id)
        self.publisher.notify()

    def stop(self) -> None:
        self.publisher.stop(flush_seconds=1)
        self.queue.close()


def _ids(influx: Influxd, patient: str, db: str = DB) -> list[str]:
    rows = InfluxV1Store(influx.url, db).query_readings("glucose", patient, *SPAN)
    return [str(r["reading_id"]) for r in rows]


def _count(influx: Influxd, db: str = DB) -> int:
    """Rows stored (InfluxQL COUNT over every patient's glucose series)."""
    body = influx.query('SELECT COUNT("glucose") FROM "glucose"', db=db)
    series = body["results"][0].get("series", [])  # type: ignore[index]
    return int(series[0]["values"][0][1]) if series else 0


def _resumed_after(influx: Influxd, killed_at: float, at_kill: int, more: int = 250) -> float:
    """Seconds from a kill until ``more`` rows past the count at the kill were written: more than
    the workers of a replica hold in memory (backlog_max 100 each), so the flow itself went on."""
    wait_until(f"{more} more rows", lambda: _count(influx) >= at_kill + more, 90, 0.1)
    return time.monotonic() - killed_at


def _wait_rows(influx: Influxd, n: int, timeout: float = 120, db: str = DB) -> None:
    wait_until(f"{n} rows in {influx.url}", lambda: _count(influx, db) >= n, timeout, 0.2)


class Feeder(threading.Thread):
    """Steady load: every gateway gets ``per_tick`` readings every ``tick`` seconds."""

    def __init__(self, gateways: list[Gateway], total: int, per_tick: int = 5,
                 tick: float = 0.2) -> None:
        super().__init__(name="feeder", daemon=True)
        self.gateways, self.total, self.per_tick, self.tick = gateways, total, per_tick, tick

    def run(self) -> None:
        while sum(len(gw.sent) for gw in self.gateways) < self.total:
            for gw in self.gateways:
                gw.send(self.per_tick)
            time.sleep(self.tick)  # the load's pace (readings per tick), not a wait


def test_kill_a_broker_node_an_ingest_worker_and_a_replica_loses_and_doubles_nothing(
    tmp_path: Path, rabbit_cluster: RabbitCluster, influx_replicas: list[Influxd]  # noqa: F811
) -> None:
    cluster, (influx_a, influx_b) = rabbit_cluster, influx_replicas
    for influx in influx_replicas:
        influx.create_database(DB)
    workers = {
        (queue, k): Daemon("ingest", _ingest_config(tmp_path, cluster, influx, queue, k),
                           tmp_path / f"{queue}-{k}")
        for queue, influx in (("ingest.a", influx_a), ("ingest.b", influx_b)) for k in (0, 1)
    }
    gateways: list[Gateway] = []
    figures: dict[str, float] = {}
    back: threading.Thread | None = None
    try:
        for worker in workers.values():  # the queues exist before anything is published
            worker.wait_log("consuming", 60)
        gateways = [Gateway(tmp_path, cluster.mqtt_brokers, k) for k in range(HOMES)]
        started = time.monotonic()
        feeder = Feeder(gateways, TOTAL)  # about 100 readings/s for 40 s
        feeder.start()

        _wait_rows(influx_a, 400)  # a broker node dies under load
        at_kill, killed_at = _count(influx_a), time.monotonic()
        cluster.kill(0)
        figures["broker node killed: 250 more rows after s"] = _resumed_after(
            influx_a, killed_at, at_kill)
        back = threading.Thread(target=cluster.start_node, args=(0,), name="rabbit1-back")
        back.start()

        _wait_rows(influx_a, 1500)  # an ingest worker of replica A dies under load
        at_kill, killed_at = _count(influx_a), time.monotonic()
        workers[("ingest.a", 0)].proc.send_signal(signal.SIGKILL)
        workers[("ingest.a", 0)].wait(10)
        figures["ingest worker killed: 250 more rows after s"] = _resumed_after(
            influx_a, killed_at, at_kill)

        _wait_rows(influx_a, 2200)  # replica B dies; its queue keeps what it misses
        influx_b.kill()
        _wait_rows(influx_a, 3000)
        influx_b.start()
        back_at = time.monotonic()
        feeder.join(120)
        _wait_rows(influx_a, TOTAL)
        _wait_rows(influx_b, TOTAL)
        figures["replica B back: caught up after s"] = time.monotonic() - back_at
        figures["whole run s"] = time.monotonic() - started
        time.sleep(1.0)  # room for a late duplicate to land, were there one

        for influx in influx_replicas:
            for gw in gateways:
                ids = _ids(influx, gw.patient)
                assert len(ids) == len(set(ids)), f"duplicates stored in {influx.url}"
                assert sorted(ids) == sorted(gw.sent), (
                    f"{influx.url} {gw.patient}: {len(gw.sent) - len(set(ids))} lost")
            assert _count(influx) == TOTAL
        print(f"\n{TOTAL} readings from {HOMES} gateways; in each replica: lost 0, duplicates 0")
        for what, value in figures.items():
            print(f"  {what}: {value:.1f}")
        for what, value in figures.items():
            if "more rows" in what:
                assert value < RESUME_LIMIT_S, f"{what}: {value:.1f} s"
    finally:
        for gw in gateways:
            gw.stop()
        for worker in workers.values():
            worker.kill()
        if not influx_b.running:
            influx_b.start()
        if back is not None:
            back.join(120)
        if not cluster.nodes[0].running:
            cluster.start_node(0)
        cluster.delete_queues("ingest.a", "ingest.b")  # no consumer from now on


def test_without_a_majority_a_reading_is_not_acknowledged(
    tmp_path: Path, rabbit_cluster: RabbitCluster, influx_replicas: list[Influxd]  # noqa: F811
) -> None:
    """A PUBACK means a majority of the broker nodes has the reading: with two of three nodes
    killed, the gateway's readings stay in its queue on disk, unacknowledged, and none is
    stored. (Getting the same cluster back is not shown here: a returning node's 3.10 MQTT
    plugin took 8 to about 110 s to serve again, too long and too variable for this module;
    see docs/cluster.md and bench/cluster_majority.py.) The module's last test on the cluster:
    it leaves two nodes down, and the module fixture stops them all."""
    cluster, influx = rabbit_cluster, influx_replicas[0]
    influx.create_database(DB_MAJORITY)
    worker = Daemon("ingest", _ingest_config(tmp_path, cluster, influx, "ingest.m", 0,
                                             DB_MAJORITY), tmp_path / "ingest.m-0")
    gateway = None
    try:
        worker.wait_log("consuming", 60)
        gateway = Gateway(tmp_path, cluster.mqtt_brokers, 0)  # connected to node 1
        gateway.send(1)
        _wait_rows(influx, 1, db=DB_MAJORITY)
        assert len(gateway.queue) == 0  # acknowledged, so gone from the gateway's disk
        cluster.kill(1)
        cluster.kill(2)
        gateway.send(5)
        time.sleep(5.0)  # a window in which nothing may be acknowledged or stored
        waiting, stored = len(gateway.queue), _count(influx, DB_MAJORITY)
        print(f"\nwith 1 of 3 broker nodes: {waiting} readings wait on the gateway's disk,"
              f" {stored} stored")
        assert (waiting, stored) == (5, 1)
    finally:
        if gateway is not None:
            gateway.stop()
        worker.kill()


def test_cluster_settings_are_checked_at_start() -> None:
    """A broker list entry that is not host:port, the amqp source without its section, and an
    id with a '.' (it would become two routing-key levels) are named with their file, line and
    key before anything connects."""
    data = {"mqtt": {"protocol": "3.1.1", "brokers": ["10.0.0.11:1883", "10.0.0.12"]},
            "homes": _homes(), "ingest": {"source": "amqp"}}
    text = yaml.safe_dump(data, sort_keys=False)
    source_line = text.splitlines().index("  source: amqp") + 1
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cluster.yaml")
    assert err.value.problems == [
        "cluster.yaml:4: mqtt.brokers: broker '10.0.0.12' is not host:port, e.g. 10.0.0.11:1883",
        f"cluster.yaml:{source_line}: ingest: source amqp needs an amqp section (urls, queue)",
    ]
    homes = _homes()
    homes[1] = {**homes[1], "id": "home.1"}
    data = {"mqtt": {"protocol": "3.1.1", "brokers": ["10.0.0.11:1883"]}, "homes": homes}
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cluster.yaml")
    assert [p.split(": ", 1)[1] for p in err.value.problems] == [
        "homes.1.id: 'home.1': no '.' in the cluster profile (RabbitMQ routing keys separate"
        " topic levels by '.')"]
    cfg = MqttConfig(brokers=["10.0.0.11:1883", "[fd00::12]:1884"])
    assert cfg.addresses() == [("10.0.0.11", 1883), ("fd00::12", 1884)]
