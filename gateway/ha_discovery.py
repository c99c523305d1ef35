"""Home Assistant MQTT discovery (optional, off by default: ``gateway.home_assistant``).

Retained config messages on ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
(home-assistant.io/integrations/mqtt, "MQTT Discovery"), pointing HA at the topics the gateway
already publishes, with availability from the gateway's retained status:
- one ``sensor`` per field a device measures, on its reading topic;
- one diagnostic ``sensor`` for the battery of each device that reports one. Devices that send
  battery readings (CGM, oximeter ...) use them; the others (a blood-pressure monitor, a glucose
  meter, a button) have their battery in the gateway's heartbeat;
- one ``event`` entity per call button (home-assistant.io/integrations/event.mqtt), event types
  the BTHome button events, so a family can automate on a press.

A device publishes several measurements on one topic (a CGM its glucose and its battery), so a
sensor's template renders an empty string when a message lacks its field: HA's MQTT sensor
ignores an empty state for a numeric sensor and keeps the last value ("None" would blank it, and
the old ``this.state`` wrote "unknown" into a numeric sensor).

Device classes follow HA's sensor device classes: blood pressure has none (``pressure`` would be
converted to inHg for US-unit users), glucose is ``blood_glucose_concentration`` (mg/dL or
mmol/L; we send mmol/L). Devices are named for people ("Ana Novak's blood-pressure monitor", or
the device's ``name`` in the config), not by id.
"""

from __future__ import annotations

import json
import re

from homevitals.gateway.profiles.decoded import BUTTON_EVENTS
from homevitals.vocab.config import DEVICE_MEASUREMENTS, DeviceConfig, DeviceKind, HomeConfig
from homevitals.vocab.readings import Measurement
from homevitals.vocab.topics import HA_DISCOVERY_PREFIX, Topics, ha_discovery

__all__ = ["device_name", "discovery_messages"]

# measurement -> (field, name, unit, HA device_class or None)
_FIELDS: dict[Measurement, tuple[tuple[str, str, str, str | None], ...]] = {
    Measurement.GLUCOSE: (("glucose", "Glucose", "mmol/L", "blood_glucose_concentration"),),
    Measurement.BLOOD_PRESSURE: (
        ("systolic", "Systolic", "mmHg", None),
        ("diastolic", "Diastolic", "mmHg", None),
        ("pulse", "Pulse", "bpm", None),
    ),
    Measurement.HEART_RATE: (("heart_rate", "Heart rate", "bpm", None),),
    Measurement.SPO2: (("spo2", "SpO2", "%", None), ("pulse", "Pulse", "bpm", None)),
    Measurement.TEMPERATURE: (("temperature", "Temperature", "°C", "temperature"),),
    Measurement.WEIGHT: (("weight", "Weight", "kg", "weight"),),
    Measurement.BATTERY: (("battery", "Battery", "%", "battery"),),
}
_KIND_NAMES = {
    DeviceKind.GLUCOSE_METER: "glucose meter",
    DeviceKind.BLOOD_PRESSURE: "blood-pressure monitor",
    DeviceKind.CALL_BUTTON: "call button",
    DeviceKind.CGM: "glucose sensor (CGM)",
    DeviceKind.HEART_RATE: "heart-rate monitor",
    DeviceKind.PULSE_OXIMETER: "pulse oximeter",
    DeviceKind.THERMOMETER: "thermometer",
    DeviceKind.SCALE: "scale",
    DeviceKind.ITAG_BUTTON: "call button",
    DeviceKind.GPIO_BUTTON: "call button",
}
_BUTTONS = (DeviceKind.CALL_BUTTON, DeviceKind.ITAG_BUTTON, DeviceKind.GPIO_BUTTON)
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def _id(text: str) -> str:
    return _SAFE.sub("_", text)


def device_name(home: HomeConfig, device: DeviceConfig) -> str:
    """The device's ``name``, else "<patient's name>'s <kind>"."""
    if device.name:
        return device.name
    patient = next((p.name for p in home.patients if p.id == device.patient), device.patient)
    return f"{patient}'s {_KIND_NAMES[device.kind]}"


def discovery_messages(home: HomeConfig, topics: Topics,
                       prefix: str = HA_DISCOVERY_PREFIX) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs to publish retained, QoS 1 (topics: homevitals.vocab.topics, whose
    ``ha_discovery`` the broker ACL grants each gateway)."""
    out: list[tuple[str, bytes]] = []

    def add(component: str, device: DeviceConfig, what: str, body: dict[str, object]) -> None:
        body.update(_common(home, device, topics, what))
        out.append((ha_discovery(prefix, home.id, _id(f"{device.id}_{what}"), component),
                    json.dumps(body, ensure_ascii=False).encode()))

    for device in home.devices:
        measured = DEVICE_MEASUREMENTS[device.kind]
        reading = topics.reading(home.id, device.id)
        for measurement in measured:
            for field, name, unit, device_class in _FIELDS.get(measurement, ()):
                add("sensor", device, field,
                    _sensor(reading, f"value_json.fields.{field}", "value", name, unit,
                            device_class, guard="value_json.fields is defined"))
        if Measurement.BATTERY not in measured and device.kind != DeviceKind.GPIO_BUTTON:
            # A Battery Level the gateway read (or a BTHome advert's): in its heartbeat.
            entry = f"value_json.devices[{json.dumps(device.id)}]"
            add("sensor", device, "battery",
                _sensor(topics.heartbeat(home.id), entry, "battery", "Battery", "%", "battery",
                        guard="value_json.devices is defined"))
        if device.kind in _BUTTONS:
            add("event", device, "press", {
                "name": "Press",
                "state_topic": topics.event(home.id, device.id),
                # event.mqtt: the template yields JSON whose event_type is one of event_types.
                "value_template": '{"event_type": "{{ value_json.detail }}"}',
                "event_types": sorted(BUTTON_EVENTS),
                "device_class": "button",
            })
    return out


def _sensor(state_topic: str, entry: str, key: str, name: str, unit: str,
            device_class: str | None, *, guard: str) -> dict[str, object]:
    # Empty when the message lacks the value: HA keeps the sensor's last state.
    present = f"{guard} and {entry} is defined and {entry}.{key} is number"
    body: dict[str, object] = {
        "name": name,
        "state_topic": state_topic,
        "value_template": f"{{{{ {entry}.{key} if {present} else '' }}}}",
        "unit_of_measurement": unit,
        "state_class": "measurement",
    }
    if device_class:
        body["device_class"] = device_class
    if device_class == "battery":
        body["entity_category"] = "diagnostic"
    return body


def _common(home: HomeConfig, device: DeviceConfig, topics: Topics, what: str) -> dict[str, object]:
    return {
        "unique_id": _id(f"homevitals_{home.id}_{device.id}_{what}"),
        "availability_topic": topics.status(home.id),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [_id(f"homevitals_{home.id}_{device.id}")],
                   "name": device_name(home, device), "manufacturer": "homevitals",
                   "model": str(device.kind)},
    }
