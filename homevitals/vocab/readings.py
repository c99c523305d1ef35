"""Domain values that cross stages: readings, events, gateway status, alert decisions.

Frozen dataclasses that check themselves, so an invalid value can never travel further than the
place that built it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from homevitals.vocab.units import Unit

__all__ = [
    "AlertDecision",
    "AlertState",
    "Event",
    "EventKind",
    "FieldValue",
    "GatewayState",
    "GatewayStatus",
    "Measurement",
    "Reading",
    "SEVERITY_RANK",
    "Severity",
    "check_id",
]

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RAW_RE = re.compile(r"(?:[0-9a-f]{2})+")
# A tuple, not ``int | float``: that expression builds a new union object at every call.
_NUMBER = (int, float)


def check_id(kind: str, value: str) -> str:
    """Ids become MQTT topic levels and InfluxDB tags: no '/', '+', '#', spaces or commas."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{kind} id {value!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
            " and start with a letter or digit"
        )
    return value


def _check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone (got naive {value.isoformat()})")


class Measurement(StrEnum):
    GLUCOSE = "glucose"
    BLOOD_PRESSURE = "blood_pressure"
    HEART_RATE = "heart_rate"
    SPO2 = "spo2"
    TEMPERATURE = "temperature"
    WEIGHT = "weight"
    BATTERY = "battery"


class EventKind(StrEnum):
    CALL_BUTTON = "call_button"


class Severity(StrEnum):
    """IEC 60601-1-8 high/medium/low alarm priorities, plus critical for a call for help."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class AlertState(StrEnum):
    FIRING = "firing"
    UPDATED = "updated"  # issue 14: the episode's severity rose (one update SMS) or fell (none)
    RESOLVED = "resolved"


SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class FieldValue:
    value: float
    unit: Unit

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, _NUMBER):
            raise ValueError(f"value must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"value must be finite, got {self.value!r}")
        if type(self.unit) is not Unit:
            object.__setattr__(self, "unit", Unit(self.unit))


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement from one device, already normalised to wire units.

    ``reading_id`` is assigned once by the gateway and never changes across retries, so every
    sink can absorb duplicates. ``time`` is when the measurement was taken: the device's own time
    stamp when it has one, else the gateway's receive time.
    """

    reading_id: str
    home: str
    patient: str
    device: str
    measurement: Measurement
    fields: Mapping[str, FieldValue]
    time: datetime
    received_at: datetime
    device_time: datetime | None = None
    characteristic: str = ""
    raw: str = ""
    flags: tuple[str, ...] = ()
    context: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id("reading", self.reading_id)
        check_id("home", self.home)
        check_id("patient", self.patient)
        check_id("device", self.device)
        if type(self.measurement) is not Measurement:
            object.__setattr__(self, "measurement", Measurement(self.measurement))
        if not self.fields:
            raise ValueError("a reading needs at least one field")
        for name, fv in self.fields.items():
            if not isinstance(fv, FieldValue):
                raise ValueError(f"field {name!r} must be a FieldValue")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))
        object.__setattr__(self, "flags", tuple(self.flags))
        _check_aware("time", self.time)
        _check_aware("received_at", self.received_at)
        _check_aware("device_time", self.device_time)
        if self.raw and not _RAW_RE.fullmatch(self.raw):
            raise ValueError(f"raw must be lower-case hex bytes, got {self.raw!r}")

    def value(self, name: str) -> float | None:
        fv = self.fields.get(name)
        return None if fv is None else fv.value


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person did, e.g. pressed the call button. ``time`` is the real press time."""

    event_id: str
    home: str
    patient: str
    device: str
    kind: EventKind
    time: datetime
    received_at: datetime
    raw: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        check_id("event", self.event_id)
        check_id("home", self.home)
        check_id("patient", self.patient)
        check_id("device", self.device)
        object.__setattr__(self, "kind", EventKind(self.kind))
        _check_aware("time", self.time)
        _check_aware("received_at", self.received_at)


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    home: str
    state: GatewayState
    time: datetime | None = None

    def __post_init__(self) -> None:
        check_id("home", self.home)
        object.__setattr__(self, "state", GatewayState(self.state))
        _check_aware("time", self.time)


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """What the rule engine decided; the alert service turns it into messages to people.

    ``alert_id`` is stable for one episode (patient, episode, start), so a redelivered decision
    is recognised and never notified twice. An episode groups related conditions of one patient
    (the glucose lows, a hypertensive crisis): ``episode`` names it, ``rule`` and ``severity`` are
    the condition that opened it or raised it (``updated``), and ``conditions`` lists the rules
    that hold after this decision (empty once ``resolved``).
    """

    alert_id: str
    state: AlertState
    home: str
    patient: str
    rule: str
    severity: Severity
    reason: str
    time: datetime
    measurement: str = ""
    field: str = ""
    value: float | None = None
    unit: str = ""
    observed_at: datetime | None = None
    flags: tuple[str, ...] = ()
    source_id: str = ""
    episode: str = ""
    conditions: tuple[str, ...] = ()
    # Rate of change per minute in ``unit`` (negative: falling), when the rule knows it (a CGM
    # trend); the SMS shows it (issue 14). None: unknown.
    trend: float | None = None
    # Issue 19: a ``predicted`` rule's forecast (in ``unit``) and how many minutes ahead it is;
    # ``value`` is then the reading now. None: not a prediction.
    predicted: float | None = None
    horizon_minutes: float | None = None

    def __post_init__(self) -> None:
        check_id("alert", self.alert_id)
        check_id("home", self.home)
        check_id("patient", self.patient)
        check_id("rule", self.rule)
        object.__setattr__(self, "state", AlertState(self.state))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if self.episode:
            check_id("episode", self.episode)
        if not self.reason:
            raise ValueError("an alert decision needs a reason")
        _check_aware("time", self.time)
        _check_aware("observed_at", self.observed_at)
        if self.trend is not None and not math.isfinite(self.trend):
            raise ValueError(f"alert trend must be finite, got {self.trend!r}")
        for name in ("predicted", "horizon_minutes"):
            x = getattr(self, name)
            if x is not None and not math.isfinite(x):
                raise ValueError(f"alert {name} must be finite, got {x!r}")
