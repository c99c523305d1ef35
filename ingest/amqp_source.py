"""Readings from a RabbitMQ cluster's quorum queue: ingest's source in the cluster profile.

Gateways publish over MQTT to any node; the MQTT plugin routes each message to ``amq.topic``
(``homevitals.infra.amqp``: the mapping, the connection parameters). Every ingest worker of one
InfluxDB replica consumes the same durable quorum queue (competing consumers: each message goes
to one of them), and each replica has a queue of its own, so every replica gets every reading
(docs/cluster.md). A message is acknowledged only after its batch is written; a worker that dies
leaves its unacknowledged messages to the broker, which delivers them to another worker.

Threads: one of ours runs pika's ``BlockingConnection`` (not thread-safe), so the writer's
acknowledgements and dead letters are handed to it with ``add_callback_threadsafe``. The prefetch
is the backlog bound, so ``deliver`` never waits for room inside this thread (the acks it would
wait for run here).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pika

from homevitals.infra.amqp import (
    EXPECTED,
    MAX_PREFETCH,
    Delivered,
    close_quietly,
    connection_params,
    keep_consuming,
    mqtt_filter_to_binding,
    routing_key_to_topic,
)
from homevitals.infra.runtime import Condition, Progress, Worker, thread_worker
from homevitals.ingest.source import Deliver
from homevitals.vocab.config import AmqpSourceConfig

__all__ = ["AmqpSource", "mqtt_filter_to_binding", "routing_key_to_topic"]

logger = logging.getLogger(__name__)

_EXPECTED = EXPECTED


class AmqpSource:
    def __init__(self, cfg: AmqpSourceConfig, bindings: Iterable[str], prefetch: int) -> None:
        self.cfg = cfg
        self.bindings = [mqtt_filter_to_binding(b) for b in bindings]
        self.prefetch = min(prefetch, MAX_PREFETCH)
        self.params = connection_params(cfg, "ingest.amqp.password")
        self.generation = 0
        self.consuming = threading.Event()
        self.progress = Progress()
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._stop = threading.Event()
        self._deliver: Deliver | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-amqp", daemon=True)

    # --- Source -----------------------------------------------------------------------------
    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def ack(self, tags: Iterable[tuple[int, int]]) -> None:
        pending = [tag for tag, generation in tags if generation == self.generation]
        if pending:
            self._call(lambda: self._ack_now(pending, self.generation))

    def publish(self, topic: str, payload: bytes) -> None:
        key = mqtt_filter_to_binding(topic)
        props = pika.BasicProperties(delivery_mode=2)
        self._call(lambda: self._channel.basic_publish(self.cfg.exchange, key, payload, props))

    def workers(self) -> list[Worker]:
        return [thread_worker("ingest-amqp", self._thread, self.progress)]

    def conditions(self) -> list[Condition]:
        return [Condition("amqp", lambda: None if self.consuming.is_set()
                          else "not consuming from the broker")]

    # --- the connection's thread ------------------------------------------------------------
    def _call(self, fn: Callable[[], None]) -> None:
        conn = self._conn
        if conn is None:
            return  # no connection: unacknowledged messages come again after the next connect
        try:
            conn.add_callback_threadsafe(fn)
        except _EXPECTED as exc:
            logger.warning("the broker connection is gone (%s); the broker delivers again", exc)

    def _ack_now(self, tags: list[int], generation: int) -> None:
        if generation != self.generation or self._channel is None:
            return
        for tag in tags:
            self._channel.basic_ack(tag)

    def _run(self) -> None:
        keep_consuming(self._consume, self._lost, self._stop, self.progress, "the AMQP consumer")

    def _lost(self) -> None:
        self.consuming.clear()
        self.generation += 1  # delivery tags of the old channel mean nothing now
        self._channel = None
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def _consume(self) -> None:
        # pika tries each node of the list in turn (connection_attempts per node).
        conn = pika.BlockingConnection(self.params)
        self._conn = conn
        channel = conn.channel()
        channel.basic_qos(prefetch_count=self.prefetch)
        self._declare(channel)
        self._channel = channel
        generation = self.generation
        channel.basic_consume(self.cfg.queue, lambda ch, m, p, body: self._on_message(
            m, body, generation), auto_ack=False)
        self.consuming.set()
        logger.info("consuming %s (one of %s)", self.cfg.queue, ", ".join(
            f"{p.host}:{p.port}" for p in self.params))
        while not self._stop.is_set():
            self.progress.beat()
            conn.process_data_events(time_limit=1.0)

    def _declare(self, channel: Any) -> None:
        """The queue outlives its consumers (durable, replicated): readings published while
        every worker of this replica is down wait in it."""
        channel.queue_declare(self.cfg.queue, durable=True,
                              arguments={"x-queue-type": "quorum"})
        for key in self.bindings:
            channel.queue_bind(self.cfg.queue, self.cfg.exchange, routing_key=key)

    def _on_message(self, method: Any, body: bytes, generation: int) -> None:
        assert self._deliver is not None
        self.progress.beat()
        topic = routing_key_to_topic(method.routing_key)
        self._deliver(Delivered(topic, body), method.delivery_tag, generation)
