"""What a characteristic parser returns: ``Decoded``, a frozen value that checks itself."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TypeAlias

from homevitals.vocab.readings import FieldValue, Measurement

__all__ = ["BUTTON_EVENTS", "Decoded", "Detail", "JsonDetail"]

# A value in ``Decoded.details``: what a JSON dump of the decoded value would hold. Numbers with
# a unit are {"value": ..., "unit": ...}. Frozen (mappings are read-only, sequences are tuples).
Detail: TypeAlias = str | int | float | bool | None | tuple["Detail", ...] | Mapping[str, "Detail"]
JsonDetail: TypeAlias = (
    str | int | float | bool | None | list["JsonDetail"] | dict[str, "JsonDetail"]
)

# BTHome v2 button events a person can cause (https://bthome.io/format/, object 0x3A).
BUTTON_EVENTS = frozenset(
    {
        "press",
        "double_press",
        "triple_press",
        "long_press",
        "long_double_press",
        "long_triple_press",
        "hold_press",
    }
)

_CHARACTERISTIC_RE = re.compile(r"^(?:[0-9A-F]{4}|bthome|gpio)\Z")


def _freeze(value: Detail) -> Detail:
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Detail) -> JsonDetail:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded characteristic value.

    ``fields`` are in wire units (homevitals.vocab.units) and are what a Reading carries;
    ``details``
    hold every decoded field in the unit the device sent, for a JSON dump (``to_json()``).
    ``device_time`` is the device's own clock, naive: the caller attaches the home's time zone.
    """

    characteristic: str
    measurement: Measurement | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    device_time: datetime | None = None
    sequence: int | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Detail] = field(default_factory=dict)
    button: str | None = None
    packet_id: int | None = None
    # CGM 0x2AA7: one notification carries several records, each its own Decoded (with
    # ``time_offset``, minutes since the session start) - the outer value has none itself.
    records: tuple[Decoded, ...] = ()
    time_offset: int | None = None
    # A button press time the device itself reported (aware UTC), e.g. BTHome object 0x50.
    event_time: datetime | None = None

    def __post_init__(self) -> None:
        if not _CHARACTERISTIC_RE.match(self.characteristic):
            raise ValueError(
                f"characteristic {self.characteristic!r} must be 4 upper-case hex digits"
                " or 'bthome'"
            )
        if self.measurement is not None:
            object.__setattr__(self, "measurement", Measurement(self.measurement))
            if not self.fields:
                raise ValueError(f"a decoded {self.measurement} needs at least one field")
        for name, fv in self.fields.items():
            if not isinstance(fv, FieldValue):
                raise ValueError(f"field {name!r} must be a FieldValue")
        if self.device_time is not None and self.device_time.tzinfo is not None:
            raise ValueError("device_time is the device's naive local time, got an aware one")
        if self.sequence is not None and not 0 <= self.sequence <= 0xFFFF:
            raise ValueError(f"sequence {self.sequence} is not a uint16")
        if self.packet_id is not None and not 0 <= self.packet_id <= 0xFF:
            raise ValueError(f"packet_id {self.packet_id} is not a uint8")
        if self.event_time is not None and self.event_time.tzinfo is None:
            raise ValueError("event_time must be timezone-aware (UTC)")
        if self.time_offset is not None and not 0 <= self.time_offset <= 0xFFFF:
            raise ValueError(f"time_offset {self.time_offset} is not a uint16")
        if self.button is not None and self.button not in BUTTON_EVENTS:
            raise ValueError(f"button {self.button!r} is not one of {sorted(BUTTON_EVENTS)}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "details", _freeze(dict(self.details)))

    def with_details(self, **extra: Detail) -> Decoded:
        """A copy with more details (e.g. which quirks were applied)."""
        return replace(self, details={**self.details, **extra})

    def to_json(self) -> dict[str, JsonDetail]:
        """Everything decoded, as plain JSON-ready values (for ``homevitals decode``)."""
        return {
            "characteristic": self.characteristic,
            "measurement": None if self.measurement is None else str(self.measurement),
            "fields": {k: {"value": v.value, "unit": str(v.unit)} for k, v in self.fields.items()},
            "flags": list(self.flags),
            "device_time": None if self.device_time is None else self.device_time.isoformat(),
            "sequence": self.sequence,
            "context": dict(self.context),
            "button": self.button,
            "packet_id": self.packet_id,
            "event_time": None if self.event_time is None else self.event_time.isoformat(),
            "time_offset": self.time_offset,
            "records": [r.to_json() for r in self.records],
            "details": {k: _thaw(v) for k, v in self.details.items()},
        }
