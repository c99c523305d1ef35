"""The rules daemon's one entry point: subscription -> engine -> durable outbox -> MQTT.

Threads: paho's network thread checks each message (``homevitals.rules.intake``) and runs the
engine (one SQLite commit, then the PUBACK); the outbox pump publishes decisions; APScheduler's
one worker runs the clock tick that judges missing data and silent gateways. The engine's
transactions serialise them. All are declared to the runner (``workers``, ``conditions``).

With ``rules.source: amqp`` (the cluster profile, docs/cluster.md "Rules ownership") the messages
come from partitions of a RabbitMQ cluster instead (``homevitals.rules.amqp_source``, its own
thread), and the MQTT session only publishes decisions.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from homevitals.rules.amqp_source import RulesAmqpSource

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
        amqp = cfg.rules.source == "amqp"
        self.subscriber = Subscriber(
            cfg.mqtt_for("rules"),
            cfg.rules.client_id,
            [] if amqp else list(self.topics.rules_subscriptions),
            self.intake.handle,
            self.dead.keep,
        )
        self.pump = OutboxPump(self.subscriber.client, self.outbox, name="rules")
        self.dead.on_kept = self.pump.notify
        self.source = _amqp_source(self) if amqp else None
        if self.source is None:
            self.subscriber.on_connected.append(self.pump.set_connected)
        else:
            gate = _LeadGate(self.pump)
            self.subscriber.on_connected.append(gate.connected)
            self.source.on_leading.append(gate.leading)
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

    def take_over_home(self, home: str) -> None:
        """The source's hook: the patients of ``home`` are this worker's from now on."""
        patients = [p.id for h in self.cfg.homes if h.id == home for p in h.patients]
        self.take_over(patients)

    def give_up_homes(self, homes: set[str]) -> None:
        """The source's hook: another worker owns these homes now."""
        self.give_up([p.id for h in self.cfg.homes if h.id in homes for p in h.patients])

    def take_over(self, patients: list[str]) -> int:
        """Stand-in with the signature of branch rstate's ``RulesApp.take_over``, which loads
        the patients' state and adopts their pending decisions: here the engine reads all of
        it from ``rules.state_path`` inside each transaction (one SQLite file the workers of
        one host share), so there is nothing to load; device clocks are memory only and
        relearned (rules/device_clock.py). Returns the decisions adopted."""
        logger.info("taking over %s: their state is read from %s", ", ".join(patients),
                    self.cfg.rules.state_path)
        return 0

    def give_up(self, patients: list[str]) -> None:
        """Stand-in with the signature of branch rstate's ``RulesApp.give_up``."""
        logger.info("no longer the owner of %s", ", ".join(patients))

    def _on_timer(self, key: str) -> None:
        if self.engine.tick():
            self.pump.notify()

    def workers(self) -> list[Worker]:
        own = [] if self.source is None else self.source.workers()
        return [*self.subscriber.watch.workers(), self.pump.worker(), self.scheduler.worker(),
                *own]

    def conditions(self) -> list[Condition]:
        if self.source is None:
            return self.subscriber.watch.conditions()
        return [*self.subscriber.watch.conditions(subscribed=False), *self.source.conditions()]

    def start(self) -> None:
        self.pump.start()
        self.scheduler.start()
        self.subscriber.start()
        if self.source is not None:
            self.source.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        self.scheduler.stop()
        if self.pump.connected.is_set():
            self.pump.drain(drain_seconds)
        self.pump.stop()
        if self.source is not None:
            # After the pump: the lead token moves on when this connection closes, and a
            # decision committed meanwhile waits in the shared outbox for the next leader's
            # pump (two pumps never publish at once).
            self.source.stop()
        self.subscriber.stop()
        self.outbox.close()


def _amqp_source(app: RulesApp) -> RulesAmqpSource:
    from homevitals.rules.amqp_source import RulesAmqpSource  # pika: the cluster extra

    assert app.cfg.rules.amqp is not None  # RulesConfig checks it
    return RulesAmqpSource(app.cfg.rules.amqp, app.topics, app.intake.handle, app.dead.keep,
                           app.take_over_home, app.give_up_homes)


class _LeadGate:
    """In the cluster profile the workers of one host share the outbox (``rules.state_path``), so
    decisions leave through one worker at a time: the one that leads (holds the lead token),
    while its MQTT session is up. (With outbox rows that name their worker, as on branch
    rstate's ``rules.state_url``, each pump publishes its own rows and this gate must go.) A
    decision another worker committed waits for the leader's pump (it looks at the outbox at
    least every second)."""

    def __init__(self, pump: OutboxPump) -> None:
        self.pump = pump
        self._lock = threading.Lock()
        self._connected = self._leading = False

    def connected(self, up: bool) -> None:
        with self._lock:
            self._connected = up
            self.pump.set_connected(self._connected and self._leading)

    def leading(self, lead: bool) -> None:
        with self._lock:
            self._leading = lead
            self.pump.set_connected(self._connected and self._leading)


def run_rules(cfg: Config, clock: Clock | None = None) -> None:
    app = RulesApp(cfg, clock)
    Runner(app, cfg.rules.metrics, lambda: rules_metrics(app)).run(app.start, app.stop)
