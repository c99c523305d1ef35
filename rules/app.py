"""The rules stage's app (run by ``rules/main.py``): subscription -> engine -> outbox -> MQTT.

Threads: paho's network thread checks each message (``homevitals.rules.intake``) and runs the
engine (one commit, then the PUBACK); the outbox pump publishes decisions; the rules' timer
(``rules/timers.py``) judges missing data and silent gateways when their checks come due. The
engine's transactions serialise them. All are declared to the runner (``workers``,
``conditions``). The state is SQLite (``rules.state_path``) or PostgreSQL (``rules.state_url``,
``rules/store.py``).

With ``rules.source: amqp`` (the cluster profile, docs/cluster.md "Rules ownership") the messages
come from partitions of a RabbitMQ cluster instead (``homevitals.rules.amqp_source``, its own
thread), which calls ``take_over`` for the patients of each home it becomes the owner of and
``give_up`` when it loses them; the MQTT session only publishes decisions (each worker's pump its
own outbox rows).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from homevitals.infra.deadletter import DeadLetters
from homevitals.infra.outbox import OutboxPump
from homevitals.infra.runtime import Condition, Worker
from homevitals.infra.subscriber import Subscriber
from homevitals.rules.engine import RuleEngine
from homevitals.rules.intake import Intake
from homevitals.rules.store import RulesStore
from homevitals.rules.timers import RulesTimer
from homevitals.vocab.clock import Clock, SystemClock
from homevitals.vocab.config import Config
from homevitals.vocab.origin import Registry
from homevitals.vocab.topics import Topics

if TYPE_CHECKING:
    from homevitals.rules.amqp_source import RulesAmqpSource

__all__ = ["RulesApp"]

logger = logging.getLogger(__name__)


class RulesApp:
    def __init__(self, cfg: Config, clock: Clock | None = None, timer_thread: bool = True
                 ) -> None:
        """``timer_thread=False``: a driver takes the timer's passes itself (``timers.step``,
        the replay)."""
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.outbox = RulesStore(cfg.rules.state_url or cfg.rules.state_path, cfg.rules.client_id)
        self.engine = RuleEngine(
            list(cfg.rules.definitions), cfg.homes, self.outbox, self.topics, self.clock,
            owner=cfg.rules.client_id,
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
        self.subscriber.on_connected.append(self.pump.set_connected)
        self.subscriber.client.on_publish = self._on_publish
        self.timers = RulesTimer(self.engine, cfg.rules.tick_seconds, self.pump.notify)
        self.engine.watch.kick = self.timers.kick
        self.timer_thread = timer_thread and cfg.rules.tick_seconds > 0

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, rc: Any, _p: Any = None) -> None:
        self.pump.on_publish(mid, rc)

    def take_over(self, patients: Iterable[str] | None = None) -> int:
        """This worker now owns ``patients`` (None: all): their state is read from the database,
        their silence checks are this worker's timer's, and their decisions still waiting in
        the outbox (written by a worker that died) are published by this worker's pump. Call it
        before handling their messages (docs/cluster.md, "Rules ownership"). Returns how many
        pending decisions were adopted."""
        taken = self.engine.take_over(patients)
        adopted = self.outbox.adopt([self.topics.alert(s.home.id, s.patient.id) for s in taken])
        self.timers.kick()
        self.pump.notify()
        return adopted

    def give_up(self, patients: Iterable[str]) -> None:
        """Another worker owns ``patients`` now (docs/cluster.md, "Rules ownership")."""
        self.engine.give_up(patients)

    def take_over_home(self, home: str) -> None:
        """The partition source's hook: the patients of ``home`` are this worker's from now on."""
        self.take_over([p.id for h in self.cfg.homes if h.id == home for p in h.patients])

    def give_up_homes(self, homes: set[str]) -> None:
        """The partition source's hook: another worker owns these homes now."""
        self.give_up([p.id for h in self.cfg.homes if h.id in homes for p in h.patients])

    def workers(self) -> list[Worker]:
        timers = [self.timers.worker()] if self.timer_thread else []
        own = [] if self.source is None else self.source.workers()
        return [*self.subscriber.watch.workers(), self.pump.worker(), *timers, *own]

    def conditions(self) -> list[Condition]:
        if self.source is None:
            return self.subscriber.watch.conditions()
        return [*self.subscriber.watch.conditions(subscribed=False), *self.source.conditions()]

    def start(self) -> None:
        if self.source is None and self.cfg.rules.state_url is None:
            self.take_over()  # one worker: it owns every patient
        self.pump.start()
        if self.timer_thread:
            self.timers.start()  # its first pass judges what came due while the daemon was down
        self.subscriber.start()
        if self.source is not None:
            self.source.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        self.timers.stop()
        if self.pump.connected.is_set():
            self.pump.drain(drain_seconds)
        self.pump.stop()
        if self.source is not None:
            # After the pump: a decision committed meanwhile stays in the outbox under this
            # worker's name; the worker that takes its homes over adopts it (``take_over``).
            self.source.stop()
        self.subscriber.stop()
        self.outbox.close()


def _amqp_source(app: RulesApp) -> RulesAmqpSource:
    from homevitals.rules.amqp_source import RulesAmqpSource  # pika: the cluster extra

    assert app.cfg.rules.amqp is not None  # RulesConfig checks it
    return RulesAmqpSource(app.cfg.rules.amqp, app.topics, app.intake.handle, app.dead.keep,
                           app.take_over_home, app.give_up_homes)
