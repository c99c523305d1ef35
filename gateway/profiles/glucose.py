"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34).

Layouts from the Bluetooth Glucose Profile/Service 1.0 (GLS) and the GATT Specification
Supplement (GSS) sections "Glucose Measurement" and "Glucose Measurement Context". All
multi-byte fields are little-endian.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.ieee11073 import decode_sfloat
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import (
    Unit,
    glucose_kg_per_l_to_mmol_per_l,
    glucose_mol_per_l_to_mmol_per_l,
)

__all__ = ["decode_context", "decode_measurement"]

_WHERE = "0x2A18"
_CONTEXT_WHERE = "0x2A34"

# GSS Glucose Measurement, Flags field.
_TIME_OFFSET = 0x01
_CONCENTRATION = 0x02
_MOL_PER_L = 0x04
_STATUS = 0x08
_CONTEXT_FOLLOWS = 0x10

# GSS Glucose Measurement, Type-Sample Location: type in the low nibble, location in the high.
_TYPES = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
_LOCATIONS = {1: "finger", 2: "alternate_site", 3: "earlobe", 4: "control_solution",
              15: "not_available"}

# GSS Glucose Measurement, Sensor Status Annunciation bits 0-11 (12-15 reserved).
_STATUS_BITS = (
    "device_battery_low",
    "sensor_malfunction",
    "sample_size_insufficient",
    "strip_insertion_error",
    "strip_type_incorrect",
    "result_above_range",
    "result_below_range",
    "sensor_temperature_high",
    "sensor_temperature_low",
    "sensor_read_interrupted",
    "general_device_fault",
    "time_fault",
)

# GSS Glucose Measurement Context, Flags and the enumerations it selects.
_CARBOHYDRATE = 0x01
_MEAL = 0x02
_TESTER_HEALTH = 0x04
_EXERCISE = 0x08
_MEDICATION = 0x10
_MEDICATION_LITRES = 0x20
_HBA1C = 0x40
_EXTENDED = 0x80
_CARBOHYDRATES = {1: "breakfast", 2: "lunch", 3: "dinner", 4: "snack", 5: "drink", 6: "supper",
                  7: "brunch"}
_MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
_TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
_HEALTH = {1: "minor_health_issues", 2: "major_health_issues", 3: "during_menses",
           4: "under_stress", 5: "no_health_issues", 15: "not_available"}
_MEDICATIONS = {1: "rapid_acting_insulin", 2: "short_acting_insulin",
                3: "intermediate_acting_insulin", 4: "long_acting_insulin",
                5: "pre_mixed_insulin"}


def _name(table: dict[int, str], value: int) -> str:
    return table.get(value, f"reserved_{value}")


def _quantity(value: float, unit: str) -> dict[str, Detail]:
    return {"value": value, "unit": unit}


def _status_flags(raw: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(_STATUS_BITS) if raw & (1 << bit))


def decode_measurement(data: bytes) -> Decoded:
    """Decode a Glucose Measurement value; concentration normalised to mmol/L."""
    r = Reader(data, _WHERE)
    r.require(10, "flags, sequence number, base time")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    sequence = r.uint(2, "the sequence number", optional=False)
    base, base_text = date_time(r.take(7, "the base time", optional=False),
                                where=_WHERE, field="base time")
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}", "sequence": sequence,
                                  "base_time": base_text,
                                  "context_follows": bool(flags & _CONTEXT_FOLLOWS)}
    device_time = base
    if flags & _TIME_OFFSET:
        offset = r.sint(2, "a time offset")
        details["time_offset"] = _quantity(offset, "min")
        if base is not None:
            try:
                device_time = base + timedelta(minutes=offset)
            except OverflowError as exc:
                raise ProfileError(f"{_WHERE}: base time {base_text} plus time offset"
                                   f" {offset} min is out of range") from exc
    fields: dict[str, FieldValue] = {}
    context: dict[str, str] = {}
    flag_names: list[str] = []
    if flags & _CONCENTRATION:
        fields["glucose"] = _concentration(r, flags, details)
        type_location = r.uint(1, "a type-sample location")
        context["glucose_type"] = _name(_TYPES, type_location & 0x0F)
        context["sample_location"] = _name(_LOCATIONS, type_location >> 4)
        details.update(context)
        if "control_solution" in context.values():
            # A meter check with control solution: not the patient's blood.
            flag_names.append("control_solution")
    if flags & _STATUS:
        status = r.uint(2, "a sensor status annunciation")
        flag_names.extend(_status_flags(status))
        details["sensor_status"] = {"raw": f"0x{status:04X}", "flags": _status_flags(status)}
    _trailing(r, details)
    if "glucose" in fields:  # after the layout checks: a short value is named as short first
        plausibility.check(_WHERE, "glucose", fields["glucose"].value,
                           *_sent(details["glucose_concentration"]))
    return Decoded(
        characteristic="2A18",
        measurement=Measurement.GLUCOSE if fields else None,
        fields=fields,
        flags=tuple(flag_names),
        device_time=device_time,
        sequence=sequence,
        context=context,
        details=details,
    )


def _concentration(r: Reader, flags: int, details: dict[str, Detail]) -> FieldValue:
    raw = r.uint(2, "a glucose concentration")
    value = decode_sfloat(raw, where=_WHERE, field="glucose concentration")
    if flags & _MOL_PER_L:
        unit, mmol = "mol/L", glucose_mol_per_l_to_mmol_per_l(value)
    else:
        unit, mmol = "kg/L", glucose_kg_per_l_to_mmol_per_l(value)
    details["glucose_concentration"] = _quantity(value, unit)
    return FieldValue(round(mmol, 3), Unit.MMOL_PER_L)


def _sent(detail: Detail) -> tuple[float, str]:
    assert isinstance(detail, Mapping)
    value, unit = detail["value"], detail["unit"]
    assert isinstance(value, int | float) and isinstance(unit, str)
    return float(value), unit


def _trailing(r: Reader, details: dict[str, Detail]) -> None:
    # Bytes after the last announced field are kept for the dump, not rejected: some meters pad
    # their values, and everything the flags announced has been read and checked.
    rest = r.rest()
    if rest:
        details["unparsed"] = rest.hex()


def decode_context(data: bytes) -> Decoded:
    """Decode a Glucose Measurement Context value (joined to a measurement by ``sequence``)."""
    r = Reader(data, _CONTEXT_WHERE)
    r.require(3, "flags, sequence number")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    sequence = r.uint(2, "the sequence number", optional=False)
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}", "sequence": sequence}
    context: dict[str, str] = {}
    if flags & _EXTENDED:
        details["extended_flags"] = f"0x{r.uint(1, 'extended flags'):02X}"
    if flags & _CARBOHYDRATE:
        context["carbohydrate"] = _name(_CARBOHYDRATES, r.uint(1, "a carbohydrate id"))
        grams = _sfloat(r, "a carbohydrate amount", "carbohydrate amount") * 1000
        details["carbohydrate_amount"] = _quantity(round(grams, 6), "g")
    if flags & _MEAL:
        context["meal"] = _name(_MEALS, r.uint(1, "a meal"))
    if flags & _TESTER_HEALTH:
        tester_health = r.uint(1, "a tester-health")
        context["tester"] = _name(_TESTERS, tester_health & 0x0F)
        context["health"] = _name(_HEALTH, tester_health >> 4)
    if flags & _EXERCISE:
        _exercise(r, details)
    if flags & _MEDICATION:
        context["medication"] = _name(_MEDICATIONS, r.uint(1, "a medication id"))
        amount = _sfloat(r, "a medication amount", "medication amount")
        # GSS: kilograms when bit 5 is clear, litres when set; shown as mg and mL.
        unit = "mL" if flags & _MEDICATION_LITRES else "mg"
        details["medication_amount"] = _quantity(round(amount * 1e6 if unit == "mg" else
                                                       amount * 1e3, 6), unit)
    if flags & _HBA1C:
        details["hba1c"] = _quantity(_sfloat(r, "an HbA1c", "HbA1c"), "%")
    details.update(context)
    _trailing(r, details)
    return Decoded(characteristic="2A34", sequence=sequence, context=context, details=details)


def _exercise(r: Reader, details: dict[str, Detail]) -> None:
    duration = r.uint(2, "an exercise duration")
    intensity = r.uint(1, "an exercise intensity")
    # GSS: 0xFFFF means the duration overran the field.
    details["exercise_duration"] = "overrun" if duration == 0xFFFF else _quantity(duration, "s")
    details["exercise_intensity"] = _quantity(intensity, "%")


def _sfloat(r: Reader, what: str, field: str) -> float:
    value: float = decode_sfloat(r.uint(2, what), where=_CONTEXT_WHERE, field=field)
    return value
