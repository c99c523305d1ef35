"""Bluetooth SIG characteristic parsers (and BTHome service data) for the gateway.

One public entry, ``decode(characteristic, data)``. It is total: for any bytes it returns a
``Decoded`` or raises ``ProfileError`` with a message naming what is wrong, never anything else.

Registered: Glucose Measurement 2A18, Glucose Measurement Context 2A34, Blood Pressure
Measurement 2A35, Temperature Measurement 2A1C, Battery Level 2A19, Heart Rate Measurement 2A37,
PLX Spot-check 2A5E and Continuous 2A5F, Weight Measurement 2A9D, CGM Measurement 2AA7, CGM
Session Start Time 2AAA, Record Access Control Point 2A52 (requests and answers, described), an
iTag button FFE1, "bthome" (BTHome v2 service data, UUID 0xFCD2) and "gpio" (the gateway's own
GPIO button). Values outside physiological limits are rejected
(``plausibility``); named vendor quirks rewrite a value into the standard first (``quirks``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles import (
    blood_pressure,
    bthome,
    cgm,
    glucose,
    heart_rate,
    pulse_oximeter,
    quirks,
    racp_control,
    simple,
    thermometer,
    weight,
)
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
    "2A1C": thermometer.decode_measurement,
    "2A19": simple.decode_battery_level,
    "2A37": heart_rate.decode_measurement,
    "2A5E": pulse_oximeter.decode_spot_check,
    "2A5F": pulse_oximeter.decode_continuous,
    "2A9D": weight.decode_measurement,
    "2AA7": cgm.decode_measurement,
    "2AAA": cgm.decode_session_start_time,
    "2A52": racp_control.decode_racp,
    "FFE1": simple.decode_itag,
    "bthome": bthome.decode_service_data,
    "gpio": simple.decode_gpio,
}

# Core spec Vol 3 Part B 2.5.1: a 16-bit UUID xxxx is 0000xxxx-0000-1000-8000-00805F9B34FB.
_UUID_RE = re.compile(r"^(?:0x)?([0-9a-f]{4})\Z|^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb\Z")
_BTHOME_UUID = "FCD2"


def characteristics() -> tuple[str, ...]:
    """The characteristics ``decode`` knows, normalised ("2A18", ..., "bthome")."""
    return tuple(_PARSERS)


def normalise_characteristic(characteristic: str) -> str:
    """"2A18", "0x2a18" or the 128-bit form -> "2A18"; "bthome" or the FCD2 UUID -> "bthome"."""
    text = characteristic.strip().lower() if isinstance(characteristic, str) else ""
    if text in ("bthome", "gpio"):
        return text
    match = _UUID_RE.match(text)
    if match is None:
        raise ProfileError(
            f"{characteristic!r} is not a characteristic: expected e.g. '2A18', '0x2a18',"
            " '00002a18-0000-1000-8000-00805f9b34fb' or 'bthome'"
        )
    short = (match.group(1) or match.group(2)).upper()
    return "bthome" if short == _BTHOME_UUID else short


def decode(characteristic: str, data: bytes, quirks_: Collection[str] = ()) -> Decoded:
    """Decode one characteristic value (or BTHome service data), after the device's byte
    quirks (``quirks_``, names from the config) have rewritten it into the standard."""
    name = normalise_characteristic(characteristic)
    parser = _PARSERS.get(name)
    if parser is None:
        raise ProfileError(
            f"no parser for characteristic 0x{name}: known are {', '.join(_PARSERS)}"
        )
    fixed, applied = quirks.apply(name, bytes(data), quirks_)
    decoded = parser(fixed)
    if applied:
        decoded = decoded.with_details(quirks_applied=tuple(applied), standard_value=fixed.hex())
    return decoded
