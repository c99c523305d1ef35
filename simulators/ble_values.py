"""Byte-exact characteristic values for simulated BLE health devices.

A simulated glucose meter, blood pressure monitor or call button produces exactly the bytes the
real device would put on the air, so the gateway's parsers run unchanged against it. Layouts:
GLS 1.0 / GSS "Glucose Measurement" and "Glucose Measurement Context", BLS 1.0 / GSS "Blood
Pressure Measurement", BTHome v2 (https://bthome.io/format/). Numbers are IEEE 11073-20601
SFLOAT. This module deliberately repeats those layouts instead of importing the gateway: stages
never import each other, and an independent encoder is what makes the round-trip tests mean
something.

The ``SFLOAT_*`` constants stand for the special values; pass one wherever a value is expected
to make a corrupted measurement (e.g. ``encode_bp_measurement(SFLOAT_NAN, 80, 93)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from homevitals.vocab.units import MGDL_PER_MMOLL

__all__ = [
    "BP_STATUS_BITS",
    "BUTTON_EVENT_CODES",
    "GLUCOSE_STATUS_BITS",
    "SFLOAT_NAN",
    "SFLOAT_NEG_INF",
    "SFLOAT_NRES",
    "SFLOAT_POS_INF",
    "SFLOAT_RESERVED",
    "SfloatSpecial",
    "encode_bp_measurement",
    "encode_bthome_button",
    "encode_date_time",
    "encode_glucose_context",
    "encode_glucose_measurement",
    "encode_sfloat",
]

_MMHG_PER_KPA = 7.500615


@dataclass(frozen=True, slots=True)
class SfloatSpecial:
    """An IEEE 11073 SFLOAT special value (exponent 0, reserved mantissa)."""

    name: str
    raw: int

    def __post_init__(self) -> None:
        if self.raw not in range(0x07FE, 0x0803):
            raise ValueError(f"0x{self.raw:04X} is not an SFLOAT special value")

    def to_bytes(self) -> bytes:
        return self.raw.to_bytes(2, "little")


SFLOAT_NAN = SfloatSpecial("NaN", 0x07FF)
SFLOAT_NRES = SfloatSpecial("NRes", 0x0800)
SFLOAT_POS_INF = SfloatSpecial("+INF", 0x07FE)
SFLOAT_NEG_INF = SfloatSpecial("-INF", 0x0802)
SFLOAT_RESERVED = SfloatSpecial("reserved", 0x0801)

Number = float | SfloatSpecial

# Mantissas the specials use; kept out of ordinary values at every exponent, because some
# decoders recognise the specials by mantissa alone.
_MANTISSA_MIN, _MANTISSA_MAX = -2045, 2045

GLUCOSE_STATUS_BITS = (
    "device_battery_low", "sensor_malfunction", "sample_size_insufficient",
    "strip_insertion_error", "strip_type_incorrect", "result_above_range",
    "result_below_range", "sensor_temperature_high", "sensor_temperature_low",
    "sensor_read_interrupted", "general_device_fault", "time_fault",
)
BP_STATUS_BITS = {"body_movement": 0x0001, "cuff_too_loose": 0x0002, "irregular_pulse": 0x0004,
                  "pulse_above_range": 0x0008, "pulse_below_range": 0x0010,
                  "improper_position": 0x0020}
BUTTON_EVENT_CODES = {"none": 0x00, "press": 0x01, "double_press": 0x02, "triple_press": 0x03,
                      "long_press": 0x04, "long_double_press": 0x05, "long_triple_press": 0x06,
                      "hold_press": 0x80}
_MEALS = {"preprandial": 1, "postprandial": 2, "fasting": 3, "casual": 4, "bedtime": 5}
_CARBOHYDRATES = {"breakfast": 1, "lunch": 2, "dinner": 3, "snack": 4, "drink": 5, "supper": 6,
                  "brunch": 7}
_TESTERS = {"self": 1, "health_care_professional": 2, "lab_test": 3, "not_available": 15}
_HEALTH = {"minor_health_issues": 1, "major_health_issues": 2, "during_menses": 3,
           "under_stress": 4, "no_health_issues": 5, "not_available": 15}


def encode_sfloat(value: Number, exponent: int) -> bytes:
    """``value`` as a little-endian SFLOAT with the given exponent (-8..7)."""
    if isinstance(value, SfloatSpecial):
        return value.to_bytes()
    if not -8 <= exponent <= 7:
        raise ValueError(f"SFLOAT exponent {exponent} is outside -8..7")
    scale: int = 10 ** abs(exponent)
    mantissa = round(value * scale) if exponent < 0 else round(value / scale)
    if not _MANTISSA_MIN <= mantissa <= _MANTISSA_MAX:
        raise ValueError(f"{value} does not fit an SFLOAT with exponent {exponent}")
    return (((exponent & 0x0F) << 12) | (mantissa & 0x0FFF)).to_bytes(2, "little")


def encode_date_time(value: datetime) -> bytes:
    """GSS Date Time: uint16 year, month, day, hours, minutes, seconds (naive device time)."""
    if value.tzinfo is not None:
        raise ValueError("a device clock has no time zone: pass a naive datetime")
    return value.year.to_bytes(2, "little") + bytes(
        [value.month, value.day, value.hour, value.minute, value.second]
    )


def _glucose_concentration(mmol_l: Number, unit: str) -> bytes:
    if isinstance(mmol_l, SfloatSpecial):
        return mmol_l.to_bytes()
    if unit == "kg/L":
        # Meters send kg/L with exponent -5, i.e. whole mg/dL.
        return encode_sfloat(mmol_l * MGDL_PER_MMOLL * 1e-5, -5)
    if unit == "mol/L":
        # 0.01 mmol/L resolution while the mantissa fits (to 20.45 mmol/L), then 0.1.
        exponent = -5 if abs(mmol_l) * 100 <= _MANTISSA_MAX else -4
        return encode_sfloat(mmol_l * 1e-3, exponent)
    raise ValueError(f"glucose unit {unit!r} must be 'kg/L' or 'mol/L'")


def _status_word(status: int | Iterable[str], names: Iterable[str]) -> int:
    if isinstance(status, int):
        if not 0 <= status <= 0xFFFF:
            raise ValueError(f"status {status} is not 16 bits")
        return status
    bits = {name: 1 << i for i, name in enumerate(names)}
    unknown = set(status) - set(bits)
    if unknown:
        raise ValueError(f"unknown status flags {sorted(unknown)}; known: {sorted(bits)}")
    return sum(bits[name] for name in set(status))


def encode_glucose_measurement(
    sequence: int,
    base_time: datetime,
    concentration_mmol_l: Number | None,
    *,
    time_offset_min: int | None = None,
    unit: str = "kg/L",
    sample_type: int = 1,
    location: int = 1,
    status: int | Iterable[str] | None = None,
    context_follows: bool = False,
) -> bytes:
    """A Glucose Measurement (0x2A18) value. ``concentration_mmol_l`` None leaves the
    concentration out; ``status`` is the raw annunciation word or flag names."""
    if unit not in ("kg/L", "mol/L"):
        raise ValueError(f"glucose unit {unit!r} must be 'kg/L' or 'mol/L'")
    if not 0 <= sample_type <= 15 or not 0 <= location <= 15:
        raise ValueError("sample_type and location are 4-bit values")
    flags = (0x01 if time_offset_min is not None else 0) | (0x04 if unit == "mol/L" else 0)
    body = sequence.to_bytes(2, "little") + encode_date_time(base_time)
    if time_offset_min is not None:
        body += time_offset_min.to_bytes(2, "little", signed=True)
    if concentration_mmol_l is not None:
        flags |= 0x02
        body += _glucose_concentration(concentration_mmol_l, unit)
        body += bytes([(location << 4) | sample_type])
    if status is not None:
        flags |= 0x08
        body += _status_word(status, GLUCOSE_STATUS_BITS).to_bytes(2, "little")
    flags |= 0x10 if context_follows else 0
    return bytes([flags]) + body


def encode_glucose_context(
    sequence: int,
    *,
    meal: str | None = None,
    carbohydrate: tuple[str, float] | None = None,
    tester: str | None = None,
    health: str | None = None,
) -> bytes:
    """A Glucose Measurement Context (0x2A34) value; ``carbohydrate`` is (id name, grams)."""
    flags, body = 0, b""
    if carbohydrate is not None:
        flags |= 0x01
        name, grams = carbohydrate
        # GSS: the amount is in kilograms; 0.1 g steps while they fit, else whole grams.
        exponent = -4 if abs(grams) * 10 <= _MANTISSA_MAX else -3
        body += bytes([_CARBOHYDRATES[name]]) + encode_sfloat(grams / 1000, exponent)
    if meal is not None:
        flags |= 0x02
        body += bytes([_MEALS[meal]])
    if tester is not None or health is not None:
        flags |= 0x04
        body += bytes([(_HEALTH[health or "not_available"] << 4)
                       | _TESTERS[tester or "not_available"]])
    return bytes([flags]) + sequence.to_bytes(2, "little") + body


def _pressure(mmhg: Number, unit: str) -> bytes:
    if isinstance(mmhg, SfloatSpecial) or unit == "mmHg":
        return encode_sfloat(mmhg, 0)
    return encode_sfloat(mmhg / _MMHG_PER_KPA, -1)


def encode_bp_measurement(
    systolic: Number,
    diastolic: Number,
    mean_arterial: Number,
    *,
    unit: str = "mmHg",
    timestamp: datetime | None = None,
    pulse: Number | None = None,
    user_id: int | None = None,
    status_flags: Iterable[str] = (),
) -> bytes:
    """A Blood Pressure Measurement (0x2A35) value. Pressures are given in mmHg whatever the
    wire ``unit``: with "kPa" they are sent in kPa to 0.1 kPa, as such monitors do."""
    if unit not in ("mmHg", "kPa"):
        raise ValueError(f"blood pressure unit {unit!r} must be 'mmHg' or 'kPa'")
    status = _bp_status(status_flags)
    flags = 0x01 if unit == "kPa" else 0
    body = b"".join(_pressure(v, unit) for v in (systolic, diastolic, mean_arterial))
    if timestamp is not None:
        flags |= 0x02
        body += encode_date_time(timestamp)
    if pulse is not None:
        flags |= 0x04
        body += encode_sfloat(pulse, 0)
    if user_id is not None:
        if not 0 <= user_id <= 0xFF:
            raise ValueError(f"user id {user_id} is not a uint8 (0xFF = unknown user)")
        flags |= 0x08
        body += bytes([user_id])
    if status is not None:
        flags |= 0x10
        body += status.to_bytes(2, "little")
    return bytes([flags]) + body


def _bp_status(status_flags: Iterable[str]) -> int | None:
    names = set(status_flags)
    if not names:
        return None
    if {"pulse_above_range", "pulse_below_range"} <= names:
        raise ValueError("a pulse rate cannot be both above and below its range")
    unknown = names - set(BP_STATUS_BITS)
    if unknown:
        raise ValueError(f"unknown status flags {sorted(unknown)}; known: {sorted(BP_STATUS_BITS)}")
    return sum(BP_STATUS_BITS[name] for name in names)


def encode_bthome_button(
    packet_id: int, event: str = "press", battery: int | None = None
) -> bytes:
    """BTHome v2 service data of a Shelly BLU Button: device information 0x44 (unencrypted,
    trigger based, version 2), then packet id, battery and button objects in id order."""
    if event not in BUTTON_EVENT_CODES:
        raise ValueError(f"button event {event!r} is not one of {sorted(BUTTON_EVENT_CODES)}")
    if not 0 <= packet_id <= 0xFF:
        raise ValueError(f"packet id {packet_id} is not a uint8")
    data = bytes([0x44, 0x00, packet_id])
    if battery is not None:
        if not 0 <= battery <= 100:
            raise ValueError(f"battery {battery} % is outside 0-100")
        data += bytes([0x01, battery])
    return data + bytes([0x3A, BUTTON_EVENT_CODES[event]])
