"""The rules daemon's one entry point: subscription -> engine -> durable outbox -> MQTT.

Threads: paho's network thread runs the engine for each message (one SQLite commit, then the
PUBACK); the outbox pump publishes decisions; APScheduler's one worker runs the clock tick that
judges missing data and silent gateways (``homevitals.scheduling``). The engine's transactions
serialise them.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import paho.mqtt.client as mqtt

from homevitals import wire
from homevitals.clock import Clock, SystemClock
from homevitals.config import Config
from homevitals.deadletter import SERVER_REASONS, DeadLetters
from homevitals.errors import WireError
from homevitals.metrics import Metric, counter, gauge, start_health
from homevitals.origin import Mismatch, Registry
from homevitals.outbox import DurableQueue, OutboxPump
from homevitals.readings import AlertDecision, Event, GatewayStatus, Reading
from homevitals.rules.engine import RuleEngine
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
        self.registry = Registry(cfg.homes)
        self.dead = DeadLetters("rules", self.outbox, self.topics, self.clock)
        self.subscriber = Subscriber(
            cfg.mqtt_for("rules"),
            cfg.rules.client_id,
            list(self.topics.rules_subscriptions),
            self.handle,
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

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        """Check a message (wire format, then origin: topic and configuration), then run the
        rules. What fails a check is dead-lettered; the Subscriber acknowledges it after."""
        try:
            decoded = wire.decode(msg.payload)
        except WireError as exc:
            self.dead.keep(msg.topic, msg.payload, exc.reason, str(exc))
            return
        parsed = self.topics.parse(msg.topic)
        if isinstance(decoded, wire.Heartbeat):
            mismatch = self.registry.check_home(parsed, "heartbeat", str(decoded["home"]))
        elif isinstance(decoded, Reading | Event | GatewayStatus):
            mismatch = self.registry.check(parsed, decoded)
        else:
            mismatch = Mismatch(
                "wrong_topic", f"a {type(decoded).__name__} message on topic {msg.topic}"
            )
        if mismatch is not None:
            self.dead.keep(msg.topic, msg.payload, mismatch.reason, mismatch.error)
            return
        decisions: list[AlertDecision] = []
        if isinstance(decoded, Reading):
            decisions = self.engine.on_reading(decoded)
        elif isinstance(decoded, Event):
            decisions = self.engine.on_event(decoded)
        elif isinstance(decoded, GatewayStatus):
            decisions = self.engine.on_status(decoded)
        elif isinstance(decoded, wire.Heartbeat):
            decisions = self._heartbeat(decoded, msg)
        if decisions:
            self.pump.notify()

    def _heartbeat(self, hb: wire.Heartbeat, msg: mqtt.MQTTMessage) -> list[AlertDecision]:
        try:
            at = wire.parse_time(hb.get("time"), "time")
        except WireError as exc:
            self.dead.keep(msg.topic, msg.payload, exc.reason, str(exc))
            return []
        home = str(hb["home"])
        own = self.registry.home_devices(home)  # a home reports its own devices' batteries only
        batteries: dict[str, float] = {}
        devices = hb.get("devices")
        for device, info in devices.items() if isinstance(devices, dict) else []:
            level = info.get("battery") if isinstance(info, dict) else None
            if device in own and isinstance(level, float | int) and not isinstance(level, bool):
                if 0 <= level <= 100:
                    batteries[str(device)] = float(level)
        return self.engine.on_heartbeat(home, at, batteries)

    def _on_timer(self, key: str) -> None:
        if self.engine.tick():
            self.pump.notify()

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


def _metrics(app: RulesApp) -> list[Metric]:
    return [
        counter("homevitals_rules_decisions_total", "alert decisions made, by state and outcome",
                {k: v for k, v in app.engine.counts.items()}, "kind"),
        counter("homevitals_rules_rejected_total",
                "messages the rules dead-lettered, by reason",
                {**dict.fromkeys(SERVER_REASONS, 0), **app.dead.counts}, "reason"),
        counter("homevitals_rules_published_total", "decisions handed to the broker",
                app.pump.published),
        counter("homevitals_rules_acknowledged_total", "decisions the broker acknowledged",
                app.pump.acked),
        gauge("homevitals_rules_outbox", "decisions waiting for the broker", len(app.outbox)),
        gauge("homevitals_rules_connected", "1 while connected to the broker",
              app.subscriber.connected.is_set()),
    ]


def run_rules(cfg: Config, clock: Clock | None = None) -> None:
    app = RulesApp(cfg, clock)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    health = start_health(
        cfg.rules.metrics, lambda: _metrics(app),
        ready=lambda: app.subscriber.connected.is_set() and app.subscriber.subscribed.is_set(),
        live=app.pump._thread.is_alive,  # noqa: SLF001 - the pump is what must not die
    )
    stop.wait()
    app.stop()
    if health is not None:
        health.stop()
