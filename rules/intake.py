"""What the rules daemon does with one MQTT message: check it (wire format, then origin: the
topic and the configuration), dead-letter what fails, and hand the rest to the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from homevitals.infra.deadletter import DeadLetters
from homevitals.rules.engine import RuleEngine
from homevitals.vocab import wire
from homevitals.vocab.errors import WireError
from homevitals.vocab.origin import Mismatch, Registry
from homevitals.vocab.readings import AlertDecision, Event, GatewayStatus, Reading
from homevitals.vocab.topics import Topics

__all__ = ["Intake", "Message"]


class Message(Protocol):
    """What the rules read of a message: paho's ``MQTTMessage`` has both, so has a queue's."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes | bytearray: ...


class Intake:
    """The Subscriber's handler: never raises for a bad message (it is dead-lettered); calls
    `on_decisions` when the engine decided something, so the outbox pump publishes it."""

    def __init__(self, engine: RuleEngine, registry: Registry, dead: DeadLetters, topics: Topics,
                 on_decisions: Callable[[], None]) -> None:
        self.engine = engine
        self.registry = registry
        self.dead = dead
        self.topics = topics
        self.on_decisions = on_decisions

    def handle(self, msg: Message) -> None:
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
            self.on_decisions()

    def _heartbeat(self, hb: wire.Heartbeat, msg: Message) -> list[AlertDecision]:
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

