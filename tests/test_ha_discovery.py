"""Home Assistant MQTT discovery as HA reads it: the exact config payloads, and what each
template renders (HA's templates are Jinja2) for the messages the gateway really publishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jinja2

from homevitals.gateway.ha_discovery import discovery_messages
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.readings import Event, EventKind, FieldValue, Measurement, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

NODE = "homeassistant/{}/homevitals_home-novak/{}/config"
T = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)
AVAILABILITY = {
    "availability_topic": "homevitals/v1/home/home-novak/status",
    "availability_template": "{{ value_json.state }}",
    "payload_available": "online",
    "payload_not_available": "offline",
}


def _configs(**device_names: str) -> dict[str, dict[str, Any]]:
    cfg = demo_config()
    home = cfg.homes[0]
    devices = [d.model_copy(update={"name": device_names.get(d.id)}) for d in home.devices]
    home = home.model_copy(update={"devices": devices})
    return {topic: json.loads(body) for topic, body in discovery_messages(home, Topics())}


def _render(template: str, payload: bytes) -> str:
    return jinja2.Environment().from_string(template).render(value_json=json.loads(payload))


def _reading(measurement: Measurement, **fields: FieldValue) -> bytes:
    return wire.encode(Reading("r1", "home-novak", "ana", "bp-1", measurement, fields, T, T))


def test_blood_pressure_has_no_device_class_and_a_human_device_name() -> None:
    configs = _configs(**{"bp-1": "Ana's blood-pressure monitor"})
    assert configs[NODE.format("sensor", "bp-1_systolic")] == {
        "name": "Systolic",
        "state_topic": "homevitals/v1/home/home-novak/reading/bp-1",
        "value_template": "{{ value_json.fields.systolic.value if value_json.fields is defined"
                          " and value_json.fields.systolic is defined and"
                          " value_json.fields.systolic.value is number else '' }}",
        "unit_of_measurement": "mmHg",
        "state_class": "measurement",
        "unique_id": "homevitals_home-novak_bp-1_systolic",
        **AVAILABILITY,
        "device": {"identifiers": ["homevitals_home-novak_bp-1"],
                   "name": "Ana's blood-pressure monitor", "manufacturer": "homevitals",
                   "model": "blood_pressure"},
    }
    # Without a name in the config: the patient's name and what the device is.
    bp = _configs()[NODE.format("sensor", "bp-1_diastolic")]
    assert bp["device"]["name"] == "Ana Novak's blood-pressure monitor"
    assert "device_class" not in bp


def test_glucose_is_a_blood_glucose_concentration() -> None:
    glucose = _configs()[NODE.format("sensor", "glucometer-1_glucose")]
    assert (glucose["device_class"], glucose["unit_of_measurement"]) == (
        "blood_glucose_concentration", "mmol/L")
    assert glucose["device"]["name"] == "Ana Novak's glucose meter"


def test_battery_sensors_for_the_meters_are_diagnostic_from_the_heartbeat() -> None:
    configs = _configs()
    for device in ("bp-1", "glucometer-1", "button-1"):
        battery = configs[NODE.format("sensor", f"{device}_battery")]
        assert battery["state_topic"] == "homevitals/v1/home/home-novak/heartbeat"
        assert (battery["device_class"], battery["entity_category"],
                battery["unit_of_measurement"]) == ("battery", "diagnostic", "%")
        assert battery["value_template"] == (
            f'{{{{ value_json.devices["{device}"].battery if value_json.devices is defined and'
            f' value_json.devices["{device}"] is defined and'
            f' value_json.devices["{device}"].battery is number else \'\' }}}}')
    beat = wire.encode(wire.Heartbeat(
        home="home-novak", time=wire.format_time(T), queue_depth=0, inflight=0,
        devices={"bp-1": {"last_seen": wire.format_time(T), "battery": 90.0},
                 "glucometer-1": {"last_seen": wire.format_time(T), "battery": None}},
        counts={}, rejects={}, dropped=0))
    render = {d: _render(configs[NODE.format("sensor", f"{d}_battery")]["value_template"], beat)
              for d in ("bp-1", "glucometer-1", "button-1")}
    # HA's MQTT sensor ignores an empty state: no battery yet keeps what it had.
    assert render == {"bp-1": "90.0", "glucometer-1": "", "button-1": ""}


def test_a_message_without_the_field_renders_nothing() -> None:
    systolic = _configs()[NODE.format("sensor", "bp-1_systolic")]["value_template"]
    full = _reading(Measurement.BLOOD_PRESSURE, systolic=FieldValue(138, Unit.MMHG),
                    diastolic=FieldValue(86, Unit.MMHG))
    battery_only = _reading(Measurement.BATTERY, battery=FieldValue(80, Unit.PERCENT))
    assert (_render(systolic, full), _render(systolic, battery_only)) == ("138", "")


def test_the_call_button_is_an_event_entity() -> None:
    press = _configs()[NODE.format("event", "button-1_press")]
    assert press == {
        "name": "Press",
        "state_topic": "homevitals/v1/home/home-novak/event/button-1",
        "value_template": '{"event_type": "{{ value_json.detail }}"}',
        "event_types": ["double_press", "hold_press", "long_double_press", "long_press",
                        "long_triple_press", "press", "triple_press"],
        "device_class": "button",
        "unique_id": "homevitals_home-novak_button-1_press",
        **AVAILABILITY,
        "device": {"identifiers": ["homevitals_home-novak_button-1"],
                   "name": "Ana Novak's call button", "manufacturer": "homevitals",
                   "model": "call_button"},
    }
    event = wire.encode(Event("e1", "home-novak", "ana", "button-1", EventKind.CALL_BUTTON,
                              T, T, detail="long_press"))
    assert json.loads(_render(press["value_template"], event)) == {"event_type": "long_press"}
