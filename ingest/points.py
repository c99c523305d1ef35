"""The one mapping from domain values to stored points, shared by every store.

Schema (InfluxDB line protocol; the SQLite store keeps the same names):

=================  ===============================  ========================================  =====
measurement        tags                             fields                                    time
=================  ===============================  ========================================  =====
``glucose``        home, patient, device            ``glucose`` float mmol/L                  [1]
``blood_pressure`` home, patient, device            ``systolic``, ``diastolic``,              [1]
                                                    ``mean_arterial`` float mmHg;
                                                    ``pulse`` float bpm
other readings     home, patient, device            one float per reading field, in the       [1]
(``spo2`` ...)                                      wire unit of homevitals.vocab.units (%, °C, kg)
every reading      (as above)                       string ``reading_id``, ``raw`` (hex),     [1]
                                                    ``characteristic``; ``flags``
                                                    (comma-joined, omitted when empty)
``event``          home, patient, device, kind      string ``event_id``, ``raw``, ``detail``  [2]
``rejected``       stage, reason, home?, device?    string ``error``, ``topic``,              [3]
                                                    ``payload_hex`` (first 4 KiB), and when
                                                    known ``error_class``,
                                                    ``payload_sha256``; float
                                                    ``payload_size``
``alert``          home, patient, rule, severity,   string ``alert_id``, ``reason``,          [4]
                   state (firing / resolved)        ``measurement``, ``field``; float
                                                    ``value`` (the reading's, its unit)
=================  ===============================  ========================================  =====

[1] ``Reading.time`` in integer nanoseconds since the Unix epoch (UTC), shifted within its second
    by the reading id (below).
[2] ``Event.time``, the real press time, shifted within its second by the event id.
[3] When the stage rejected it, shifted within its second by the payload and error.
[4] When the reading (or press) that fired or resolved the alert was taken, shifted within its
    second by the alert id and state.

Identity and time: InfluxDB keys a point by series (measurement + tags) and time, and a second
point with the same key overwrites the first. Devices stamp readings to the second (a cuff's three
readings of one sitting can share a second), and a tag per reading id would make every reading a
series of its own. So the stored time is the item's time with its fraction of a second moved by a
deterministic offset of 0 to 999 999 999 ns, taken from a hash of the item's id (BLAKE2b, 64 bits,
modulo 10**9) and added modulo one second: the point stays in the item's own second (a
``GROUP BY time(...)`` of a second or more, or a display to the second, is unchanged), a
redelivery (same id, same time) lands on the same point, and two different items of one series
stamped within the same second collide only if their shifted fractions meet: about one chance in
10**9 per pair (three readings of one second: 3 in 10**9). The stores read the shift back out
(``row_time_ns``), so a query returns the item's own time; raw InfluxQL and Grafana see the
shifted time. Points written before this scheme are read back shifted within their second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from homevitals.ingest.errors import StoreError
from homevitals.ingest.store import Row
from homevitals.vocab.readings import AlertDecision, Event, Reading
from homevitals.vocab.wire import Reject, parse_time

__all__ = [
    "ALERT_MEASUREMENT",
    "EVENT_MEASUREMENT",
    "REJECT_MEASUREMENT",
    "RESERVED_FIELDS",
    "StoredPoint",
    "escape_key",
    "escape_measurement",
    "escape_string_field",
    "from_ns",
    "id_offset_ns",
    "item_time_ns",
    "point_time_ns",
    "row_time_ns",
    "rows_in_span",
    "span_ns",
    "time_ns",
    "to_line",
    "to_lines",
    "to_point",
]

EVENT_MEASUREMENT = "event"
REJECT_MEASUREMENT = "rejected"
ALERT_MEASUREMENT = "alert"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = 1_000_000_000
# String fields we add to every reading; a device field with one of these names would clash.
# "time" is refused by InfluxDB itself as a field key.
RESERVED_FIELDS = frozenset({"reading_id", "raw", "flags", "characteristic", "time"})


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One point as every store sees it: the series key, the fields and the time."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float | str]
    time_ns: int

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a point needs at least one field")
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


def time_ns(t: datetime) -> int:
    """Exact integer arithmetic: ``t.timestamp() * 1e9`` would round through a float."""
    return (t - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int) -> datetime:
    """Aware UTC datetime; sub-microsecond digits are dropped (datetime cannot hold them)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def id_offset_ns(identity: str) -> int:
    """A deterministic offset of 0 to 999 999 999 ns from an id (stable across processes and
    Python versions, unlike ``hash()``)."""
    digest = hashlib.blake2b(identity.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SECOND


def point_time_ns(t_ns: int, identity: str) -> int:
    """The stored time of an item stamped ``t_ns``: its fraction of a second shifted by the id's
    offset, modulo one second, so the point never leaves the item's second."""
    second, fraction = divmod(t_ns, _SECOND)
    return second * _SECOND + (fraction + id_offset_ns(identity)) % _SECOND


def item_time_ns(stored_ns: int, identity: str) -> int:
    """Inverse of ``point_time_ns`` for items stamped to the microsecond (every ``datetime``).
    Works on the microsecond alone, so it is also exact when a client (influxdb-client's
    ``datetime``) has dropped the stored time's last three digits."""
    second, fraction = divmod(stored_ns, _SECOND)
    micros = (fraction // 1000 - id_offset_ns(identity) // 1000) % 1_000_000
    return second * _SECOND + micros * 1000


def _identity(measurement: str, fields: Mapping[str, object]) -> str | None:
    """The id a point's time offset is taken from, found in the point's own tags and fields, so
    that the writer and every reader derive the same one. None for a point without one."""
    if measurement == EVENT_MEASUREMENT:
        key = fields.get("event_id")
    elif measurement == ALERT_MEASUREMENT:
        # An alert's firing and resolved points are two series in InfluxDB (the state tag) but
        # one key in the SQLite store: their offsets differ so that neither hides the other.
        key = f"{fields.get('alert_id', '')}\x1f{fields.get('state', '')}"
    elif measurement == REJECT_MEASUREMENT:
        # The whole payload's hash where the kept hex is only a bounded prefix of it.
        payload = fields.get("payload_sha256") or fields.get("payload_hex", "")
        return f"{payload}\x1f{fields.get('error', '')}"
    else:
        key = fields.get("reading_id")
    return key if isinstance(key, str) else None


def row_time_ns(measurement: str, stored_ns: int, row: Mapping[str, object]) -> int:
    """The item's own time from a stored point's time and its fields (a store's read-back)."""
    identity = _identity(measurement, row)
    return stored_ns if identity is None else item_time_ns(stored_ns, identity)


def span_ns(start: datetime, end: datetime) -> tuple[int, int]:
    """The stored-time span to query for items stamped in ``[start, end)``: whole seconds around
    it, since a point may sit anywhere in its item's second."""
    first = time_ns(start) // _SECOND * _SECOND
    return first, -(-time_ns(end) // _SECOND) * _SECOND


def rows_in_span(rows: list[Row], start: datetime, end: datetime) -> list[Row]:
    """Rows (with the item's ``time_ns``) stamped in ``[start, end)``, oldest first."""
    lo, hi = time_ns(start), time_ns(end)
    return sorted((r for r in rows if lo <= r["time_ns"] < hi), key=lambda r: r["time_ns"])


def to_point(item: Reading | Event | Reject | AlertDecision) -> StoredPoint:
    if isinstance(item, Reading):
        return _reading_point(item)
    if isinstance(item, Event):
        return _event_point(item)
    if isinstance(item, AlertDecision):
        return _alert_point(item)
    return _reject_point(item)


def _alert_point(d: AlertDecision) -> StoredPoint:
    """Alert decisions, for dashboards (Grafana annotations) and reports. The alert service's
    ledger stays the record of who was told what; this is the when and why, next to the data."""
    tags = {"home": d.home, "patient": d.patient, "rule": d.rule, "severity": str(d.severity),
            "state": str(d.state)}
    fields: dict[str, float | str] = {"alert_id": d.alert_id, "reason": d.reason,
                                      "measurement": d.measurement, "field": d.field}
    if d.value is not None:
        fields["value"] = float(d.value)
    return _point(ALERT_MEASUREMENT, tags, fields, time_ns(d.observed_at or d.time))


def _reading_point(r: Reading) -> StoredPoint:
    clash = RESERVED_FIELDS.intersection(r.fields)
    if clash:
        raise StoreError(
            f"reading {r.reading_id}: field name(s) {sorted(clash)} are reserved by the"
            " store schema",
            retryable=False,
        )
    fields: dict[str, float | str] = {k: float(v.value) for k, v in r.fields.items()}
    fields["reading_id"] = r.reading_id
    fields["raw"] = r.raw
    fields["characteristic"] = r.characteristic
    if r.flags:
        fields["flags"] = ",".join(r.flags)
    tags = {"home": r.home, "patient": r.patient, "device": r.device}
    t_ns = point_time_ns(time_ns(r.time), r.reading_id)
    return StoredPoint(str(r.measurement), tags, fields, t_ns)


def _event_point(e: Event) -> StoredPoint:
    tags = {"home": e.home, "patient": e.patient, "device": e.device, "kind": str(e.kind)}
    fields: dict[str, float | str] = {"event_id": e.event_id, "raw": e.raw, "detail": e.detail}
    return _point(EVENT_MEASUREMENT, tags, fields, time_ns(e.time))


def _reject_point(r: Reject) -> StoredPoint:
    """A dead-lettered message, kept with its reason. Identical redeliveries land on one point;
    different payloads or errors in the same second are told apart by their offsets."""
    tags = {k: str(r[k]) for k in ("stage", "reason", "home", "device") if r.get(k)}
    fields: dict[str, float | str] = {
        "error": str(r.get("error", "")),
        "topic": str(r.get("topic", "")),
        "payload_hex": str(r.get("payload_hex", "")),
    }
    for key in ("error_class", "payload_sha256"):  # absent from older dead letters
        if r.get(key):
            fields[key] = str(r[key])
    size = r.get("payload_size")
    if isinstance(size, int) and not isinstance(size, bool):
        fields["payload_size"] = float(size)
    t = parse_time(r["time"], "time") if r.get("time") else datetime.now(UTC)
    return _point(REJECT_MEASUREMENT, tags, fields, time_ns(t))


def _point(measurement: str, tags: dict[str, str], fields: dict[str, float | str],
           t_ns: int) -> StoredPoint:
    identity = _identity(measurement, {**tags, **fields})
    assert identity is not None  # every point we build carries its id
    return StoredPoint(measurement, tags, fields, point_time_ns(t_ns, identity))


# Line protocol escaping rules: https://docs.influxdata.com/influxdb/v1/write_protocols/
# line_protocol_reference/#special-characters - measurement: comma, space; tag keys, tag values,
# field keys: comma, equals sign, space; string field values: double quote, backslash.
# A newline can never be escaped in a key, so it is refused rather than silently mangled.
def _escape(value: str, specials: str, kind: str) -> str:
    if not value:
        raise StoreError(f"empty {kind} cannot be written as line protocol", retryable=False)
    if "\n" in value or "\r" in value:
        raise StoreError(f"{kind} {value!r} contains a line break", retryable=False)
    for ch in specials:
        value = value.replace(ch, "\\" + ch)
    return value


def escape_measurement(name: str) -> str:
    return _escape(name, ", ", "measurement")


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys."""
    return _escape(key, ",= ", "key or tag value")


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field_value(value: float | str) -> str:
    if isinstance(value, str):
        return escape_string_field(value)
    return repr(float(value))  # repr round-trips a float exactly; InfluxDB parses "1e-05" too


def to_line(p: StoredPoint) -> str:
    # Tags sorted by key: InfluxDB's recommendation, and it makes the line deterministic.
    tags = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(p.tags.items()))
    fields = ",".join(f"{escape_key(k)}={_field_value(v)}" for k, v in p.fields.items())
    return f"{escape_measurement(p.measurement)}{tags} {fields} {p.time_ns}"


def to_lines(items: Sequence[Reading | Event | Reject | AlertDecision]) -> str:
    """The body of one write request: one line per item, newline-separated."""
    return "\n".join(
        _reading_line(item) if type(item) is Reading else to_line(to_point(item)) for item in items
    )


# Readings are nearly all of what ingest writes. Their line is the same as
# ``to_line(to_point(r))`` (tests/test_line_protocol.py holds them equal) but the escaped series
# key (measurement and sorted tags) and field keys are remembered: a district has a few thousand
# devices and a handful of field names, and escaping them again for every reading was a third of
# the cost of a line. The memories are cleared when they grow past a bound.
_SERIES: dict[tuple[str, str, str, str], str] = {}
_FIELD_KEYS: dict[str, str] = {}
_MEMO_MAX = 100_000


def _reading_line(r: Reading) -> str:
    series_key = (r.measurement, r.home, r.patient, r.device)
    series = _SERIES.get(series_key)
    if series is None:
        tags = {"home": r.home, "patient": r.patient, "device": r.device}
        series = escape_measurement(str(r.measurement)) + "".join(
            f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items())
        )
        if len(_SERIES) >= _MEMO_MAX:
            _SERIES.clear()
        _SERIES[series_key] = series
    parts = []
    for name, fv in r.fields.items():
        key = _FIELD_KEYS.get(name)
        if key is None:
            if name in RESERVED_FIELDS:
                _reading_point(r)  # raises the reserved-field error
            key = escape_key(name)
            if len(_FIELD_KEYS) >= _MEMO_MAX:
                _FIELD_KEYS.clear()
            _FIELD_KEYS[name] = key
        parts.append(f"{key}={float(fv.value)!r}")
    parts.append(f"reading_id={escape_string_field(r.reading_id)}")
    parts.append(f"raw={escape_string_field(r.raw)}")
    parts.append(f"characteristic={escape_string_field(r.characteristic)}")
    if r.flags:
        parts.append(f"flags={escape_string_field(','.join(r.flags))}")
    return f"{series} {','.join(parts)} {point_time_ns(time_ns(r.time), r.reading_id)}"
