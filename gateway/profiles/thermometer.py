"""Temperature Measurement (0x2A1C).

HTS 1.0 / GSS "Temperature Measurement": flags (bit 0 Fahrenheit, bit 1 time stamp, bit 2
temperature type), the temperature as an IEEE 11073 FLOAT (32 bit), then the time stamp and the
type the flags announce. Normalised to °C.
"""

from __future__ import annotations

from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.ieee11073 import decode_float
from homevitals.gateway.profiles.reader import Reader, date_time
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit

__all__ = ["decode_measurement"]

_WHERE = "0x2A1C"
_FAHRENHEIT = 0x01
_TIME_STAMP = 0x02
_TYPE = 0x04
# GSS Temperature Type.
_TYPES = {1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gastrointestinal_tract",
          6: "mouth", 7: "rectum", 8: "toe", 9: "tympanum"}


def decode_measurement(data: bytes) -> Decoded:
    r = Reader(data, _WHERE)
    r.require(5, "flags, temperature")
    r.flags = flags = r.uint(1, "the flags", optional=False)
    sent = decode_float(r.uint(4, "the temperature", optional=False), where=_WHERE,
                        field="temperature")
    unit = "°F" if flags & _FAHRENHEIT else "°C"
    celsius = round((sent - 32) * 5 / 9, 2) if flags & _FAHRENHEIT else sent
    details: dict[str, Detail] = {"flags": f"0x{flags:02X}",
                                  "temperature": {"value": sent, "unit": unit}}
    device_time = None
    if flags & _TIME_STAMP:
        device_time, details["time_stamp"] = date_time(r.take(7, "a time stamp"), where=_WHERE,
                                                       field="time stamp")
    context: dict[str, str] = {}
    if flags & _TYPE:
        code = r.uint(1, "a temperature type")
        context["site"] = _TYPES.get(code, f"reserved_{code}")
        details["temperature_type"] = context["site"]
    rest = r.rest()
    if rest:
        details["unparsed"] = rest.hex()
    plausibility.check(_WHERE, "temperature", celsius, sent, unit)
    return Decoded(characteristic="2A1C", measurement=Measurement.TEMPERATURE,
                   fields={"temperature": FieldValue(celsius, Unit.CELSIUS)},
                   device_time=device_time, context=context, details=details)
