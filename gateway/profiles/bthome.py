"""BTHome v2 service data (16-bit UUID 0xFCD2), as a Shelly BLU Button broadcasts it.

Format: https://bthome.io/format/ - one device-information byte (bit 0 encryption, bit 1 the
advertiser's MAC follows, bit 2 trigger-based device, bits 5-7 BTHome version), then objects, each
an object id followed by a value whose length the id fixes (text 0x53 and raw 0x54 carry a
length byte). Object lengths and factors follow that table (mirrored in Bluetooth-Devices/
bthome-ble ``const.py``); an object id we do not know stops decoding, since nothing says where it
ends. Encrypted payloads (AES-CCM with a bind key) are not supported yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

from homevitals.gateway.errors import ProfileError
from homevitals.gateway.profiles.decoded import Decoded, Detail
from homevitals.gateway.profiles.reader import Reader

__all__ = ["BUTTON_EVENT_CODES", "decode_service_data"]

_WHERE = "bthome"
_ENCRYPTED = 0x01
_MAC_INCLUDED = 0x02
_TRIGGER_BASED = 0x04
_BUTTON = 0x3A
_DIMMER = 0x3C
_VARIABLE = {0x53: "text", 0x54: "raw"}

# bthome.io/format, "Events": button event codes; 0x00 "none" is no event at all.
BUTTON_EVENT_CODES: dict[int, str | None] = {
    0x00: None,
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
}
_DIMMER_EVENTS = {0: "none", 1: "rotate_left", 2: "rotate_right"}

# bthome.io/format, "Sensor data": id -> (name, bytes, signed, factor, unit).
_SENSORS: dict[int, tuple[str, int, bool, float, str]] = {
    0x00: ("packet_id", 1, False, 1, ""), 0x01: ("battery", 1, False, 1, "%"),
    0x02: ("temperature", 2, True, 0.01, "°C"), 0x03: ("humidity", 2, False, 0.01, "%"),
    0x04: ("pressure", 3, False, 0.01, "hPa"), 0x05: ("illuminance", 3, False, 0.01, "lx"),
    0x06: ("mass", 2, False, 0.01, "kg"), 0x07: ("mass", 2, False, 0.01, "lb"),
    0x08: ("dew_point", 2, True, 0.01, "°C"), 0x09: ("count", 1, False, 1, ""),
    0x0A: ("energy", 3, False, 0.001, "kWh"), 0x0B: ("power", 3, False, 0.01, "W"),
    0x0C: ("voltage", 2, False, 0.001, "V"), 0x0D: ("pm2_5", 2, False, 1, "µg/m³"),
    0x0E: ("pm10", 2, False, 1, "µg/m³"), 0x12: ("co2", 2, False, 1, "ppm"),
    0x13: ("tvoc", 2, False, 1, "µg/m³"), 0x14: ("moisture", 2, False, 0.01, "%"),
    0x2E: ("humidity", 1, False, 1, "%"), 0x2F: ("moisture", 1, False, 1, "%"),
    0x3D: ("count", 2, False, 1, ""), 0x3E: ("count", 4, False, 1, ""),
    0x3F: ("rotation", 2, True, 0.1, "°"), 0x40: ("distance", 2, False, 1, "mm"),
    0x41: ("distance", 2, False, 0.1, "m"), 0x42: ("duration", 3, False, 0.001, "s"),
    0x43: ("current", 2, False, 0.001, "A"), 0x44: ("speed", 2, False, 0.01, "m/s"),
    0x45: ("temperature", 2, True, 0.1, "°C"), 0x46: ("uv_index", 1, False, 0.1, ""),
    0x47: ("volume", 2, False, 0.1, "L"), 0x48: ("volume", 2, False, 1, "mL"),
    0x49: ("volume_flow_rate", 2, False, 0.001, "m³/h"), 0x4A: ("voltage", 2, False, 0.1, "V"),
    0x4B: ("gas", 3, False, 0.001, "m³"), 0x4C: ("gas", 4, False, 0.001, "m³"),
    0x4D: ("energy", 4, False, 0.001, "kWh"), 0x4E: ("volume", 4, False, 0.001, "L"),
    0x4F: ("water", 4, False, 0.001, "L"), 0x50: ("timestamp", 4, False, 1, "s"),
    0x51: ("acceleration", 2, False, 0.001, "m/s²"), 0x52: ("gyroscope", 2, False, 0.001, "°/s"),
    0x55: ("volume_storage", 4, False, 0.001, "L"), 0x56: ("conductivity", 2, False, 1, "µS/cm"),
    0x57: ("temperature", 1, True, 1, "°C"), 0x58: ("temperature", 1, True, 0.35, "°C"),
    0x59: ("count", 1, True, 1, ""), 0x5A: ("count", 2, True, 1, ""),
    0x5B: ("count", 4, True, 1, ""), 0x5C: ("power", 4, True, 0.01, "W"),
    0x5D: ("current", 2, True, 0.001, "A"), 0x5E: ("direction", 2, False, 0.01, "°"),
    0x5F: ("precipitation", 2, False, 0.1, "mm"), 0x60: ("channel", 1, False, 1, ""),
    0x61: ("rotational_speed", 2, False, 1, "rpm"), 0x62: ("speed", 4, True, 1e-6, "m/s"),
    0x63: ("acceleration", 4, True, 1e-6, "m/s²"), 0x64: ("light_level", 1, False, 1, ""),
    # bthome.io/format, "Device information".
    0xF0: ("device_type_id", 2, False, 1, ""), 0xF1: ("firmware_version", 4, False, 1, ""),
    0xF2: ("firmware_version", 3, False, 1, ""),
}

# bthome.io/format, "Binary sensor data": one byte each, 0 = off, 1 = on.
_BINARY: dict[int, str] = dict(
    zip(
        [0x0F, 0x10, 0x11, *range(0x15, 0x2E)],
        "generic power opening battery_low battery_charging carbon_monoxide cold connectivity"
        " door garage_door gas heat light lock moisture motion moving occupancy plug presence"
        " problem running safety smoke sound tamper vibration window".split(),
        strict=True,
    )
)


def _digits(factor: float) -> int:
    text = repr(factor)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 6


def decode_service_data(data: bytes) -> Decoded:
    """Decode unencrypted BTHome v2 service data; ``button`` is the first real button event."""
    r = Reader(data, _WHERE)
    r.require(1, "the device information byte")
    info = r.uint(1, "the device information byte", optional=False)
    version = info >> 5
    if version != 2:
        raise ProfileError(f"{_WHERE}: device information 0x{info:02X} says BTHome version"
                           f" {version}, only version 2 is supported")
    if info & _ENCRYPTED:
        raise ProfileError(f"{_WHERE}: device information 0x{info:02X} announces an encrypted"
                           " payload, which is not supported yet")
    details: dict[str, Detail] = {"device_information": f"0x{info:02X}", "version": version,
                                  "encrypted": False,
                                  "trigger_based": bool(info & _TRIGGER_BASED)}
    if info & _MAC_INCLUDED:
        # bthome-ble parser.py: the advertiser's MAC, least significant byte first.
        mac = r.take(6, "a MAC address", optional=False)
        details["mac"] = ":".join(f"{b:02X}" for b in reversed(mac))
    objects: list[dict[str, Detail]] = []
    while r.pos < len(r.data):
        objects.append(_object(r))
    details["objects"] = tuple(objects)
    return _result(details, objects)


def _result(details: dict[str, Detail], objects: list[dict[str, Detail]]) -> Decoded:
    packet_id: int | None = None
    buttons: list[str] = []
    for obj in objects:
        name, value = obj["name"], obj["value"]
        if name == "packet_id" and packet_id is None and isinstance(value, int):
            packet_id = value
        elif name == "button" and isinstance(value, str):
            buttons.append(value)
        elif name == "battery" and "battery" not in details:
            details["battery"] = {"value": value, "unit": "%"}
    events = [b for b in buttons if b != "none"]
    details["packet_id"] = packet_id
    details["buttons"] = tuple(buttons)
    return Decoded(characteristic="bthome", details=details, packet_id=packet_id,
                   button=events[0] if events else None, event_time=_timestamp(objects))


def _timestamp(objects: list[dict[str, Detail]]) -> datetime | None:
    # bthome.io/format object 0x50 "timestamp": seconds since the Unix epoch (UTC). Buttons we
    # know do not send it; when one does, it is the device's own time of the event.
    for obj in objects:
        value = obj["value"]
        if obj["name"] == "timestamp" and isinstance(value, int):
            return datetime.fromtimestamp(value, UTC)
    return None


def _object(r: Reader) -> dict[str, Detail]:
    start = r.pos
    object_id = r.uint(1, "an object id", optional=False)
    where = f"object 0x{object_id:02X} at byte {start}"
    if object_id == _BUTTON:
        code = r.uint(1, f"the event of {where}", optional=False)
        if code not in BUTTON_EVENT_CODES:
            raise ProfileError(f"{_WHERE}: button event 0x{code:02X} of {where} is not defined")
        return {"id": "0x3A", "name": "button", "value": BUTTON_EVENT_CODES[code] or "none"}
    if object_id == _DIMMER:
        event, steps = r.take(2, f"the value of {where}", optional=False)
        return {"id": "0x3C", "name": "dimmer",
                "value": _DIMMER_EVENTS.get(event, f"reserved_{event}"), "steps": steps}
    if object_id in _BINARY:
        state = r.uint(1, f"the value of {where}", optional=False)
        return {"id": f"0x{object_id:02X}", "name": _BINARY[object_id], "value": state != 0}
    if object_id in _VARIABLE:
        size = r.uint(1, f"the length of {where}", optional=False)
        raw = r.take(size, f"the value of {where}", optional=False)
        text = raw.decode("utf-8", "replace") if object_id == 0x53 else raw.hex()
        return {"id": f"0x{object_id:02X}", "name": _VARIABLE[object_id], "value": text}
    if object_id not in _SENSORS:
        raise ProfileError(f"{_WHERE}: unknown {where}: cannot tell where it ends")
    name, size, signed, factor, unit = _SENSORS[object_id]
    raw_value = int.from_bytes(r.take(size, f"the value of {where} ({name})", optional=False),
                               "little", signed=signed)
    value: int | float = raw_value if factor == 1 else round(raw_value * factor, _digits(factor))
    return {"id": f"0x{object_id:02X}", "name": name, "value": value, "unit": unit}
