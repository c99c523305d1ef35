"""The rules daemon's one entry point: subscription -> engine -> durable outbox -> MQTT.

Threads: paho's network thread checks each message (``homevitals.rules.intake``) and runs the
engine (one SQLite commit, then the PUBACK); the outbox pump publishes decisions; APScheduler's
one worker runs the clock tick that judges missing data and silent gateways. The engine's
transactions serialise them. All are declared to the runner (``workers``, ``conditions``).
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt

from homevitals.clock import Clock, SystemClock
from homevitals.config import Config
from homevitals.deadletter import DeadLetters
from homevitals.origin import Registry
from homevitals.outbox import DurableQueue, OutboxPump
from homevitals.rules.engine import RuleEngine
from homevitals.rules.intake import Intake
from homevitals.rules.telemetry import rules_metrics
from homevitals.runtime import Condition, Runner, Worker
from homevitals.scheduling import JobScheduler, default_path
from homevitals.subscriber import Subscriber
from homevitals.topics import Topics

__all__ = ["RulesApp", "run_rules"]

logger = logging.getLogger(__name__)


class RulesApp:
    def __init__(self, cfg: Config, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.outbox = DurableQueue(cfg.rules.state_path)
        self.engine = RuleEngine(
            list(cfg.rules.definitions), cfg.homes, self.outbox, self.topics, self.clock
        )
        self.dead = DeadLetters("rules", self.outbox, self.topics, self.clock)
        self.intake = Intake(self.engine, Registry(cfg.homes), self.dead, self.topics,
                             lambda: self.pump.notify())
        self.subscriber = Subscriber(
            cfg.mqtt_for("rules"),
            cfg.rules.client_id,
            list(self.topics.rules_subscriptions),
            self.intake.handle,
            self.dead.keep,
        )
        self.pump = OutboxPump(self.subscriber.client, self.outbox, name="rules")
        self.dead.on_kept = self.pump.notify
        self.subscriber.on_connected.append(self.pump.set_connected)
        self.subscriber.client.on_publish = self._on_publish
        self.scheduler = JobScheduler(
            "rules",
            cfg.rules.schedule_path or default_path(cfg.rules.state_path),
            self._on_timer,
            self.clock,
            tick_seconds=cfg.rules.tick_seconds,
        )

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, rc: Any, _p: Any = None) -> None:
        self.pump.on_publish(mid, rc)

    def _on_timer(self, key: str) -> None:
        if self.engine.tick():
            self.pump.notify()

    def workers(self) -> list[Worker]:
        return [*self.subscriber.watch.workers(), self.pump.worker(), self.scheduler.worker()]

    def conditions(self) -> list[Condition]:
        return self.subscriber.watch.conditions()

    def start(self) -> None:
        self.pump.start()
        self.scheduler.start()
        self.subscriber.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        self.scheduler.stop()
        if self.pump.connected.is_set():
            self.pump.drain(drain_seconds)
        self.pump.stop()
        self.subscriber.stop()
        self.outbox.close()


def run_rules(cfg: Config, clock: Clock | None = None) -> None:
    app = RulesApp(cfg, clock)
    Runner(app, cfg.rules.metrics, lambda: rules_metrics(app)).run(app.start, app.stop)
