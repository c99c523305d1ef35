"""Weight Measurement (0x2A9D).

WSS 1.0 / GSS "Weight Measurement": flags (bit 0 imperial units, bit 1 time stamp, bit 2 user
id, bit 3 BMI and height), weight as uint16 (SI: 0.005 kg; imperial: 0.01 lb), then the time
stamp, user id, BMI (uint16, 0.1 kg/m²) and height (uint16, SI 0.001 m, imperial 0.1 in). A
weight of 0xFFFF is "Measurement Unsuccessful" (WSS 3.1.1.2): no reading.
"""

from __future__ import annotations

from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit

__all__ = ["decode_measurement"]

_WHERE = "0x2A9D"
_IMPERIAL = 0x01
_TIME_STAMP = 0x02
_USER_ID = 0x04
_BMI_HEIGHT = 0x08
_UNSUCCESSFUL = 0xFFFF
_KG_PER_LB = 0.45359237


def decode_measurement(data: bytes) -> Decoded:
    r = Reader(data, _WHERE)
    r.require(3, "flags, weight")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    raw = r.uint(2, "the weight", optional=False)
    imperial = bool(flags & _IMPERIAL)
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}"}
    device_time = None
    if flags & _TIME_STAMP:
        device_time, details["time_stamp"] = date_time(r.take(7, "a time stamp"), where=_WHERE,
                                                       field="time stamp")
    context: dict[str, str] = {}
    if flags & _USER_ID:
        user = r.uint(1, "a user id")
        context["user_id"] = "unknown" if user == 0xFF else str(user)
        details["user_id"] = user
    if flags & _BMI_HEIGHT:
        details["bmi"] = {"value": round(r.uint(2, "a BMI") * 0.1, 1), "unit": "kg/m²"}
        height = r.uint(2, "a height")
        details["height"] = ({"value": round(height * 0.1, 1), "unit": "in"} if imperial
                             else {"value": round(height * 0.001, 3), "unit": "m"})
    if raw == _UNSUCCESSFUL:
        details["no_measurement"] = "measurement unsuccessful (0xFFFF)"
        return Decoded(characteristic="2A9D", details=details, context=context)
    sent = round(raw * 0.01, 2) if imperial else round(raw * 0.005, 3)
    unit = "lb" if imperial else "kg"
    kg = round(sent * _KG_PER_LB, 3) if imperial else sent
    details["weight"] = {"value": sent, "unit": unit}
    plausibility.check(_WHERE, "weight", kg, sent, unit)
    return Decoded(characteristic="2A9D", measurement=Measurement.WEIGHT,
                   fields={"weight": FieldValue(kg, Unit.KG)}, device_time=device_time,
                   context=context, details=details)
