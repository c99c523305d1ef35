"""Home Assistant MQTT discovery (optional, off by default: ``gateway.home_assistant``).

For every configured device and every field it produces, one retained config message on
``<discovery_prefix>/sensor/<node_id>/<object_id>/config`` (home-assistant.io/integrations/mqtt,
"MQTT Discovery"), pointing HA's MQTT sensor at the reading topic the gateway already publishes,
with availability from the gateway's retained status. A device publishes several measurements
on one topic (a blood pressure monitor its pressures, a CGM also its battery), so each sensor's
template keeps its state when a message lacks its field (``this.state``).
"""

from __future__ import annotations

import json
import re

from homevitals.config import DEVICE_MEASUREMENTS, DeviceConfig, HomeConfig
from homevitals.readings import Measurement
from homevitals.topics import HA_DISCOVERY_PREFIX, Topics, ha_discovery

__all__ = ["discovery_messages"]

# measurement -> (field, name, unit, HA device_class or None)
_FIELDS: dict[Measurement, tuple[tuple[str, str, str, str | None], ...]] = {
    Measurement.GLUCOSE: (("glucose", "Glucose", "mmol/L", None),),
    Measurement.BLOOD_PRESSURE: (
        ("systolic", "Systolic", "mmHg", "pressure"),
        ("diastolic", "Diastolic", "mmHg", "pressure"),
        ("pulse", "Pulse", "bpm", None),
    ),
    Measurement.HEART_RATE: (("heart_rate", "Heart rate", "bpm", None),),
    Measurement.SPO2: (("spo2", "SpO2", "%", None), ("pulse", "Pulse", "bpm", None)),
    Measurement.TEMPERATURE: (("temperature", "Temperature", "°C", "temperature"),),
    Measurement.WEIGHT: (("weight", "Weight", "kg", "weight"),),
    Measurement.BATTERY: (("battery", "Battery", "%", "battery"),),
}
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def _id(text: str) -> str:
    return _SAFE.sub("_", text)


def discovery_messages(home: HomeConfig, topics: Topics,
                       prefix: str = HA_DISCOVERY_PREFIX) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs to publish retained, QoS 1 (topics: homevitals.topics, whose
    ``ha_discovery`` the broker ACL grants each gateway)."""
    out: list[tuple[str, bytes]] = []
    for device in home.devices:
        for measurement in DEVICE_MEASUREMENTS[device.kind]:
            for field, name, unit, device_class in _FIELDS.get(measurement, ()):
                obj = _id(f"{device.id}_{field}")
                out.append((ha_discovery(prefix, home.id, obj),
                            _config(home, device, topics, field, name, unit, device_class)))
    return out


def _config(home: HomeConfig, device: DeviceConfig, topics: Topics, field: str, name: str,
            unit: str, device_class: str | None) -> bytes:
    body: dict[str, object] = {
        "name": name,
        "unique_id": _id(f"homevitals_{home.id}_{device.id}_{field}"),
        "state_topic": topics.reading(home.id, device.id),
        "value_template": (f"{{{{ value_json.fields.{field}.value if value_json.fields.{field}"
                           " is defined else this.state }}"),
        "unit_of_measurement": unit,
        "state_class": "measurement",
        "availability_topic": topics.status(home.id),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [_id(f"homevitals_{home.id}_{device.id}")],
                   "name": device.id, "manufacturer": "homevitals", "model": str(device.kind)},
    }
    if device_class:
        body["device_class"] = device_class
    return json.dumps(body, ensure_ascii=False).encode()
