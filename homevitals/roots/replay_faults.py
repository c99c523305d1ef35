"""Faults of ``homevitals replay`` that act on MQTT delivery: the broker delivering a message twice.

A QoS 1 message is delivered at least once: a broker that lost a subscriber's PUBACK (or a
bridge, or a cluster fail-over) delivers it again. ``Duplicator`` makes that happen on purpose:
while a ``duplicate_delivery`` fault is on for a home, every reading, event and alert decision of
that home reaches every subscriber (ingest, rules, alerts) twice, byte for byte.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.vocab.errors import HomevitalsError
from homevitals.vocab.topics import Topics

__all__ = ["Duplication", "Duplicator"]

logger = logging.getLogger(__name__)


class Duplicator:
    """Subscribes to one home's readings, events and alert decisions and publishes each message
    it receives once more, unchanged, on the same topic (QoS 1). Its own copies come back to it
    too and are recognised by their bytes, so each message is doubled exactly once."""

    def __init__(self, port: int, topics: Topics, home: str) -> None:
        prefix = topics.prefix
        self.filters = [f"{prefix}/v1/home/{home}/reading/#", f"{prefix}/v1/home/{home}/event/#",
                        f"{prefix}/v1/alert/{home}/#"]
        self.copies: Counter[str] = Counter()  # by topic kind: reading, event, alert
        self._topics = topics
        self._sent: set[tuple[str, bytes]] = set()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"duplicator-{home}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in self.filters])
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(30):
            self.close()
            raise HomevitalsError(f"duplicate_delivery: no subscription on 127.0.0.1:{port}")

    def _on_message(self, client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        key = (msg.topic, bytes(msg.payload))
        if key in self._sent:
            self._sent.discard(key)  # our own copy, delivered back to us
            return
        self._sent.add(key)
        client.publish(msg.topic, msg.payload, qos=1)
        parsed = self._topics.parse(msg.topic)
        self.copies[parsed.kind if parsed else "other"] += 1
        logger.info("duplicate_delivery: %s delivered twice", msg.topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Duplication:
    """The ``duplicate_delivery`` faults in force: one ``Duplicator`` per home while any is on
    (they may overlap), and the copies delivered so far, by topic kind."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()
        self._depth: Counter[str] = Counter()
        self._running: dict[str, Duplicator] = {}

    def on(self, home: str) -> bool:
        return self._depth[home] > 0

    def switch(self, home: str, delta: int, port: int, topics: Topics) -> None:
        """A fault for ``home`` begins (+1) or ends (-1)."""
        self._depth[home] += delta
        if self.on(home) and home not in self._running:
            self._running[home] = Duplicator(port, topics, home)
        elif not self.on(home) and home in self._running:
            self._stop(home)

    def close(self) -> None:
        for home in list(self._running):
            self._stop(home)

    def _stop(self, home: str) -> None:
        d = self._running.pop(home)
        d.close()
        self.copies.update(d.copies)
