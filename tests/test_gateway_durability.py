"""Nothing lost: the power-loss story with a real Mosquitto and the gateway as a real process
killed with SIGKILL; the heartbeat and Home Assistant discovery seen by a real paho subscriber;
the queue bound and its policy."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from daemons import Daemon, wait_until, write_config
from gateway_helpers import home
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.gateway.app import GatewayApp
from homevitals.gateway.gatt import RawValue
from homevitals.gateway.service import Gateway
from homevitals.infra.outbox import DurableQueue
from homevitals.simulators.ble_values import encode_bp_measurement, encode_bthome_button
from homevitals.simulators.devices import radio_for_home
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.topics import Topics

DEVICES = [
    {"id": "meter-1", "kind": "glucose_meter", "patient": "ana", "address": "C0:00:00:00:00:01"},
    {"id": "bp-1", "kind": "blood_pressure", "patient": "ana", "address": "C0:00:00:00:00:02"},
    {"id": "hr-1", "kind": "heart_rate", "patient": "ana", "address": "C0:00:00:00:00:03"},
    {"id": "ox-1", "kind": "pulse_oximeter", "patient": "ana", "address": "C0:00:00:00:00:04"},
    {"id": "cgm-1", "kind": "cgm", "patient": "ana", "address": "C0:00:00:00:00:05"},
    {"id": "button-1", "kind": "call_button", "patient": "ana", "address": "C0:00:00:00:00:06"},
]


def _config(tmp: Path, port: int, **gateway: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1", "port": port, "keepalive": 10},
        "homes": [{"id": "home-test", "timezone": "Europe/Ljubljana",
                   "patients": [{"id": "ana", "name": "Ana", "care_team": [
                       {"name": "Dr. K", "role": "family_doctor", "phone": "+15550100001"}]}],
                   "devices": DEVICES}],
        "gateway": {"home": "home-test", "queue_path": str(tmp / "gw-queue.sqlite"),
                    "heartbeat_seconds": 0.3, **gateway},
    }


class Subscriber:
    """A real paho client counting every message it gets, by topic filter."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"counter-{id(self)}")
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber not subscribed"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def payloads(self, part: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if part in t]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _queued_ids(path: Path, *, starting: bool = False) -> list[str]:
    """Ids of the readings and events in the gateway's queue file. ``starting``: the gateway may
    have created the file but not yet its tables (nothing queued yet)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT payload FROM outbox WHERE topic LIKE '%/reading/%'"
                          " OR topic LIKE '%/event/%'").fetchall()
    except sqlite3.OperationalError as exc:
        if starting and "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()
    return [json.loads(r[0])["id"] for r in rows]


def test_power_loss_while_the_broker_is_down_loses_and_duplicates_nothing(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    broker = mosquitto_factory()
    broker.stop()  # the home's internet is down
    cfg = write_config(tmp_path / "gw.yaml", _config(tmp_path, broker.port))
    queue_file = tmp_path / "gw-queue.sqlite"
    gw = Daemon("gateway", cfg, tmp_path, "--simulate", "devices", "--sim-interval", "0.05")
    try:
        wait_until("80 messages queued on disk",
                   lambda: queue_file.exists()
                   and len(_queued_ids(queue_file, starting=True)) >= 80,
                   timeout=60)
    finally:
        gw.kill()  # SIGKILL: the power goes out
    before = _queued_ids(queue_file)
    assert len(before) == len(set(before)) >= 80

    broker.start()  # the internet is back, and so is the power
    sub = Subscriber(broker.port, "homevitals/v1/home/+/reading/+",
                     "homevitals/v1/home/+/event/+")
    gw2 = Daemon("gateway", cfg, tmp_path, "--simulate", "devices", "--sim-interval", "0.05")
    try:
        wait_until("every reading queued before the power loss",
                   lambda: set(before) <= {p["id"] for p in sub.payloads("/home/")}, timeout=60)
        gw2.terminate()
    finally:
        gw2.kill()
        sub.stop()
    got = Counter(p["id"] for p in sub.payloads("/home/"))
    assert all(got[i] == 1 for i in before)
    assert [i for i, n in got.items() if n > 1] == []
    glucose = [p for p in sub.payloads("/reading/meter-1") if p["measurement"] == "glucose"]
    assert len(glucose) == 20  # the meter's 20 stored records: fetched once across the restart
    assert "still queued on disk" in gw2.log()


def test_heartbeat_and_home_assistant_discovery(tmp_path: Path, mosquitto: Any) -> None:
    data = _config(tmp_path, mosquitto.port, home_assistant={"enabled": True})
    cfg = parse_config(json.dumps(data))
    sub = Subscriber(mosquitto.port, "homevitals/v1/home/home-test/heartbeat",
                     "homeassistant/#")
    app = GatewayApp(cfg, radio_for_home(cfg.homes[0], interval=0.05), SystemClock(),
                     central_options={"min_backoff": 0.05})

    def beat_with_everyone() -> dict[str, Any] | None:
        for beat in reversed(sub.payloads("/heartbeat")):
            devices = beat["devices"]
            if {"bp-1", "hr-1", "ox-1", "cgm-1", "meter-1", "button-1"} <= set(devices) and all(
                    d["battery"] is not None for d in devices.values()):
                return beat
        return None

    async def main() -> None:
        stop = asyncio.Event()
        run = asyncio.create_task(app.run(stop, drain_seconds=5))
        deadline = time.monotonic() + 30
        while beat_with_everyone() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # a wait-until poll for the heartbeat with everyone
        stop.set()
        await run

    try:
        asyncio.run(main())
    finally:
        sub.stop()
    beat = beat_with_everyone()
    assert beat is not None, sub.payloads("/heartbeat")[-1:]
    assert beat["type"] == "heartbeat" and isinstance(beat["queue_depth"], int)
    assert beat["devices"]["bp-1"]["battery"] == 90.0
    assert beat["devices"]["button-1"]["battery"] == 100.0  # from the BTHome advert
    assert beat["devices"]["bp-1"]["last_seen"].endswith("Z")
    assert beat["counts"]["readings"] > 0
    configs = {t: p for t, p, retained in sub.messages if t.startswith("homeassistant/")}
    node = "homeassistant/sensor/homevitals_home-test"
    glucose = json.loads(configs[f"{node}/meter-1_glucose/config"])
    assert glucose["state_topic"] == "homevitals/v1/home/home-test/reading/meter-1"
    assert glucose["unit_of_measurement"] == "mmol/L"
    assert glucose["availability_topic"] == "homevitals/v1/home/home-test/status"
    assert f"{node}/bp-1_systolic/config" in configs
    assert json.loads(configs[f"{node}/bp-1_battery/config"])["entity_category"] == "diagnostic"
    press = json.loads(configs["homeassistant/event/homevitals_home-test/button-1_press/config"])
    assert press["state_topic"] == "homevitals/v1/home/home-test/event/button-1"


def test_home_assistant_discovery_is_off_by_default() -> None:
    cfg = parse_config(json.dumps(_config(Path("/tmp"), 1883)))
    assert cfg.gateway is not None and cfg.gateway.home_assistant.enabled is False


def _bp(i: int) -> RawValue:
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)
    return RawValue("bp-1", "2A35", encode_bp_measurement(100 + i % 50, 80, 90), t)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_new_readings"])
def test_queue_bound_policy_is_explicit_and_logged(
    tmp_path: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = parse_config(json.dumps(_config(tmp_path, 1883, queue_max_messages=100,
                                          queue_full=policy)))
    assert cfg.gateway is not None
    queue = DurableQueue(tmp_path / "bound.sqlite", 100)
    gateway = Gateway(home(*[{k: v for k, v in d.items() if k != "patient"} for d in DEVICES]),
                      queue, Topics(), SystemClock(), cfg.gateway)
    with caplog.at_level(logging.ERROR):
        for i in range(130):
            gateway.deliver(_bp(i))
        press = RawValue("button-1", "bthome", encode_bthome_button(5), _bp(200).received_at)
        gateway.deliver(press)
    payloads = [json.loads(m.payload) for m in queue.peek(1000)]
    assert len(payloads) == 100
    assert payloads[-1]["type"] == "event"  # a call for help is always queued
    readings = [p for p in payloads if p["type"] == "reading"]
    if policy == "drop_oldest":
        assert readings[0]["time"] == "2026-01-01T00:31:00.000000Z"  # the 31 oldest went
        assert queue.dropped == 31 and gateway.refused == 0
        assert "gateway queue full (100 messages): dropped the 1 oldest" in caplog.text
    else:
        # The newest readings were refused; the press then made room by evicting the oldest.
        assert readings[0]["time"] == "2026-01-01T00:01:00.000000Z"
        assert readings[-1]["time"] == "2026-01-01T01:39:00.000000Z"
        assert gateway.refused == 30 and queue.dropped == 1
        assert "refused a blood_pressure reading from bp-1; 30 refused since start" in caplog.text
    queue.close()
