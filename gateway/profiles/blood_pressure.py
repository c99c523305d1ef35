"""Blood Pressure Measurement (0x2A35).

Layout from the Bluetooth Blood Pressure Profile/Service 1.0 (BLS) and the GATT Specification
Supplement section "Blood Pressure Measurement": flags, systolic, diastolic and mean arterial
pressure as SFLOAT, then the optional time stamp, pulse rate, user id and measurement status
that the flags announce, in that order. Little-endian throughout.
"""

from __future__ import annotations

from collections.abc import Mapping

from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.ieee11073 import decode_sfloat, sfloat_special
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit, kpa_to_mmhg

__all__ = ["STATUS_FLAGS", "decode_measurement"]

_WHERE = "0x2A35"

# GSS Blood Pressure Measurement, Flags field.
_KPA = 0x01
_TIME_STAMP = 0x02
_PULSE = 0x04
_USER_ID = 0x08
_STATUS = 0x10

_UNKNOWN_USER = 0xFF

# GSS Blood Pressure Measurement, Measurement Status: single bits, and bits 3-4 for the pulse
# rate range (0 within, 1 above the upper limit, 2 below the lower limit, 3 reserved).
_STATUS_BITS = {0: "body_movement", 1: "cuff_too_loose", 2: "irregular_pulse",
                5: "improper_position"}
_PULSE_RANGE = {1: "pulse_above_range", 2: "pulse_below_range"}
STATUS_FLAGS = frozenset({*_STATUS_BITS.values(), *_PULSE_RANGE.values()})


def _status_flags(raw: int) -> tuple[str, ...]:
    names = [name for bit, name in _STATUS_BITS.items() if bit < 3 and raw & (1 << bit)]
    pulse_range = _PULSE_RANGE.get((raw >> 3) & 0x03)
    if pulse_range is not None:
        names.append(pulse_range)
    if raw & (1 << 5):
        names.append(_STATUS_BITS[5])
    return tuple(names)


def _pressure(r: Reader, what: str, field: str, kpa: bool) -> tuple[float, float]:
    """(value as sent, value in mmHg)."""
    value = decode_sfloat(r.uint(2, what, optional=False), where=_WHERE, field=field)
    return value, round(kpa_to_mmhg(value), 1) if kpa else value


def decode_measurement(data: bytes) -> Decoded:
    """Decode a Blood Pressure Measurement value; pressures normalised to mmHg."""
    r = Reader(data, _WHERE)
    r.require(7, "flags, systolic, diastolic, mean arterial pressure")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    kpa = bool(flags & _KPA)
    unit = "kPa" if kpa else "mmHg"
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}", "unit": unit}
    fields: dict[str, FieldValue] = {}
    for name, what, field in (("systolic", "the systolic pressure", "systolic pressure"),
                              ("diastolic", "the diastolic pressure", "diastolic pressure")):
        sent, mmhg = _pressure(r, what, field, kpa)
        details[name] = {"value": sent, "unit": unit}
        fields[name] = FieldValue(mmhg, Unit.MMHG)
    _mean_arterial(r, kpa, unit, fields, details)
    device_time = None
    if flags & _TIME_STAMP:
        device_time, text = date_time(r.take(7, "a time stamp"), where=_WHERE, field="time stamp")
        details["time_stamp"] = text
    if flags & _PULSE:
        _pulse(r, fields, details)
    context: dict[str, str] = {}
    if flags & _USER_ID:
        user = r.uint(1, "a user id")
        context["user_id"] = "unknown" if user == _UNKNOWN_USER else str(user)
        details["user_id"] = user
    flag_names: tuple[str, ...] = ()
    if flags & _STATUS:
        status = r.uint(2, "a measurement status")
        flag_names = _status_flags(status)
        details["measurement_status"] = {"raw": f"0x{status:04X}", "flags": flag_names}
    rest = r.rest()
    if rest:
        details["unparsed"] = rest.hex()
    _plausible(fields, details, unit)
    return Decoded(characteristic="2A35", measurement=Measurement.BLOOD_PRESSURE, fields=fields,
                   flags=flag_names, device_time=device_time, context=context, details=details)


def _plausible(fields: dict[str, FieldValue], details: dict[str, Detail], unit: str) -> None:
    """After the layout checks, so a short value is named as short, not as implausible."""
    for name, quantity, sent_unit in (("systolic", "pressure", unit),
                                      ("diastolic", "pressure", unit),
                                      ("mean_arterial", "pressure", unit),
                                      ("pulse", "pulse", "bpm")):
        sent = details.get(name)
        if name in fields and isinstance(sent, Mapping):
            value = sent["value"]
            assert isinstance(value, int | float)
            plausibility.check(_WHERE, quantity, fields[name].value, value, sent_unit)


def _optional_sfloat(raw: int, field: str) -> float | None:
    # Mean arterial pressure and pulse rate are extras a monitor may not compute; BLS devices
    # send NaN for "no value" there (as the Intermediate Cuff Pressure does for its unused
    # fields). NaN drops the field; any other special value is still an error.
    if sfloat_special(raw) == "NaN":
        return None
    value: float = decode_sfloat(raw, where=_WHERE, field=field)
    return value


def _mean_arterial(r: Reader, kpa: bool, unit: str, fields: dict[str, FieldValue],
                   details: dict[str, Detail]) -> None:
    value = _optional_sfloat(r.uint(2, "the mean arterial pressure", optional=False),
                             "mean arterial pressure")
    if value is None:
        details["mean_arterial"] = "NaN"
        return
    details["mean_arterial"] = {"value": value, "unit": unit}
    fields["mean_arterial"] = FieldValue(round(kpa_to_mmhg(value), 1) if kpa else value,
                                         Unit.MMHG)


def _pulse(r: Reader, fields: dict[str, FieldValue], details: dict[str, Detail]) -> None:
    value = _optional_sfloat(r.uint(2, "a pulse rate"), "pulse rate")
    if value is None:
        details["pulse"] = "NaN"
        return
    details["pulse"] = {"value": value, "unit": "bpm"}
    fields["pulse"] = FieldValue(value, Unit.BPM)
