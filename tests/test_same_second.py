"""Issue 13.5: readings stamped in the same second never overwrite each other, and a redelivered
reading still lands on its one point. Real influxd 1.6.7 (v1 API, and 1.8's /api/v2/write through
the compat proxy driven by influxdb-client), the embedded SQLite store, and the whole path from a
simulated cuff through the gateway, real Mosquitto and the ingest daemon."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
import yaml
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from servers import Influxd, V2CompatProxy

from homevitals.gateway.app import GatewayApp
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.influx_v2 import InfluxV2Store
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.ingest.store import Storable, Store
from homevitals.roots.scripted_gateway import run_script
from homevitals.simulators.ble_values import encode_bp_measurement
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.simulators.household import demo_config
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config
from homevitals.vocab.readings import (
    AlertDecision,
    AlertState,
    Event,
    EventKind,
    FieldValue,
    Measurement,
    Reading,
    Severity,
)
from homevitals.vocab.units import Unit
from homevitals.vocab.wire import Reject

T = datetime(2026, 11, 20, 7, 0, 5, tzinfo=UTC)  # a cuff's one-second time stamp
WINDOW = (T - timedelta(hours=1), T + timedelta(hours=1))


def _bp(rid: str, systolic: float) -> Reading:
    f = {"systolic": FieldValue(systolic, Unit.MMHG), "diastolic": FieldValue(85, Unit.MMHG),
         "mean_arterial": FieldValue(100, Unit.MMHG), "pulse": FieldValue(70, Unit.BPM)}
    return Reading(rid, "h1", "p1", "cuff-1", Measurement.BLOOD_PRESSURE, f, T,
                   T + timedelta(seconds=1), characteristic="2a35")


def _press(eid: str) -> Event:
    return Event(event_id=eid, home="h1", patient="p1", device="button-1",
                 kind=EventKind.CALL_BUTTON, time=T, received_at=T, raw="01", detail="press")


def _alert(aid: str, state: AlertState = AlertState.FIRING) -> AlertDecision:
    return AlertDecision(aid, state, "h1", "p1", "bp-high", Severity.HIGH,
                         "high blood pressure", T, "blood_pressure", "systolic", 182.0,
                         "mmHg", observed_at=T)


def _reject(payload_hex: str) -> Reject:
    return Reject({"stage": "ingest", "reason": "bad_json", "error": "not JSON",
                   "topic": "t", "payload_hex": payload_hex, "time": "2026-11-20T07:00:05Z"})


# Three readings of one sitting, two presses, two alerts (one also resolved) and two dead letters,
# each group in one second.
ITEMS: list[Storable] = [
    _bp("bp-a", 141), _bp("bp-b", 137), _bp("bp-c", 135), _press("e-a"), _press("e-b"),
    _alert("al-a"), _alert("al-b"), _alert("al-a", AlertState.RESOLVED), _reject("7b"),
    _reject("7b7b"),
]


class _V2WriteV1Read:
    """influxdb-client writes (the compat proxy has no Flux); reads go through the v1 API."""

    def __init__(self, proxy: V2CompatProxy, influxd: Influxd, db: str) -> None:
        self.writer = InfluxV2Store(proxy.url, token="", org="-", bucket=f"{db}/autogen")
        self.reader = InfluxV1Store(influxd.url, db)
        self.write = self.writer.write
        self.query_readings = self.reader.query_readings

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


@pytest.fixture(params=["influx_v1", "influx_v2", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "vitals.db")
    else:
        influxd = request.getfixturevalue("influxd")
        db = request.getfixturevalue("influx_db")
        s = (InfluxV1Store(influxd.url, db) if request.param == "influx_v1"
             else _V2WriteV1Read(request.getfixturevalue("v2_proxy"), influxd, db))
    yield s
    s.close()


def _stored(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {m: store.query_readings(m, None, *WINDOW)
            for m in ("blood_pressure", "event", "alert", "rejected")}


def test_items_of_one_second_keep_their_rows_and_redeliveries_do_not_add(store: Store) -> None:
    store.write(ITEMS)
    store.write(ITEMS[::-1])  # everything redelivered, in another order
    store.write([ITEMS[0]])
    got = _stored(store)
    assert sorted(r["reading_id"] for r in got["blood_pressure"]) == ["bp-a", "bp-b", "bp-c"]
    assert sorted(r["systolic"] for r in got["blood_pressure"]) == [135.0, 137.0, 141.0]
    assert sorted(r["event_id"] for r in got["event"]) == ["e-a", "e-b"]
    assert sorted((r["alert_id"], r["state"]) for r in got["alert"]) == [
        ("al-a", "firing"), ("al-a", "resolved"), ("al-b", "firing")]
    assert sorted(r["payload_hex"] for r in got["rejected"]) == ["7b", "7b7b"]
    # Read back at the items' own time stamp, not the shifted point time.
    assert {r["time"] for rows in got.values() for r in rows} == {T}
    # The window is still exact to the microsecond at both ends.
    assert store.query_readings("blood_pressure", None, T + timedelta(microseconds=1),
                                WINDOW[1]) == []
    assert store.query_readings("blood_pressure", None, WINDOW[0], T) == []
    assert len(store.query_readings("blood_pressure", "p1", T, T + timedelta(microseconds=1))) == 3


# --- the whole path: cuff -> gateway -> Mosquitto -> ingest -> influxd ----------------------

ZONE = ZoneInfo("Europe/Ljubljana")
SITTING = datetime(2026, 11, 20, 8, 0, 5, tzinfo=ZONE)  # the cuff's clock, to the second


def _cuff_script() -> list[ScheduledValue]:
    """Three readings in one sitting, all stamped 08:00:05 by the cuff, received within 0.6 s."""
    stamp = SITTING.replace(tzinfo=None)
    return [
        ScheduledValue(SITTING + timedelta(milliseconds=100 + 300 * i), "bp-1", "2A35",
                       encode_bp_measurement(s, 84, 99, timestamp=stamp, pulse=70))
        for i, s in enumerate((141, 137, 135))
    ]


class _Readings:
    """Keeps every reading payload the broker delivers, to redeliver one as the broker would."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reading-watch")
        self.client.on_connect = lambda c, *_: c.subscribe("homevitals/v1/home/+/reading/#", 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_cuff_sitting_through_the_pipeline_keeps_three_rows(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": mosquitto.port}
    base["store"] = {"kind": "influx_v1", "url": influxd.url, "database": influx_db}
    base["gateway"]["queue_path"] = str(tmp_path / "queue.sqlite")
    cfg_path = write_config(tmp_path / "hv.yaml", base)
    cfg = Config.model_validate(yaml.safe_load(cfg_path.read_text()))
    watch = _Readings(mosquitto.port)
    ingest = Daemon("ingest", cfg_path, tmp_path)
    store = InfluxV1Store(influxd.url, influx_db)
    span = (SITTING - timedelta(hours=1), SITTING + timedelta(hours=1))
    try:
        assert watch.ready.wait(10)
        ingest.wait_log("ready: subscribed")
        clock = SimulatedClock(SITTING)
        radio = ScriptedRadio(cfg.home("home-novak"), clock)
        app = GatewayApp(cfg, radio, clock)
        assert asyncio.run(run_script(app, radio, clock, _cuff_script(), drain_seconds=20)) == 0
        bp = wait_until("three rows", lambda: len(
            r := store.query_readings("blood_pressure", "ana", *span)) == 3 and r, 30)
        assert sorted(r["systolic"] for r in bp) == [135.0, 137.0, 141.0]
        assert {r["time"] for r in bp} == {SITTING.astimezone(UTC)}

        # The broker delivers the first reading again, then a new reading a minute later.
        wait_until("three delivered", lambda: len(watch.got) == 3, 10)
        topic, first = watch.got[0]
        watch.publish(topic, first)
        later = json.loads(first)
        later.update(id="later-reading", time="2026-11-20T07:01:05.000000Z")
        watch.publish(topic, json.dumps(later).encode())
        bp = wait_until("the later reading", lambda: len(
            r := store.query_readings("blood_pressure", "ana", *span)) >= 4 and r, 30)
        assert sorted(r["reading_id"] for r in bp) == sorted(
            [json.loads(p)["id"] for _, p in watch.got[:3]] + ["later-reading"])
        assert ingest.terminate() == 0
    finally:
        ingest.kill()
        watch.close()
        store.close()


# --- InfluxDB 2.x reads (Flux) ------------------------------------------------------------------


class _FluxFront:
    """Answers influxdb-client's Flux query with the points stored in the real influxd, as an
    InfluxDB 2.x server would after ``pivot``: annotated CSV, times to the nanosecond. No Flux
    server runs here (influxd 1.6.7 has none); the client's parsing is the real one."""

    def __init__(self, influxd: Influxd, db: str) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = front.csv().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.influxd, self.db = influxd, db
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def csv(self) -> str:
        body: Any = self.influxd.query('SELECT * FROM "blood_pressure"', db=self.db)
        (series,) = body["results"][0]["series"]
        cols = series["columns"][1:]
        lines = [
            "#datatype,string,long,dateTime:RFC3339Nano,string,"
            + ",".join("double" if c in ("systolic", "diastolic", "mean_arterial", "pulse")
                       else "string" for c in cols),
            "#group,false,false,false,true," + ",".join("false" for _ in cols),
            "#default,_result,,,,," + ",".join("" for _ in cols[1:]),
            ",result,table,_time,_measurement," + ",".join(cols),
        ]
        for values in series["values"]:
            second, ns = divmod(values[0], 10**9)
            stamp = f"{datetime.fromtimestamp(second, UTC):%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"
            cells = ["" if v is None else str(v) for v in values[1:]]
            lines.append(f",,0,{stamp},blood_pressure," + ",".join(cells))
        return "\r\n".join(lines) + "\r\n\r\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_v2_reads_give_each_reading_its_own_time(influxd: Influxd, influx_db: str) -> None:
    InfluxV1Store(influxd.url, influx_db).write(ITEMS[:3])
    front = _FluxFront(influxd, influx_db)
    store = InfluxV2Store(front.url, token="t", org="o", bucket="b")
    try:
        got = store.query_readings("blood_pressure", "p1", *WINDOW)
    finally:
        store.close()
        front.close()
    # influxdb-client's datetimes drop the stored time's last three digits; the offset comes
    # out exactly anyway.
    assert sorted((r["reading_id"], r["time"], r["time_ns"]) for r in got) == [
        (rid, T, int(T.timestamp()) * 10**9) for rid in ("bp-a", "bp-b", "bp-c")]
