"""Publishes the gateway's durable queue to the broker (QoS 1), with retained status and a will.

The boundary between the BLE side (asyncio) and the MQTT side (paho's thread and the outbox pump)
is the durable queue itself: nothing else is shared.
"""

from __future__ import annotations

import logging
import time

import paho.mqtt.client as mqtt

from homevitals.infra.mqtt import (
    PublishError,
    connect_async,
    disconnect,
    make_client,
    publish,
    reason_failed,
)
from homevitals.infra.mqtt_watch import MqttWatch
from homevitals.infra.outbox import DurableQueue, OutboxPump
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import MqttConfig
from homevitals.vocab.readings import GatewayState, GatewayStatus
from homevitals.vocab.topics import Topics

__all__ = ["Publisher"]

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        cfg: MqttConfig,
        queue: DurableQueue,
        topics: Topics,
        home: str,
        clock: Clock,
        *,
        client_id: str | None = None,
        max_inflight: int = 100,
        retained_on_connect: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.queue = queue
        self.topics = topics
        self.home = home
        self.clock = clock
        # e.g. Home Assistant discovery configs: re-published on every connect, as HA asks
        # (a broker restarted without persistence has lost them).
        self.retained_on_connect = retained_on_connect or []
        self.client = make_client(cfg, client_id or f"homevitals-gw-{home}")
        offline = GatewayStatus(home, GatewayState.OFFLINE)
        self.client.will_set(topics.status(home), wire.encode(offline), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.pump = OutboxPump(self.client, queue, max_inflight, name=f"gw-{home}")
        self._killed = False
        self.watch = MqttWatch(cfg)
        self.unpublished = 0  # status and heartbeat messages paho would not take

    def start(self) -> None:
        self.watch.install(self.client)
        connect_async(self.client, self.cfg)
        self.pump.start()

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Flush what can be flushed, announce offline, disconnect. Unsent rows stay on disk.

        A short-lived run (a finished simulation) may stop before the first connection is up:
        the flush time also covers waiting for it. Does nothing after ``kill``."""
        if self._killed:
            return
        deadline = time.monotonic() + flush_seconds
        if self.pump.connected.wait(flush_seconds):
            self.pump.drain(max(0.0, deadline - time.monotonic()))
        self.pump.stop()
        if self.pump.connected.is_set():
            status = GatewayStatus(self.home, GatewayState.OFFLINE, self.clock.now())
            try:
                info = publish(self.client, self.topics.status(self.home), wire.encode(status),
                               qos=1, retain=True)
                info.wait_for_publish(timeout=2)
            except (PublishError, RuntimeError) as exc:  # RuntimeError: paho, connection lost
                self.unpublished += 1
                logger.warning("the offline status was not published: %s", exc)
        disconnect(self.client)

    def kill(self) -> None:
        """Stop as ``kill -9`` would: no flush, no ``offline`` status, no DISCONNECT. The broker
        sees the connection drop and publishes the last will; every row not yet acknowledged
        stays on disk for the next start. Fault injection (``homevitals replay``)."""
        self._killed = True
        self.pump.stop()
        disconnect(self.client, clean=False)
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def notify(self) -> None:
        self.pump.notify()

    def _on_connect(
        self, client: mqtt.Client, _ud: object, _flags: object, rc: object, _props: object = None
    ) -> None:
        if reason_failed(rc):
            logger.error("broker refused the connection: %s", rc)
            return
        logger.info("connected to %s:%d", self.client.host, self.client.port)
        status = GatewayStatus(self.home, GatewayState.ONLINE, self.clock.now())
        retained = [(self.topics.status(self.home), wire.encode(status)),
                    *self.retained_on_connect]
        for topic, payload in retained:
            self._publish_or_count(topic, payload, qos=1, retain=True)
        self.pump.set_connected(True)

    def _on_disconnect(
        self, _c: mqtt.Client, _ud: object, _flags: object, rc: object, _props: object = None
    ) -> None:
        self.pump.set_connected(False)
        # A lost connection is worth a warning; our own disconnect() at shutdown is not.
        level = logging.WARNING if reason_failed(rc) else logging.INFO
        logger.log(
            level, "disconnected from broker (%s); %d messages wait on disk", rc, len(self.queue)
        )

    def _on_publish(
        self, _c: mqtt.Client, _ud: object, mid: int, rc: object, _props: object = None
    ) -> None:
        self.pump.on_publish(mid, rc)

    def publish_direct(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Fire-and-forget for heartbeats: losing one is harmless (logged, counted), the next one
        follows."""
        self._publish_or_count(topic, payload, qos=qos)

    def _publish_or_count(self, topic: str, payload: bytes, *, qos: int, retain: bool = False
                          ) -> None:
        try:
            publish(self.client, topic, payload, qos=qos, retain=retain)
        except PublishError as exc:
            self.unpublished += 1
            logger.warning("%s", exc)

    @property
    def published(self) -> int:
        return self.pump.published

    @property
    def acked(self) -> int:
        return self.pump.acked

    @property
    def inflight(self) -> int:
        return self.pump.inflight

    @property
    def connected(self) -> bool:
        return self.pump.connected.is_set()

    @property
    def alive(self) -> bool:
        return self.pump.alive
