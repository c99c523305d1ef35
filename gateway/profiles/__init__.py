"""Bluetooth SIG characteristic parsers (and BTHome service data) for the gateway.

One public entry, ``decode(characteristic, data)``. It is total: for any bytes it returns a
``Decoded`` or raises ``ProfileError`` with a message naming what is wrong, never anything else.

Registered: Glucose Measurement 2A18, Glucose Measurement Context 2A34, Blood Pressure
Measurement 2A35, and "bthome" (BTHome v2 service data, UUID 0xFCD2).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import blood_pressure, bthome, glucose
from homevitals.gateway.profiles.decoded import BUTTON_EVENTS, Decoded, Detail, JsonDetail

__all__ = [
    "BUTTON_EVENTS",
    "Decoded",
    "Detail",
    "JsonDetail",
    "characteristics",
    "decode",
    "normalise_characteristic",
]

Parser = Callable[[bytes], Decoded]

_PARSERS: dict[str, Parser] = {
    "2A18": glucose.decode_measurement,
    "2A34": glucose.decode_context,
    "2A35": blood_pressure.decode_measurement,
    "bthome": bthome.decode_service_data,
}

# Core spec Vol 3 Part B 2.5.1: a 16-bit UUID xxxx is 0000xxxx-0000-1000-8000-00805F9B34FB.
_UUID_RE = re.compile(r"^(?:0x)?([0-9a-f]{4})$|^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$")
_BTHOME_UUID = "FCD2"


def characteristics() -> tuple[str, ...]:
    """The characteristics ``decode`` knows, normalised ("2A18", ..., "bthome")."""
    return tuple(_PARSERS)


def normalise_characteristic(characteristic: str) -> str:
    """"2A18", "0x2a18" or the 128-bit form -> "2A18"; "bthome" or the FCD2 UUID -> "bthome"."""
    text = characteristic.strip().lower() if isinstance(characteristic, str) else ""
    if text == "bthome":
        return "bthome"
    match = _UUID_RE.match(text)
    if match is None:
        raise ProfileError(
            f"{characteristic!r} is not a characteristic: expected e.g. '2A18', '0x2a18',"
            " '00002a18-0000-1000-8000-00805f9b34fb' or 'bthome'"
        )
    short = (match.group(1) or match.group(2)).upper()
    return "bthome" if short == _BTHOME_UUID else short


def decode(characteristic: str, data: bytes) -> Decoded:
    """Decode one characteristic value (or BTHome service data)."""
    name = normalise_characteristic(characteristic)
    parser = _PARSERS.get(name)
    if parser is None:
        raise ProfileError(
            f"no parser for characteristic 0x{name}: known are {', '.join(_PARSERS)}"
        )
    return parser(bytes(data))
