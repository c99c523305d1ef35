"""Versioned JSON wire format (see docs/wire-format.md).

Every payload is a UTF-8 JSON object with ``"v": 1`` and a ``"type"``. Times are RFC 3339 in UTC
with microseconds. ``decode`` accepts exactly what ``encode`` writes and raises ``WireError``
naming the first problem; it never evaluates anything from the payload.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from homevitals.vocab.errors import WireError
from homevitals.vocab.readings import (
    AlertDecision,
    Event,
    FieldValue,
    GatewayStatus,
    Measurement,
    Reading,
)
from homevitals.vocab.units import Unit
from homevitals.vocab.wire_reject import DEADLETTER_KEEP, Reject, decode_reject, make_reject
from homevitals.vocab.wire_time import format_time, parse_time

__all__ = [
    "DEADLETTER_KEEP",
    "WIRE_REASONS",
    "WIRE_VERSION",
    "Heartbeat",
    "Message",
    "Reject",
    "decode",
    "encode",
    "encode_reject",
    "make_reject",
    "format_time",
    "parse_time",
]

WIRE_VERSION = 1
# Every reason decode() gives (docs/wire-format.md).
WIRE_REASONS = (
    "bad_json", "bad_version", "bad_type", "missing_field", "bad_field", "bad_value", "bad_unit",
    "bad_time", "bad_measurement", "too_large", "too_deep",
)
MAX_PAYLOAD = 64 * 1024
class Heartbeat(dict[str, Any]):
    """Gateway heartbeat: a plain mapping (queue depth, devices' last-seen and battery)."""


Message = Reading | Event | GatewayStatus | AlertDecision | Heartbeat | Reject


def encode_reject(**kwargs: Any) -> bytes:
    """The dead-letter payload (``make_reject``'s arguments), always under MAX_PAYLOAD."""
    return encode(make_reject(**kwargs))


def _opt_time(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


def encode(msg: Message) -> bytes:
    if isinstance(msg, Reading):
        body: dict[str, Any] = {
            "type": "reading",
            "id": msg.reading_id,
            "home": msg.home,
            "patient": msg.patient,
            "device": msg.device,
            "measurement": str(msg.measurement),
            "fields": {k: {"value": f.value, "unit": str(f.unit)} for k, f in msg.fields.items()},
            "time": format_time(msg.time),
            "device_time": _opt_time(msg.device_time),
            "received_at": format_time(msg.received_at),
            "characteristic": msg.characteristic,
            "raw": msg.raw,
            "flags": list(msg.flags),
            "context": dict(msg.context),
        }
    elif isinstance(msg, Event):
        body = {
            "type": "event",
            "id": msg.event_id,
            "home": msg.home,
            "patient": msg.patient,
            "device": msg.device,
            "event": str(msg.kind),
            "time": format_time(msg.time),
            "received_at": format_time(msg.received_at),
            "raw": msg.raw,
            "detail": msg.detail,
        }
    elif isinstance(msg, GatewayStatus):
        body = {
            "type": "status",
            "home": msg.home,
            "state": str(msg.state),
            "time": _opt_time(msg.time),
        }
    elif isinstance(msg, AlertDecision):
        body = {
            "type": "alert",
            "alert_id": msg.alert_id,
            "state": str(msg.state),
            "home": msg.home,
            "patient": msg.patient,
            "rule": msg.rule,
            "severity": str(msg.severity),
            "reason": msg.reason,
            "time": format_time(msg.time),
            "measurement": msg.measurement,
            "field": msg.field,
            "value": msg.value,
            "unit": msg.unit,
            "observed_at": _opt_time(msg.observed_at),
            "flags": list(msg.flags),
            "source_id": msg.source_id,
            "episode": msg.episode,
            "conditions": list(msg.conditions),
        }
        if msg.trend is not None:  # optional: decoders older than issue 14 never see the key
            body["trend"] = msg.trend
        if msg.predicted is not None:  # issue 19: a forecast, and how far ahead
            body["predicted"] = msg.predicted
            body["horizon_minutes"] = msg.horizon_minutes
    elif isinstance(msg, Heartbeat):
        body = {"type": "heartbeat", **msg}
    elif isinstance(msg, Reject):
        body = {"type": "reject", **msg}
    else:  # pragma: no cover - typing guards this
        raise TypeError(f"cannot encode {type(msg).__name__}")
    return json.dumps(
        {"v": WIRE_VERSION, **body}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _req(obj: dict[str, Any], key: str, kind: type | tuple[type, ...] = str) -> Any:
    value = obj.get(key)
    if type(value) is kind:  # the common case, decided in one comparison
        return value
    if key not in obj:
        raise WireError("missing_field", f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise WireError("bad_field", f"field {key!r} must be {names}, got {value!r}")
    return value


def _has_lone_surrogate(obj: object) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_UNITS = {str(u): u for u in Unit}
# A tuple, not ``int | float``: that expression builds a new union object at every call.
_NUMBER = (int, float)


def _fields(raw: Any) -> dict[str, FieldValue]:
    if not isinstance(raw, dict) or not raw:
        raise WireError("bad_field", "field 'fields' must be a non-empty object")
    out: dict[str, FieldValue] = {}
    for name, item in raw.items():
        if not isinstance(item, dict):
            raise WireError("bad_field", f"fields.{name} must be an object with value and unit")
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            raise WireError("bad_value", f"fields.{name}.value must be a number, got {value!r}")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer of hundreds of digits has no float
            finite = False
        if not finite:
            raise WireError(
                "bad_value", f"fields.{name}.value must be finite, got {_short(value)}"
            )
        unit = item.get("unit")
        known = _UNITS.get(unit) if isinstance(unit, str) else None
        if known is None:
            raise WireError("bad_unit", f"fields.{name}.unit {unit!r} is not a wire unit")
        out[name] = FieldValue(float(value), known)
    return out


def _short(value: object, keep: int = 80) -> str:
    """repr of a value for an error message, cut short (an int of 400 digits, a long string)."""
    try:
        text = repr(value)
    except ValueError:  # int past sys.get_int_max_str_digits
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


def decode(payload: bytes | bytearray) -> Message:
    """One message from its bytes, or WireError naming the first problem. Any payload, of any
    size or shape, ends in one of the two: never another exception."""
    if len(payload) > MAX_PAYLOAD:
        raise WireError("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        return _decode(payload)
    except RecursionError as exc:  # JSON nested deeper than the interpreter's recursion limit
        raise WireError("too_deep", "payload is nested too deeply") from exc
    except OverflowError as exc:  # a number no float or datetime can hold, anywhere
        raise WireError("bad_value", f"a value is out of range: {exc}") from exc


def _decode(payload: bytes | bytearray) -> Message:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError("bad_json", f"payload is not UTF-8 JSON: {exc}") from exc
    if b"\\u" in payload and _has_lone_surrogate(obj):
        # JSON may escape a UTF-16 surrogate half alone ("\\ud800"): no UTF-8 text can hold
        # it, so it would fail at the first encode (MQTT, line protocol), far from here.
        raise WireError("bad_json", "payload holds a lone UTF-16 surrogate escape")
    if not isinstance(obj, dict):
        raise WireError("bad_json", "payload must be a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != WIRE_VERSION:  # true == 1 in Python
        raise WireError(
            "bad_version", f"wire version {version!r} is not supported (expected {WIRE_VERSION})"
        )
    kind = _req(obj, "type")
    try:
        return _DECODERS[kind](obj)
    except KeyError as exc:
        if kind not in _DECODERS:
            raise WireError("bad_type", f"unknown message type {kind!r}") from exc
        raise
    except ValueError as exc:  # raised by the domain types' own checks
        if isinstance(exc, WireError):  # pragma: no cover - WireError is not a ValueError
            raise
        raise WireError("bad_field", str(exc)) from exc


def _decode_reading(o: dict[str, Any]) -> Reading:
    device_time = o.get("device_time")
    return Reading(
        reading_id=_req(o, "id"),
        home=_req(o, "home"),
        patient=_req(o, "patient"),
        device=_req(o, "device"),
        measurement=_measurement(_req(o, "measurement")),
        fields=_fields(o.get("fields")),
        time=parse_time(_req(o, "time"), "time"),
        received_at=parse_time(_req(o, "received_at"), "received_at"),
        device_time=None if device_time is None else parse_time(device_time, "device_time"),
        characteristic=str(o.get("characteristic", "")),
        raw=str(o.get("raw", "")),
        flags=tuple(str(f) for f in _list(o, "flags")),
        context={str(k): str(v) for k, v in _dict(o, "context").items()},
    )


_MEASUREMENTS = {str(m): m for m in Measurement}


def _measurement(value: str) -> Measurement:
    known = _MEASUREMENTS.get(value)
    if known is None:
        raise WireError("bad_measurement", f"unknown measurement {value!r}")
    return known


def _list(o: dict[str, Any], key: str) -> list[Any]:
    value = o.get(key, [])
    if not isinstance(value, list):
        raise WireError("bad_field", f"field {key!r} must be a list")
    return value


def _dict(o: dict[str, Any], key: str) -> dict[str, Any]:
    value = o.get(key, {})
    if not isinstance(value, dict):
        raise WireError("bad_field", f"field {key!r} must be an object")
    return value


def _decode_event(o: dict[str, Any]) -> Event:
    return Event(
        event_id=_req(o, "id"),
        home=_req(o, "home"),
        patient=_req(o, "patient"),
        device=_req(o, "device"),
        kind=_req(o, "event"),
        time=parse_time(_req(o, "time"), "time"),
        received_at=parse_time(_req(o, "received_at"), "received_at"),
        raw=str(o.get("raw", "")),
        detail=str(o.get("detail", "")),
    )


def _decode_status(o: dict[str, Any]) -> GatewayStatus:
    t = o.get("time")
    return GatewayStatus(
        home=_req(o, "home"),
        state=_req(o, "state"),
        time=None if t is None else parse_time(t, "time"),
    )


def _decode_alert(o: dict[str, Any]) -> AlertDecision:
    value = o.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise WireError("bad_value", f"field 'value' must be a number or null, got {value!r}")
    observed = o.get("observed_at")
    return AlertDecision(
        alert_id=_req(o, "alert_id"),
        state=_req(o, "state"),
        home=_req(o, "home"),
        patient=_req(o, "patient"),
        rule=_req(o, "rule"),
        severity=_req(o, "severity"),
        reason=_req(o, "reason"),
        time=parse_time(_req(o, "time"), "time"),
        measurement=str(o.get("measurement", "")),
        field=str(o.get("field", "")),
        value=None if value is None else float(value),
        unit=str(o.get("unit", "")),
        observed_at=None if observed is None else parse_time(observed, "observed_at"),
        flags=tuple(str(f) for f in _list(o, "flags")),
        source_id=str(o.get("source_id", "")),
        episode=str(o.get("episode", "")),  # absent before issue 14
        conditions=tuple(str(c) for c in _list(o, "conditions")),
        trend=_opt_number(o, "trend"),
        predicted=_opt_number(o, "predicted"),
        horizon_minutes=_opt_number(o, "horizon_minutes"),
    )


def _opt_number(o: dict[str, Any], key: str) -> float | None:
    v = o.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise WireError("bad_value", f"field {key!r} must be a number or null, got {v!r}")
    return float(v)


def _decode_heartbeat(o: dict[str, Any]) -> Heartbeat:
    _req(o, "home")
    return Heartbeat({k: v for k, v in o.items() if k not in ("v", "type")})


_DECODERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "reject": decode_reject,
    "reading": _decode_reading,
    "event": _decode_event,
    "status": _decode_status,
    "alert": _decode_alert,
    "heartbeat": _decode_heartbeat,
}
