"""Stores against real servers: influxd 1.6.7 (v1 API, and 1.8's /api/v2/write through the
compat proxy driven by the real influxdb-client), SQLite, plus a Mosquitto fixture smoke test."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from servers import Influxd, Mosquitto, V2CompatProxy

from homevitals.ingest.errors import StoreError
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.influx_v2 import InfluxV2Store
from homevitals.ingest.points import StoredPoint, point_time_ns, to_line
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.vocab.readings import Event, EventKind, FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

T0 = datetime(2024, 5, 1, 7, 30, 15, 123456, tzinfo=UTC)
T0_NS = 1714548615123456000
WINDOW = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))


def glucose(value: float = 3.4, *, rid: str = "r-1", patient: str = "p1", at: datetime = T0,
            **kw: Any) -> Reading:
    return Reading(
        reading_id=rid, home="h1", patient=patient, device="meter-1",
        measurement=Measurement.GLUCOSE, fields={"glucose": FieldValue(value, Unit.MMOL_PER_L)},
        time=at, received_at=at + timedelta(seconds=2), characteristic="2a18", raw="0a1b",
        **kw,
    )


def blood_pressure() -> Reading:
    f = {"systolic": FieldValue(182.0, Unit.MMHG), "diastolic": FieldValue(95.5, Unit.MMHG),
         "mean_arterial": FieldValue(124.0, Unit.MMHG), "pulse": FieldValue(71, Unit.BPM)}
    return Reading(
        reading_id="r-bp", home="h1", patient="p1", device="cuff-1",
        measurement=Measurement.BLOOD_PRESSURE, fields=f, time=T0 + timedelta(seconds=1),
        received_at=T0, flags=("irregular_pulse", "body_movement"), characteristic="2a35",
    )


def call_button(detail: str = "long press") -> Event:
    return Event(event_id="e-1", home="h1", patient="p1", device="button-1",
                 kind=EventKind.CALL_BUTTON, time=T0, received_at=T0, raw="01", detail=detail)


def rows(server: Influxd, db: str, measurement: str) -> list[dict[str, Any]]:
    """Read through influxd's own /query, independent of the store under test."""
    body: Any = server.query(f'SELECT * FROM "{measurement}"', db=db)
    series = body["results"][0].get("series", [])
    return [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]


def post_line(server: Influxd, db: str, line: str) -> None:
    req = urllib.request.Request(f"{server.url}/write?db={db}", data=line.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


# --- InfluxDB v1 API -------------------------------------------------------------------------


def test_v1_writes_readings_and_events_with_exact_values(influxd: Influxd, influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    store.write([glucose(), blood_pressure(), call_button()])

    # The point sits in the reading's own second, shifted by its id (ingest/points.py).
    assert rows(influxd, influx_db, "glucose") == [{
        "time": point_time_ns(T0_NS, "r-1"), "home": "h1", "patient": "p1", "device": "meter-1",
        "glucose": 3.4,
        "reading_id": "r-1", "raw": "0a1b", "characteristic": "2a18",
    }]
    [bp] = rows(influxd, influx_db, "blood_pressure")
    values = (bp["systolic"], bp["diastolic"], bp["mean_arterial"], bp["pulse"])
    assert values == (182, 95.5, 124, 71)
    assert bp["flags"] == "irregular_pulse,body_movement"
    assert bp["time"] == point_time_ns(T0_NS + 1_000_000_000, "r-bp") and bp["raw"] == ""
    [ev] = rows(influxd, influx_db, "event")
    assert ev == {"time": point_time_ns(T0_NS, "e-1"), "home": "h1", "patient": "p1",
                  "device": "button-1", "kind": "call_button", "event_id": "e-1", "raw": "01",
                  "detail": "long press"}

    [read] = store.query_readings("glucose", "p1", *WINDOW)
    assert read["time"] == T0 and read["time"].tzinfo is not None and read["time_ns"] == T0_NS
    assert read["glucose"] == 3.4 and read["device"] == "meter-1" and "flags" not in read
    assert store.query_readings("event", None, *WINDOW)[0]["kind"] == "call_button"
    assert store.ping().startswith("1.")
    store.close()


def test_v1_redelivery_overwrites_instead_of_adding_a_row(influxd: Influxd, influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    store.write([glucose(), glucose()])
    store.write([glucose()])
    assert len(rows(influxd, influx_db, "glucose")) == 1
    store.write([glucose(rid="r-2", at=T0 + timedelta(microseconds=1))])  # a new reading: a new row
    assert len(rows(influxd, influx_db, "glucose")) == 2


def test_v1_query_filters_patient_and_window_and_escapes(influxd: Influxd, influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db, retention_policy="autogen")
    store.write([glucose(patient="p1"), glucose(rid="r-2", patient="p2"),
                 glucose(rid="r-3", at=T0 + timedelta(hours=2))])
    assert [r["reading_id"] for r in store.query_readings("glucose", "p1", *WINDOW)] == ["r-1"]
    assert len(store.query_readings("glucose", None, *WINDOW)) == 2
    assert store.query_readings("glucose", "p1' OR patient =~ /.*/ OR 'x", *WINDOW) == []
    assert store.query_readings('glu"cose', None, *WINDOW) == []


AWKWARD = 'say "hi", a=b, c\\d\\ back\\\\slash end\\'


def test_line_protocol_escaping_round_trips_awkward_strings(influxd: Influxd,
                                                            influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    store.write([call_button(detail=AWKWARD + " two\nlines"), glucose(flags=("a b", "c=d"))])
    assert rows(influxd, influx_db, "event")[0]["detail"] == AWKWARD + " two\nlines"
    assert rows(influxd, influx_db, "glucose")[0]["flags"] == "a b,c=d"
    # Keys and tag values cannot be awkward through the domain types; check the escaper itself.
    point = StoredPoint("m, x", {"t a,g=": "v a,l=ue"}, {"f i,e=ld": 'q"\\'}, 5)
    post_line(influxd, influx_db, to_line(point))
    assert rows(influxd, influx_db, "m, x") == [{"time": 5, "t a,g=": "v a,l=ue",
                                                "f i,e=ld": 'q"\\'}]


def test_v1_missing_database_is_not_retryable(influxd: Influxd) -> None:
    store = InfluxV1Store(influxd.url, "no_such_db")
    with pytest.raises(StoreError) as err:
        store.write([glucose()])
    assert err.value.retryable is False and err.value.status == 404
    assert "HTTP 404" in str(err.value) and "database not found" in str(err.value)
    assert f"{influxd.url}/write" in str(err.value)


def test_v1_field_type_conflict_is_not_retryable(influxd: Influxd, influx_db: str) -> None:
    # InfluxDB 1.x keeps field types per shard: the conflict must fall in the reading's shard.
    post_line(influxd, influx_db, f'glucose,home=h1 glucose="high" {T0_NS}')
    with pytest.raises(StoreError) as err:
        InfluxV1Store(influxd.url, influx_db).write([glucose()])
    assert err.value.retryable is False and err.value.status == 400
    assert "field type conflict" in str(err.value)


def test_v1_server_down_is_retryable_and_recovers(influxd_factory: Callable[..., Influxd]) -> None:
    server = influxd_factory()
    store = InfluxV1Store(server.url, "vitals", create_database=True)
    store.write([glucose()])
    server.stop()
    with pytest.raises(StoreError) as err:
        store.write([glucose(rid="r-2", at=T0 + timedelta(seconds=5))])
    assert err.value.retryable is True and err.value.status is None
    assert server.url in str(err.value)
    server.start()  # same ports, same data
    store.write([glucose(rid="r-2", at=T0 + timedelta(seconds=5))])
    assert len(rows(server, "vitals", "glucose")) == 2


def test_v1_credentials_work_and_never_appear_in_errors(
    influxd_factory: Callable[..., Influxd],
) -> None:
    server = influxd_factory(auth_enabled=True)
    server.create_admin("admin", "s3cret-pw")
    InfluxV1Store(server.url, "vitals", username="admin", password="s3cret-pw",
                  create_database=True).write([glucose()])
    bad = f"http://admin:wrong-pw@127.0.0.1:{server.port}"
    with pytest.raises(StoreError) as err:
        InfluxV1Store(bad, "vitals").write([glucose()])
    assert err.value.retryable is False and err.value.status == 401
    assert "wrong-pw" not in str(err.value) and "authorization failed" in str(err.value)


# --- InfluxDB 2.x API through InfluxDB 1.8's compatibility endpoint --------------------------


def test_v2_client_writes_through_compat_endpoint(influxd: Influxd, influx_db: str,
                                                  v2_proxy: V2CompatProxy) -> None:
    store = InfluxV2Store(v2_proxy.url, token="", org="-", bucket=f"{influx_db}/autogen")
    assert store.ping() != ""
    store.write([glucose(), blood_pressure(), call_button(AWKWARD)])
    store.write([glucose()])  # redelivery
    reader = InfluxV1Store(influxd.url, influx_db)  # limit of the proxy: no Flux, read via v1
    [g] = reader.query_readings("glucose", "p1", *WINDOW)
    assert (g["time_ns"], g["glucose"], g["reading_id"]) == (T0_NS, 3.4, "r-1")
    assert reader.query_readings("event", "p1", *WINDOW)[0]["detail"] == AWKWARD
    assert reader.query_readings("blood_pressure", None, *WINDOW)[0]["pulse"] == 71.0
    store.close()


def test_v2_bad_token_is_not_retryable(
    influxd_factory: Callable[..., Influxd], v2_proxy_factory: Callable[[Influxd], V2CompatProxy]
) -> None:
    server = influxd_factory(auth_enabled=True)
    server.create_admin("admin", "s3cret-pw")
    server.create_database("vitals")
    proxy = v2_proxy_factory(server)
    InfluxV2Store(proxy.url, "admin:s3cret-pw", "-", "vitals").write([glucose()])
    with pytest.raises(StoreError) as err:
        InfluxV2Store(proxy.url, "admin:wrong-pw", "-", "vitals").write([glucose()])
    assert err.value.retryable is False and err.value.status == 401
    assert "HTTP 401" in str(err.value) and "wrong-pw" not in str(err.value)


def test_v2_missing_database_and_server_down(
    influxd_factory: Callable[..., Influxd], v2_proxy_factory: Callable[[Influxd], V2CompatProxy]
) -> None:
    server = influxd_factory()
    proxy = v2_proxy_factory(server)
    with pytest.raises(StoreError) as err:
        InfluxV2Store(proxy.url, "", "-", "no_such_db/autogen").write([glucose()])
    assert err.value.retryable is False and "database not found" in str(err.value)
    assert str(err.value).endswith(f"Create the database: curl -XPOST '{proxy.url}/query'"
                                   """ --data-urlencode 'q=CREATE DATABASE "no_such_db"'""")
    server.stop()
    with pytest.raises(StoreError) as err:
        InfluxV2Store(proxy.url, "", "-", "vitals").write([glucose()])
    assert err.value.retryable is True and err.value.status == 503
    with pytest.raises(StoreError) as err:  # nothing listening at all
        InfluxV2Store(server.url, "", "-", "vitals", timeout=2).write([glucose()])
    assert err.value.retryable is True and err.value.status is None


# --- SQLite ------------------------------------------------------------------------------------


def test_sqlite_round_trip_and_idempotency(tmp_path: Path) -> None:
    path = tmp_path / "vitals.db"
    store = SqliteStore(path)
    store.write([glucose(), glucose(), blood_pressure(), call_button(AWKWARD)])
    store.write([glucose(4.0)])  # redelivery with a corrected value replaces the row
    store.close()
    store = SqliteStore(path)  # survives reopening
    [g] = store.query_readings("glucose", "p1", *WINDOW)
    assert g == {"time": T0, "time_ns": T0_NS, "home": "h1", "patient": "p1", "device": "meter-1",
                 "glucose": 4.0, "reading_id": "r-1", "raw": "0a1b", "characteristic": "2a18"}
    [bp] = store.query_readings("blood_pressure", None, *WINDOW)
    assert bp["flags"] == "irregular_pulse,body_movement" and bp["systolic"] == 182.0
    [ev] = store.query_readings("event", "p1", *WINDOW)
    assert ev["kind"] == "call_button" and ev["detail"] == AWKWARD
    assert store.query_readings("glucose", "p2", *WINDOW) == []
    assert store.query_readings("glucose", None, T0 + timedelta(microseconds=1), WINDOW[1]) == []
    store.close()


# --- Mosquitto fixture -------------------------------------------------------------------------


def test_mosquitto_fixture_delivers_qos1(mosquitto: Mosquitto) -> None:
    got: list[tuple[str, bytes, int]] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload, msg.qos))
        arrived.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="smoke-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    sub.subscribe("hv/smoke", qos=1)[1]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="smoke-pub")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        for _ in range(50):  # the subscription may not be active yet: publish until it is
            pub.publish("hv/smoke", b"ping", qos=1).wait_for_publish(5)
            if arrived.wait(0.1):
                break
        assert got and got[0] == ("hv/smoke", b"ping", 1)
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()


def test_mosquitto_restart_keeps_persistent_qos1_session(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory()
    got: list[bytes] = []
    arrived = threading.Event()

    def subscriber() -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ingest", clean_session=False)
        c.on_message = lambda _c, _u, msg: (got.append(msg.payload), arrived.set())
        c.connect("127.0.0.1", broker.port)
        return c

    sub = subscriber()
    sub.subscribe("hv/r", qos=1)
    sub.loop(1)
    sub.disconnect()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("hv/r", b"queued while offline", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    broker.restart()  # SIGTERM: Mosquitto saves sessions and queued messages to its store
    sub = subscriber()
    sub.loop_start()
    try:
        assert arrived.wait(5) and got == [b"queued while offline"]
    finally:
        sub.disconnect()
        sub.loop_stop()
