"""Plausibility limits: values no living patient (or no working device) produces.

A value outside these limits almost always means the device and the gateway disagree about the
format - most often the unit (a meter that sends mg/dL where the standard says kg/L, a thermometer
that sends Fahrenheit with the Celsius flag). Such a value must never reach a rule as a
measurement: it is rejected with ``ProfileError`` naming the value, the unit the device claimed
and the limit, so the dead-letter entry tells an engineer which quirk the device needs.

The limits are wide on purpose: a real extreme value (a glucose meter's "LO", a pulse of 220)
must pass. Low glucose is only bounded at 0: a severe hypo is what the system exists to catch.
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError

__all__ = ["LIMITS", "check"]

# quantity -> (lowest, highest, wire unit, hint when above)
LIMITS: dict[str, tuple[float, float, str, str]] = {
    # The highest glucose ever recorded in a living patient is near 147 mmol/L, but no meter or
    # CGM reports above 33.3-35 mmol/L (600-630 mg/dL): above 60 the unit is wrong.
    "glucose": (0.0, 60.0, "mmol/L",
                "almost certainly a unit quirk (mg/dL sent without the 1e-5 kg/L exponent?)"),
    "pressure": (0.0, 350.0, "mmHg", "is the device sending kPa with the mmHg flag?"),
    "pulse": (0.0, 350.0, "bpm", "is the value byte-swapped?"),
    "heart_rate": (0.0, 350.0, "bpm", "is the value byte-swapped?"),
    "spo2": (0.0, 100.0, "%", "SpO2 cannot exceed 100 %"),
    "temperature": (10.0, 50.0, "°C", "is the device sending °F with the Celsius flag?"),
    "weight": (0.0, 500.0, "kg", "is the device sending lb or g with the kg flag?"),
    "battery": (0.0, 100.0, "%", "a battery level is 0-100 %"),
}


def check(where: str, quantity: str, value: float, sent: float, sent_unit: str) -> float:
    """``value`` (in wire units) if plausible, else ProfileError naming what the device sent.

    e.g. ``0x2A18: glucose concentration 100 kg/L is 5550621.5 mmol/L, implausible (above 60
    mmol/L): almost certainly a unit quirk ...``
    """
    low, high, unit, hint = LIMITS[quantity]
    if low <= value <= high:
        return value
    side = f"above {high:g}" if value > high else f"below {low:g}"
    shown = "" if sent_unit == unit and sent == value else f" is {value:g} {unit},"
    tail = f": {hint}" if value > high else ""
    raise ProfileError(
        f"{where}: {quantity.replace('_', ' ')} {sent:g} {sent_unit}{shown} implausible"
        f" ({side} {unit}){tail}"
    )
