"""The fleet load generator publishes exactly the readings it promises, on each home's topics."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from daemons import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.simulators.fleet import FleetSpec, publish_fleet


def test_a_burst_of_gateways_replaying_their_outage(mosquitto: Any) -> None:
    spec = FleetSpec(homes=50, devices=2, readings=10, tag="fleet-test")
    got: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        with lock:
            got.append((m.topic, json.loads(m.payload)["id"]))

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-counter", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("homevitals/v1/home/+/reading/+", qos=1)
    sub.loop_start()
    try:
        wait_until("subscribed", lambda: sub.is_connected(), 10)
        publish_fleet(mosquitto.port, spec, processes=2)
        wait_until("every reading", lambda: len(got) >= spec.total, 60)
        assert len(got) == spec.total == 1000
        assert len({i for _, i in got}) == spec.total
        assert ("homevitals/v1/home/home-00049/reading/dev-1", "fleet-test-49-1-9") in got
    finally:
        sub.disconnect()
        sub.loop_stop()
