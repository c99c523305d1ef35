"""Ingest under the failures operators meet, with real Mosquitto and influxd processes: the ingest
killed with SIGKILL mid-batch, InfluxDB down for 30 s, the broker restarted, two workers sharing a
subscription, and a device clock gone wrong. In each, what was published is what is stored:
every reading once, none lost, none doubled."""

from __future__ import annotations

import signal
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from servers import free_port

from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.service import IngestService
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.config import load_config
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

SPAN = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
TOPIC = "homevitals/v1/home/home-novak/reading/glucometer-1"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def _reading(i: int, tag: str) -> Reading:
    t = T0 + timedelta(seconds=30 * i)
    return Reading(
        f"{tag}-{i}",
        "home-novak",
        "ana",
        "glucometer-1",
        Measurement.GLUCOSE,
        {"glucose": FieldValue(4.0 + (i % 50) / 10, Unit.MMOL_PER_L)},
        t,
        t,
    )


def _publish(port: int, readings: list[Reading], client_id: str) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(TOPIC, wire.encode(r), qos=1) for r in readings]
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()


def _config(tmp: Path, port: int, influx: Any, db: str, **ingest: Any) -> Path:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": port}
    base["store"] = {"kind": "influx_v1", "url": influx.url, "database": db, "timeout_seconds": 3}
    base["ingest"] = {"batch_size": 200, "batch_seconds": 0.5, "retry_max_seconds": 2, **ingest}
    return write_config(tmp / f"hv-{ingest.get('client_id', 'ingest')}.yaml", base)


def _stored(influx: Any, db: str, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    store = InfluxV1Store(influx.url, db)
    wait_until(
        f"{n} rows",
        lambda: len(r := store.query_readings("glucose", "ana", *SPAN)) >= n and r,
        timeout,
    )
    time.sleep(1.0)  # room for a duplicate to land, were there one
    return store.query_readings("glucose", "ana", *SPAN)


def _exactly_once(rows: list[dict[str, Any]], readings: list[Reading]) -> None:
    assert len(rows) == len(readings), f"{len(rows)} rows for {len(readings)} readings"
    assert sorted(r["reading_id"] for r in rows) == sorted(r.reading_id for r in readings)


def test_sigkill_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    """Under load, with the broker as shipped (configs/mosquitto/homevitals.conf, which the
    ``mosquitto`` fixture runs): the readings published while ingest is dead are more than
    Mosquitto's default queue of 1000 would hold for it, and none is lost."""
    cfg = _config(tmp_path, mosquitto.port, influxd, influx_db, batch_seconds=1.0)
    readings = [_reading(i, "kill") for i in range(6000)]
    first = Daemon("ingest", cfg, tmp_path)
    second = None
    try:
        first.wait_log("ready: subscribed")
        _publish(mosquitto.port, readings[:3000], f"gw-{tmp_path.name}")
        store = InfluxV1Store(influxd.url, influx_db)
        wait_until("a first batch", lambda: store.query_readings("glucose", "ana", *SPAN), 30, 0.02)
        first.proc.send_signal(signal.SIGKILL)
        first.wait(10)
        _publish(mosquitto.port, readings[3000:], f"gw2-{tmp_path.name}")  # queued for ingest
        second = Daemon("ingest", cfg, tmp_path)
        _exactly_once(_stored(influxd, influx_db, len(readings)), readings)
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_influxdb_down_through_retries_at_the_longest_delay(
    tmp_path: Path, mosquitto: Any, influxd_factory: Any
) -> None:
    """InfluxDB stops while readings keep coming: ingest keeps retrying at its longest delay,
    stays up, and stores every reading once when InfluxDB is back."""
    influx = influxd_factory()
    influx.create_database("outage")
    port = free_port()
    cfg = _config(tmp_path, mosquitto.port, influx, "outage", metrics={"port": port})
    readings = [_reading(i, "outage") for i in range(600)]
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _publish(mosquitto.port, readings[:300], f"gw1-{tmp_path.name}")
        _stored(influx, "outage", 300)
        influx.stop()
        _publish(mosquitto.port, readings[300:], f"gw2-{tmp_path.name}")
        # Retries 0.5, 1, 2, 2, 2 s apart (retry_max_seconds 2): three at the longest delay. The
        # count, not a fixed 30 s on the wall, says how long the outage lasted for ingest.
        wait_until("six failed writes", lambda: _metric(
            port, "homevitals_ingest_write_retries_total") >= 6, timeout=60)
        assert "retrying in" in ingest.log() and ingest.proc.poll() is None
        influx.start()
        _exactly_once(_stored(influx, "outage", len(readings), 90), readings)
        assert ingest.terminate() == 0
    finally:
        ingest.kill()


def test_broker_restart(
    tmp_path: Path, mosquitto_factory: Any, influxd: Any, influx_db: str
) -> None:
    broker = mosquitto_factory()
    cfg = _config(tmp_path, broker.port, influxd, influx_db)
    readings = [_reading(i, "restart") for i in range(1000)]
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _publish(broker.port, readings[:500], f"gw1-{tmp_path.name}")
        broker.stop()
        broker.start()
        _publish(broker.port, readings[500:], f"gw2-{tmp_path.name}")
        _exactly_once(_stored(influxd, influx_db, len(readings), 90), readings)
    finally:
        ingest.kill()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _written(port: int) -> float:
    return _metric(port, "homevitals_ingest_written_total")


def test_two_workers_share_the_load_and_write_each_reading_once(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    ports = [free_port(), free_port()]
    workers = [
        Daemon(
            "ingest",
            _config(
                tmp_path,
                mosquitto.port,
                influxd,
                influx_db,
                shared_group="ingest",
                client_id=f"w{i}-{tmp_path.name}",
                metrics={"port": ports[i]},
            ),
            tmp_path,
        )
        for i in range(2)
    ]
    readings = [_reading(i, "shared") for i in range(2000)]
    try:
        for w in workers:
            w.wait_log("ready: subscribed")
        assert "$share/ingest/homevitals/v1/home/+/reading/+" in workers[0].log()
        _publish(mosquitto.port, readings, f"gw-{tmp_path.name}")
        _exactly_once(_stored(influxd, influx_db, len(readings)), readings)
        written = [_written(p) for p in ports]
        assert sum(written) == len(readings), written  # each reading written by one worker only
        assert min(written) > 0, written  # and both worked
        batches = [_metric(p, "homevitals_ingest_batch_write_seconds_count") for p in ports]
        assert min(batches) >= 1 and sum(batches) <= len(readings), batches
    finally:
        for w in workers:
            w.kill()


def test_a_device_clock_gone_wrong_is_kept_and_flagged(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    cfg = _config(tmp_path, mosquitto.port, influxd, influx_db)
    received = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    reset = Reading(
        "clock-2000",
        "home-novak",
        "ana",
        "glucometer-1",
        Measurement.GLUCOSE,
        {"glucose": FieldValue(6.1, Unit.MMOL_PER_L)},
        time=datetime(2000, 1, 1, 0, 5, tzinfo=UTC),
        received_at=received,
        device_time=datetime(2000, 1, 1, 0, 5, tzinfo=UTC),
    )
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _publish(mosquitto.port, [reset], f"gw-{tmp_path.name}")
        rows = _stored(influxd, influx_db, 1)
        assert [(r["time"], r["glucose"], r["flags"]) for r in rows] == [
            (received, 6.1, "device_clock_suspect")
        ]
        assert "device time 2000-01-01T00:05:00+00:00 is implausible" in ingest.log()
    finally:
        ingest.kill()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_backlog_stays_bounded_while_influxdb_is_down(
    tmp_path: Path, mosquitto: Any, influxd_factory: Any, protocol: str
) -> None:
    """400 readings arrive while InfluxDB is down and the backlog holds 50: memory holds at
    most 50 (MQTT 5: the broker's Receive Maximum; 3.1.1: the network thread waits for the
    writer), the broker keeps the rest, and all 400 are stored once InfluxDB is back."""
    influx = influxd_factory()
    influx.create_database("bounded")
    influx.stop()
    cfg_path = _config(tmp_path, mosquitto.port, influx, "bounded", backlog_max=50,
                       client_id=f"bounded-{protocol.replace('.', '')}")
    cfg = load_config(cfg_path)
    cfg = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"protocol": protocol})})
    store = InfluxV1Store(influx.url, "bounded", timeout=3)
    svc = IngestService(cfg, store)
    readings = [_reading(i, f"bounded{protocol}") for i in range(400)]
    svc.start()
    try:
        assert svc.subscribed.wait(10), "ingest did not subscribe"
        _publish(mosquitto.port, readings, f"gw-{tmp_path.name}")
        deepest = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            deepest = max(deepest, svc.held)
            assert svc.backlog.qsize() <= svc.held
            time.sleep(0.005)  # sampling the backlog's depth over the window
        assert deepest == 50, f"the backlog reached {deepest} with a bound of 50"
        assert svc.counts["received"] <= 50 + 1  # + the one that waits for room, on 3.1.1
        influx.start()
        _exactly_once(_stored(influx, "bounded", len(readings), 90), readings)
    finally:
        svc.stop()
        store.close()
