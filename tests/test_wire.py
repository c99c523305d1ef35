"""The wire format: what encode writes, decode reads back; what is malformed is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from homevitals.vocab import wire
from homevitals.vocab.errors import WireError
from homevitals.vocab.readings import (
    AlertDecision,
    AlertState,
    Event,
    EventKind,
    FieldValue,
    GatewayState,
    GatewayStatus,
    Measurement,
    Reading,
    Severity,
)
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

T = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)


def _reading(**kw: object) -> Reading:
    base: dict[str, object] = dict(
        reading_id="r1",
        home="home-1",
        patient="ana",
        device="bp-1",
        measurement=Measurement.BLOOD_PRESSURE,
        fields={"systolic": FieldValue(182, Unit.MMHG), "diastolic": FieldValue(121, Unit.MMHG)},
        time=T,
        received_at=T,
        device_time=T,
        characteristic="2A35",
        raw="1eb600",
        flags=("irregular_pulse",),
        context={"user_id": "1"},
    )
    base.update(kw)
    return Reading(**base)  # type: ignore[arg-type]


def test_every_message_type_round_trips() -> None:
    messages: list[wire.Message] = [
        _reading(),
        Event(
            "e1", "home-1", "ana", "button-1", EventKind.CALL_BUTTON, T, T, "4400113a01", "press"
        ),
        GatewayStatus("home-1", GatewayState.OFFLINE),
        AlertDecision(
            "a1",
            AlertState.FIRING,
            "home-1",
            "ana",
            "crisis",
            Severity.HIGH,
            "why",
            T,
            "blood_pressure",
            "systolic",
            182.0,
            "mmHg",
            T,
            ("irregular_pulse",),
            "r1",
        ),
        wire.Heartbeat(home="home-1", queue_depth=3),
    ]
    for msg in messages:
        assert wire.decode(wire.encode(msg)) == msg


def test_reading_payload_names_values_units_and_times() -> None:
    body = json.loads(wire.encode(_reading()))
    assert body["v"] == 1 and body["type"] == "reading"
    assert body["fields"]["systolic"] == {"value": 182, "unit": "mmHg"}
    assert body["time"] == "2026-11-21T02:10:00.000000Z"
    assert body["raw"] == "1eb600"


@pytest.mark.parametrize(
    ("payload", "reason", "message"),
    [
        (b"{not json", "bad_json", "payload is not UTF-8 JSON"),
        (b"[1, 2]", "bad_json", "payload must be a JSON object"),
        (
            b'{"v": 2, "type": "reading"}',
            "bad_version",
            "wire version 2 is not supported (expected 1)",
        ),
        (b'{"v": 1, "type": "weather"}', "bad_type", "unknown message type 'weather'"),
        (b'{"v": 1, "type": "reading", "id": "r1"}', "missing_field", "missing field 'home'"),
        (b"\xff\xfe", "bad_json", "payload is not UTF-8 JSON"),
    ],
)
def test_malformed_payloads_are_named(payload: bytes, reason: str, message: str) -> None:
    with pytest.raises(WireError) as err:
        wire.decode(payload)
    assert err.value.reason == reason
    assert message in str(err.value)


def test_bad_values_inside_a_reading_are_named() -> None:
    good = json.loads(wire.encode(_reading()))
    cases = [
        (
            {"fields": {"systolic": {"value": "high", "unit": "mmHg"}}},
            "bad_value",
            "fields.systolic.value must be a number, got 'high'",
        ),
        (
            {"fields": {"systolic": {"value": 120, "unit": "psi"}}},
            "bad_unit",
            "fields.systolic.unit 'psi' is not a wire unit",
        ),
        ({"time": "yesterday"}, "bad_time", "time 'yesterday' is not an RFC 3339 time"),
        ({"time": "2026-11-21T02:10:00"}, "bad_time", "has no UTC offset"),
        ({"measurement": "mood"}, "bad_measurement", "unknown measurement 'mood'"),
        ({"home": "home/evil"}, "bad_field", "home id 'home/evil' must be"),
    ]
    for change, reason, message in cases:
        with pytest.raises(WireError) as err:
            wire.decode(json.dumps({**good, **change}).encode())
        assert (err.value.reason, message in str(err.value)) == (reason, True), str(err.value)


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        ({"home": "home-1\n"}, "bad_field", "home id 'home-1\\n' must be"),
        ({"device": "bp-1\n"}, "bad_field", "device id 'bp-1\\n' must be"),
        ({"fields": {"systolic": {"value": 120, "unit": ["mmHg"]}}}, "bad_unit",
         "fields.systolic.unit ['mmHg'] is not a wire unit"),
        ({"fields": {"systolic": {"value": 120}}}, "bad_unit",
         "fields.systolic.unit None is not a wire unit"),
        ({"fields": {"systolic": {"value": True, "unit": "mmHg"}}}, "bad_value",
         "fields.systolic.value must be a number, got True"),
        ({"time": 1732154200}, "bad_field", "field 'time' must be str, got 1732154200"),
        ({"device_time": 1732154200}, "bad_time",
         "device_time must be an RFC 3339 string, got 1732154200"),
        ({"id": 7}, "bad_field", "field 'id' must be str, got 7"),
        ({"measurement": ["glucose"]}, "bad_field", "field 'measurement' must be str"),
    ],
)
def test_hostile_values_are_named(change: dict[str, object], reason: str, message: str) -> None:
    """An id with a trailing line break once passed the id check (``$`` matches before a final
    newline) and would have broken an InfluxDB line; unhashable or missing units and booleans
    are named too."""
    good = json.loads(wire.encode(_reading()))
    with pytest.raises(WireError) as err:
        wire.decode(json.dumps({**good, **change}).encode())
    assert err.value.reason == reason
    assert message in str(err.value), str(err.value)


def test_times_with_offsets_become_utc() -> None:
    good = json.loads(wire.encode(_reading()))
    changed = {**good, "time": "2026-11-21T03:10:00.000000+01:00",
               "received_at": "2026-11-21T02:10:00Z"}
    r = wire.decode(json.dumps(changed).encode())
    assert isinstance(r, Reading)
    assert r.time == T and r.time.tzinfo is UTC
    assert r.received_at == T and r.received_at.tzinfo is UTC


def test_nan_is_not_a_value() -> None:
    payload = wire.encode(_reading()).replace(b'"value":182', b'"value":NaN')
    with pytest.raises(WireError, match="must be finite"):
        wire.decode(payload)


def test_topics_layout_and_parse() -> None:
    t = Topics("hv")
    assert t.reading("home-1", "bp-1") == "hv/v1/home/home-1/reading/bp-1"
    assert t.parse("hv/v1/home/home-1/reading/bp-1").leaf == "bp-1"  # type: ignore[union-attr]
    assert t.parse("hv/v1/alert/home-1/ana").kind == "alert"  # type: ignore[union-attr]
    assert t.parse("other/v1/home/home-1/reading/bp-1") is None
    with pytest.raises(ValueError, match="device id 'a/b'"):
        t.reading("home-1", "a/b")


@pytest.mark.parametrize(
    ("replace", "reason", "message"),
    [
        ((b'"value":182', b'"value":' + b"9" * 400), "bad_value",
         "fields.systolic.value must be finite, got " + "9" * 80 + "... (400 characters)"),
        ((b'"context":{"user_id":"1"}', b'"context":' + b"[" * 30_000 + b"]" * 30_000), "too_deep",
         "payload is nested too deeply"),
        ((b'"time":"2026-11-21T02:10:00.000000Z"', b'"time":"9999-12-31T23:00:00-05:00"'),
         "bad_time", "time '9999-12-31T23:00:00-05:00' is out of range"),
        ((b'"time":"2026-11-21T02:10:00.000000Z"', b'"time":"0001-01-01T00:00:00+05:00"'),
         "bad_time", "time '0001-01-01T00:00:00+05:00' is out of range"),
        ((b'"time":"2026-11-21T02:10:00.000000Z"', b'"time":"1969-12-31T23:59:59Z"'),
         "bad_time", "time '1969-12-31T23:59:59Z' is outside 1970-2262"),
        ((b'"raw":"1eb600"', b'"raw":"\\ud800"'), "bad_json",
         "payload holds a lone UTF-16 surrogate escape"),
        ((b'"v":1', b'"v":true'), "bad_version",
         "wire version True is not supported (expected 1)"),
    ],
)
def test_hostile_payloads_end_in_a_named_wire_error(
    replace: tuple[bytes, bytes], reason: str, message: str
) -> None:
    payload = wire.encode(_reading())
    assert replace[0] in payload
    with pytest.raises(WireError) as caught:
        wire.decode(payload.replace(*replace))
    assert (caught.value.reason, str(caught.value)) == (reason, message)


def test_a_dead_letter_keeps_a_bounded_prefix_with_size_and_hash() -> None:
    import hashlib

    big = b"{" + b"x" * 1_000_000
    reject = wire.make_reject(stage="ingest", reason="too_large", error="e" * 5000,
                              topic="t", payload=big, time=datetime(2026, 1, 1, tzinfo=UTC),
                              error_class="WireError")
    assert reject["payload_hex"] == big[: wire.DEADLETTER_KEEP].hex()
    assert reject["payload_size"] == 1_000_001
    assert reject["payload_sha256"] == hashlib.sha256(big).hexdigest()
    assert reject["payload_truncated"] is True and reject["error_class"] == "WireError"
    assert len(reject["error"]) == 1000
    encoded = wire.encode(reject)
    assert len(encoded) < wire.MAX_PAYLOAD
    assert wire.decode(encoded) == reject  # it travels as any other message


def test_an_alert_may_carry_a_trend() -> None:
    """Issue 14: the CGM trend (per minute, in the alert's unit) is optional on the wire; a
    decision without one encodes exactly as before, so older decoders never see the key."""
    d = AlertDecision("a1", AlertState.FIRING, "home-1", "ana", "hypo-level-2", Severity.HIGH,
                      "why", T, "glucose", "glucose", 2.8, "mmol/L", T, trend=-0.1)
    body = json.loads(wire.encode(d))
    assert body["trend"] == -0.1 and wire.decode(wire.encode(d)) == d
    without = AlertDecision("a1", AlertState.FIRING, "home-1", "ana", "r", Severity.HIGH, "why", T)
    assert "trend" not in json.loads(wire.encode(without))
    with pytest.raises(WireError, match="field 'trend' must be a number or null, got 'fast'"):
        wire.decode(json.dumps({**body, "trend": "fast"}).encode())
