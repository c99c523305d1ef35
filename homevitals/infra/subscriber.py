"""A QoS 1 subscriber with a persistent session and manual acknowledgement, shared by the
server-side stages (rules, alerts).

The PUBACK for a message is sent only after the handler returned, i.e. after what the message
caused is durable. If the process dies first, the broker redelivers the message. Handlers run on
paho's network thread and must be quick (a SQLite commit); slow work (InfluxDB, Twilio) goes to
a queue of its own.

The handler's edge: a message whose handling raises anything is handed to ``dead_letter`` (which
makes it durable, see ``homevitals.infra.deadletter``) and then acknowledged, so no message can be
redelivered forever. Only when even the dead letter cannot be kept does it stay unacknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from homevitals.infra.mqtt import connect_async, disconnect, make_client, reason_failed
from homevitals.infra.mqtt_watch import MqttWatch
from homevitals.vocab.config import MqttConfig

__all__ = ["DeadLetterSink", "Subscriber"]

logger = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600

# (topic, payload, reason, error, error class): durable when it returns (DeadLetters.keep).
DeadLetterSink = Callable[[str, bytes | bytearray, str, str, str], None]


class Subscriber:
    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        topics: list[str],
        handle: Callable[[mqtt.MQTTMessage], None],
        dead_letter: DeadLetterSink,
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.handle = handle
        self.dead_letter = dead_letter
        self.client = make_client(
            cfg,
            client_id,
            clean_start=False,
            session_expiry=SESSION_EXPIRY_SECONDS,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self.on_connected: list[Callable[[bool], None]] = []
        self.errors = 0
        # paho's thread, the handler and the session, for the runner (homevitals.infra.runtime).
        self.watch = MqttWatch(cfg)

    @property
    def connected(self) -> bool:
        """Connected, and paho's thread runs and is not held past the keepalive (the watch)."""
        return self.watch.connected

    def start(self) -> None:
        self.watch.install(self.client)
        connect_async(self.client, self.cfg)

    def stop(self) -> None:
        disconnect(self.client)

    def _on_connect(
        self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any = None
    ) -> None:
        if reason_failed(rc):
            logger.error("broker refused the connection: %s", rc)
            return
        if self.topics:  # none: a session that only publishes (rules in the cluster profile)
            client.subscribe([(t, 1) for t in self.topics])
        for cb in self.on_connected:
            cb(True)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, rcs: Any, _p: Any = None) -> None:
        if any(reason_failed(rc) for rc in rcs):
            logger.error("broker refused a subscription to %s: %s", self.topics, rcs)
            return
        self.subscribed.set()
        logger.info("ready: subscribed to %s", ", ".join(self.topics))

    def _on_disconnect(
        self, _c: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any = None
    ) -> None:
        for cb in self.on_connected:
            cb(False)
        if reason_failed(rc):
            logger.warning("disconnected from broker: %s; paho reconnects", rc)
        else:
            logger.info("disconnected from broker: %s", rc)

    def _on_message(self, client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg)
        except Exception as exc:  # the handler's edge: any failure becomes a dead letter
            self.errors += 1
            logger.exception("handling a message on %.200s failed; dead-lettered", msg.topic)
            try:
                self.dead_letter(msg.topic, msg.payload, "handler_error", str(exc),
                                 type(exc).__name__)
            except Exception:  # not even the dead letter could be kept: leave it to the broker
                logger.exception(
                    "the dead letter for a message on %.200s could not be kept; it stays"
                    " unacknowledged", msg.topic,
                )
                return
        client.ack(msg.mid, msg.qos)
