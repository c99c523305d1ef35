"""The rules daemon's one entry point: subscription -> engine -> durable outbox -> MQTT."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import paho.mqtt.client as mqtt

from homevitals import wire
from homevitals.config import Config
from homevitals.errors import WireError
from homevitals.outbox import DurableQueue, OutboxPump
from homevitals.readings import Event, Reading
from homevitals.rules.engine import RuleEngine
from homevitals.subscriber import Subscriber
from homevitals.topics import Topics

__all__ = ["RulesApp", "run_rules"]

logger = logging.getLogger(__name__)


class RulesApp:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.outbox = DurableQueue(cfg.rules.state_path)
        self.engine = RuleEngine(list(cfg.rules.definitions), cfg.homes, self.outbox, self.topics)
        self.rejected = 0
        self.subscriber = Subscriber(
            cfg.mqtt,
            cfg.rules.client_id,
            [self.topics.all_readings, self.topics.all_events],
            self.handle,
        )
        self.pump = OutboxPump(self.subscriber.client, self.outbox, name="rules")
        self.subscriber.on_connected.append(self.pump.set_connected)
        self.subscriber.client.on_publish = self._on_publish

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, rc: Any, _p: Any = None) -> None:
        self.pump.on_publish(mid, rc)

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        try:
            decoded = wire.decode(msg.payload)
        except WireError as exc:
            # Ingest keeps and counts rejected messages (dead-letter); rules only skip them.
            self.rejected += 1
            logger.warning("rules skip a message on %s: %s", msg.topic, exc)
            return
        if isinstance(decoded, Reading):
            decisions = self.engine.on_reading(decoded)
        elif isinstance(decoded, Event):
            decisions = self.engine.on_event(decoded)
        else:
            return
        if decisions:
            self.pump.notify()

    def start(self) -> None:
        self.pump.start()
        self.subscriber.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        if self.pump.connected.is_set():
            self.pump.drain(drain_seconds)
        self.pump.stop()
        self.subscriber.stop()
        self.outbox.close()


def run_rules(cfg: Config) -> None:
    app = RulesApp(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    stop.wait()
    app.stop()
