"""One-byte values: Battery Level (0x2A19), an iTag-style button (0xFFE1) and a GPIO button.

Battery Level (BAS 1.0): uint8, 0-100 %. An iTag (the cheap key-finder tags sold as panic
buttons) notifies a single byte on the vendor characteristic 0xFFE1 of service 0xFFE0 when its
button is pressed; the byte is 0x01 on the tags we know, so any non-zero byte is a press and 0 is
no event. ``gpio`` is what the gateway's own GPIO button watcher delivers: one byte, 1 = press.
"""

from __future__ import annotations

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import plausibility
from homevitals.gateway.profiles.decoded import Decoded
from homevitals.vocab.readings import FieldValue, Measurement
from homevitals.vocab.units import Unit

__all__ = ["decode_battery_level", "decode_gpio", "decode_itag"]


def _one_byte(data: bytes, where: str, what: str) -> int:
    if len(data) != 1:
        raise ProfileError(f"{where}: {what} is 1 byte, got {len(data)}")
    return data[0]


def decode_battery_level(data: bytes) -> Decoded:
    level = _one_byte(data, "0x2A19", "a battery level")
    plausibility.check("0x2A19", "battery", level, level, "%")
    return Decoded(characteristic="2A19", measurement=Measurement.BATTERY,
                   fields={"battery": FieldValue(level, Unit.PERCENT)},
                   details={"battery": {"value": level, "unit": "%"}})


def _button(characteristic: str, where: str, data: bytes) -> Decoded:
    code = _one_byte(data, where, "a button value")
    return Decoded(characteristic=characteristic, button="press" if code else None,
                   details={"code": f"0x{code:02X}", "button": "press" if code else "none"})


def decode_itag(data: bytes) -> Decoded:
    return _button("FFE1", "0xFFE1", data)


def decode_gpio(data: bytes) -> Decoded:
    return _button("gpio", "gpio", data)
