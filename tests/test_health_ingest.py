"""Ingest's health as an operator and systemd see it, against the real Mosquitto and influxd:
each internal thread is wedged or stopped in turn, and /healthz or /readyz says which, with the
reason, while systemd's watchdog stops being fed (a datagram socket bound by the test)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from notify import NotifySocket, get, wait_status
from test_ingest_resilience import SPAN, _publish, _reading

from homevitals.infra.mqtt import connection
from homevitals.infra.runtime import Runner
from homevitals.infra.sdnotify import SystemdNotifier
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.service import IngestService
from homevitals.ingest.store import Storable
from homevitals.ingest.telemetry import ingest_metrics as _metrics
from homevitals.simulators.household import demo_config
from homevitals.vocab.config import Config

STALL = 1.5
WEDGE_TOPIC = "homevitals/v1/home/home-novak/reading/wedge"


class GatedStore:
    """The real InfluxDB store, with a gate a test can close: a write then hangs (a database
    that accepts the connection and never answers) until the gate opens."""

    def __init__(self, store: InfluxV1Store) -> None:
        self.store = store
        self.open = threading.Event()
        self.open.set()

    def write(self, items: Sequence[Storable]) -> None:
        self.open.wait()
        self.store.write(items)

    def query_readings(self, *args: Any) -> list[dict[str, Any]]:
        return self.store.query_readings(*args)

    def close(self) -> None:
        self.open.set()
        self.store.close()


def _cfg(tmp: Path, broker: int, influx: Any, db: str, **mqtt_extra: Any) -> Config:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": broker, **mqtt_extra}
    base["store"] = {"kind": "influx_v1", "url": influx.url, "database": db, "timeout_seconds": 2}
    base["ingest"] = {
        "client_id": f"health-{tmp.name}", "batch_seconds": 0.2, "retry_max_seconds": 1,
        "metrics": {"port": 0, "stall_seconds": STALL},
    }
    return Config.model_validate(base)


def _wedge_on_topic(
    client: mqtt.Client, release: threading.Event, topic: str = WEDGE_TOPIC
) -> threading.Event:
    """Make the message handler hang on any message to ``topic`` until ``release``."""
    handled = client.on_message
    assert handled is not None
    held = threading.Event()

    def on_message(c: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topic:
            held.set()
            release.wait(60)
        handled(c, userdata, msg)

    client.on_message = on_message
    return held


@contextmanager
def _running(svc: IngestService, cfg: Config) -> Iterator[tuple[int, NotifySocket]]:
    systemd = NotifySocket()
    runner = Runner(svc, cfg.ingest.metrics, lambda: _metrics(svc),
                    notifier=SystemdNotifier(systemd.env(watchdog_seconds=1.0)))
    svc.start()
    try:
        with runner.serving():
            assert runner.health is not None
            yield runner.health.port, systemd
    finally:
        svc.stop(drain_seconds=1)
        svc.store.close()
        systemd.close()


def _stored(influx: Any, db: str) -> int:
    return len(InfluxV1Store(influx.url, db).query_readings("glucose", "ana", *SPAN))


def test_each_ingest_thread_and_the_store_show_on_health_and_the_watchdog(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    db = f"health_{tmp_path.name}"  # not created yet: InfluxDB answers 404 "database not found"
    cfg = _cfg(tmp_path, mosquitto.port, influxd, db)
    store = GatedStore(InfluxV1Store(influxd.url, db, timeout=2))
    svc = IngestService(cfg, store)
    release = threading.Event()
    held = _wedge_on_topic(svc.client, release)
    with _running(svc, cfg) as (port, systemd):
        try:
            _story(tmp_path, port, systemd, svc, store, influxd, db, held, release)
        finally:
            release.set()
            store.open.set()


def _story(tmp_path: Path, port: int, systemd: NotifySocket, svc: IngestService,
           store: GatedStore, influxd: Any, db: str, held: threading.Event,
           release: threading.Event) -> None:
    mosquitto_port = svc.cfg.mqtt.port
    ready = systemd.wait_for("READY=1")
    assert "STATUS=alive and ready" in ready.split("\n")
    systemd.wait_pings(3, 2.0)
    body = wait_status(port, "/healthz", 200, "mqtt-network: ok", "mqtt-handler: ok",
                       "ingest-writer: ok")
    assert body.startswith("ok\n")

    # The store refuses every write: not ready, and the body says why; alive (it retries).
    _publish(mosquitto_port, [_reading(0, "health")], f"gw-{tmp_path.name}")
    wait_status(port, "/readyz", 503, "not ready",
                "store: the last write failed: InfluxDB at", "broker: ok")
    assert "answered HTTP 404: database not found" in get(port, "/readyz")[1]
    assert get(port, "/healthz")[0] == 200
    systemd.wait_pings(2, 1.5)
    influxd.create_database(db)
    wait_status(port, "/readyz", 200, "store: ok")
    assert _stored(influxd, db) == 1

    # The handler hangs on one message: /healthz names it, the watchdog starves.
    _publish_raw(mosquitto_port, WEDGE_TOPIC, tmp_path.name)
    assert held.wait(10)
    wait_status(port, "/healthz", 503, "not alive",
                f"mqtt-handler: stuck in on_message ({WEDGE_TOPIC}) for", "ingest-writer: ok")
    assert systemd.pings(1.5) == 0
    release.set()
    wait_status(port, "/healthz", 200, "mqtt-handler: ok")
    systemd.wait_pings(2, 1.5)

    # The store hangs: the writer stops going round its loop.
    store.open.clear()
    _publish(mosquitto_port, [_reading(1, "health")], f"gw-{tmp_path.name}")
    wait_status(port, "/healthz", 503, "ingest-writer: no progress for", "mqtt-handler: ok")
    assert systemd.pings(1.5) == 0
    store.open.set()
    wait_status(port, "/healthz", 200, "ingest-writer: ok")
    assert _stored(influxd, db) == 2

    # paho's network thread ends: not alive, not connected, not ready.
    connection(svc.client).halt()
    wait_status(port, "/healthz", 503, "mqtt-network: not running (the thread has ended)")
    wait_status(port, "/readyz", 503, "broker: paho's network thread has ended")
    assert "homevitals_ingest_connected 0.0" in get(port, "/metrics")[1]
    assert systemd.pings(1.5) == 0


def _publish_raw(port: int, topic: str, name: str, payload: bytes = b"{}") -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"raw-{name}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    pub.publish(topic, payload, qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()


def test_mqtt311_backlog_full_blocks_paho_past_the_keepalive_and_clears_connected(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    """MQTT 3.1.1 has no Receive Maximum: with a full backlog paho's thread waits for the writer
    (back-pressure) and so answers no keepalive. Past the keepalive, ingest no longer claims to
    be connected; the writer, stuck on the database, is what /healthz names."""
    cfg = _cfg(tmp_path, mosquitto.port, influxd, influx_db, protocol="3.1.1", keepalive=5)
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"backlog_max": 10})})
    store = GatedStore(InfluxV1Store(influxd.url, influx_db, timeout=2))
    svc = IngestService(cfg, store)
    with _running(svc, cfg) as (port, _systemd):
        wait_status(port, "/readyz", 200)
        store.open.clear()
        readings = [_reading(i, "blocked") for i in range(30)]
        _publish(mosquitto.port, readings, f"gw-{tmp_path.name}")
        body = wait_status(port, "/readyz", 503, "broker: paho's network thread held", timeout=20)
        assert "past the keepalive (5 s)" in body
        assert "homevitals_ingest_connected 0.0" in get(port, "/metrics")[1]
        health = wait_status(port, "/healthz", 503, "ingest-writer: no progress for")
        assert "mqtt-handler: ok" in health.splitlines()  # waiting for the writer, not wedged
        store.open.set()
        wait_status(port, "/readyz", 200, "broker: ok", timeout=60)
        wait_status(port, "/healthz", 200)
        assert _wait_rows(influxd, influx_db, 30) == 30


def _wait_rows(influx: Any, db: str, n: int) -> int:
    from daemons import wait_until

    return int(wait_until(f"{n} rows", lambda: (k := _stored(influx, db)) >= n and k, 60))
