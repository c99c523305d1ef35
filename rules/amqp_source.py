"""The rules' messages from a RabbitMQ cluster: workers own patients, not messages
(docs/cluster.md "Rules ownership").

The topology, declared by every worker at connect (the same each time, so declaring is
idempotent):

- ``<queue>`` (default ``homevitals.rules.in``): a quorum queue bound to ``amq.topic`` for the
  rules' topics, with ``x-single-active-consumer``.
- the **partitioner**: every worker consumes ``<queue>``, the broker delivers it to one (single
  active consumer), which republishes each message to the consistent-hash exchange
  ``<partition_exchange>`` with the *home* as routing key and the topic in a header, waits for
  the publisher confirm, and only then acknowledges the input. The consistent-hash exchange
  hashes the whole routing key, and the MQTT plugin's key carries the device too; keyed by the
  home alone, every device of a patient lands in one partition. One partitioner at a time,
  handling one message after the other, keeps each home's order.
- ``partitions`` quorum queues ``<partition_exchange>.p<i>``, each bound with weight 1 and
  ``x-single-active-consumer``: every worker consumes every partition, the broker delivers each
  partition to one of them, and promotes another when that one's connection goes.

Each worker's pump publishes only the decisions it wrote (``rules/store.py``: outbox rows name
their worker), so no worker needs to lead.

A partition's message is acknowledged only after ``handle`` returned, i.e. after the engine's
transaction committed. The first message of a home that a worker gets calls ``take_over`` with
the home first (its patients' state must be there before their first message); when the
connection goes, ``give_up`` gets every home it had (the broker hands their partitions on).
``take_over`` also adopts the home's decisions a dead owner left unpublished, so they wait for the
home's next message (AMQP 0-9-1 does not tell a consumer that it became the active one). The
handler's edge is the Subscriber's: a failure becomes a dead letter, then the message is
acknowledged.

Threads: one of ours runs pika's ``BlockingConnection`` and everything on it (pika's blocking
adapter is not thread-safe); the engine runs inside its callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from homevitals.infra.amqp import (
    Delivered,
    close_quietly,
    connection_params,
    keep_consuming,
    mqtt_filter_to_binding,
    routing_key_to_topic,
)
from homevitals.infra.runtime import Condition, Progress, Worker, thread_worker
from homevitals.infra.subscriber import DeadLetterSink
from homevitals.rules.config import RulesAmqpConfig
from homevitals.vocab.topics import Topics

__all__ = ["RulesAmqpSource"]

logger = logging.getLogger(__name__)

_QUORUM_SAC = {"x-queue-type": "quorum", "x-single-active-consumer": True}
# One unacknowledged message per consumer: when a consumer's connection goes, a quorum queue
# (RabbitMQ 3.10) gives its unacknowledged messages back, but not always in their order
# (rabbitmq-server#6804; seen here with a backlog of 100: a home's reading overtook the one
# before it). With one, there is nothing to reorder. It costs a round trip per message.
_PREFETCH = 1
_TOPIC_HEADER = "topic"


class RulesAmqpSource:
    def __init__(self, cfg: RulesAmqpConfig, topics: Topics, handle: Callable[[Delivered], None],
                 dead_letter: DeadLetterSink, take_over: Callable[[str], None],
                 give_up: Callable[[set[str]], None]) -> None:
        self.cfg = cfg
        self.topics = topics
        self.bindings = [mqtt_filter_to_binding(b) for b in topics.rules_subscriptions]
        self.params = connection_params(cfg, "rules.amqp.password")
        self.handle, self.dead_letter = handle, dead_letter
        self.take_over, self.give_up = take_over, give_up
        self.owned: set[int] = set()  # partitions this worker has had a message from
        self.homes: set[str] = set()  # homes this worker has taken over (a partition's key)
        self.consuming = threading.Event()
        self.progress = Progress()
        self.counts = {"partitioned": 0, "handled": 0, "takeovers": 0, "errors": 0}
        self._conn: pika.BlockingConnection | None = None
        self._publish_channel: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-amqp", daemon=True)

    def partition_queue(self, i: int) -> str:
        return f"{self.cfg.partition_exchange}.p{i}"

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def workers(self) -> list[Worker]:
        return [thread_worker("rules-amqp", self._thread, self.progress)]

    def conditions(self) -> list[Condition]:
        return [Condition("amqp", lambda: None if self.consuming.is_set()
                          else "not consuming from the broker")]

    def _run(self) -> None:
        keep_consuming(self._consume, self._lost, self._stop, self.progress, "the rules worker")

    def _lost(self) -> None:
        """Everything held on the connection is gone with it: the partitions (the broker gives
        them to another worker) and the unacknowledged messages."""
        self.consuming.clear()
        if self.owned:
            logger.warning("partitions %s are no longer ours", sorted(self.owned))
            self.give_up(set(self.homes))
        self.owned.clear()
        self.homes.clear()
        self._publish_channel = None
        conn, self._conn = self._conn, None
        close_quietly(conn)

    # --- the connection -----------------------------------------------------------------------
    def _consume(self) -> None:
        conn = pika.BlockingConnection(self.params)  # pika tries each node of the list in turn
        self._conn = conn
        channel = conn.channel()
        self._declare(channel)
        channel.basic_qos(prefetch_count=_PREFETCH)  # per consumer: each partition
        for i in range(self.cfg.partitions):
            channel.basic_consume(self.partition_queue(i), self._partition_callback(i),
                                  auto_ack=False)
        self._publish_channel = conn.channel()
        self._publish_channel.confirm_delivery()
        source = conn.channel()
        source.basic_qos(prefetch_count=_PREFETCH)
        source.basic_consume(self.cfg.queue, self._partition_one, auto_ack=False)
        self.consuming.set()
        logger.info("consuming %s and %d partitions of %s", self.cfg.queue, self.cfg.partitions,
                    self.cfg.partition_exchange)
        while not self._stop.is_set():
            self.progress.beat()
            conn.process_data_events(time_limit=1.0)

    def _declare(self, channel: Any) -> None:
        """Durable, replicated queues that outlive every worker: what arrives while no worker
        runs waits in them."""
        channel.queue_declare(self.cfg.queue, durable=True, arguments=_QUORUM_SAC)
        for key in self.bindings:
            channel.queue_bind(self.cfg.queue, self.cfg.exchange, routing_key=key)
        channel.exchange_declare(self.cfg.partition_exchange, "x-consistent-hash", durable=True)
        for i in range(self.cfg.partitions):
            channel.queue_declare(self.partition_queue(i), durable=True, arguments=_QUORUM_SAC)
            # rabbitmq_consistent_hash_exchange: the binding key is the partition's weight.
            channel.queue_bind(self.partition_queue(i), self.cfg.partition_exchange,
                               routing_key="1")

    # --- the partitioner ----------------------------------------------------------------------
    def _partition_one(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        self.progress.beat()
        if not self.counts["partitioned"]:
            logger.info("partitioning %s by home", self.cfg.queue)
        topic = routing_key_to_topic(method.routing_key)
        parsed = self.topics.parse(topic)
        key = parsed.home if parsed is not None and parsed.home else topic
        props = pika.BasicProperties(delivery_mode=2, headers={_TOPIC_HEADER: topic})
        # With confirms on, this returns once the partition's queue has the message on a
        # majority of its replicas; a nack or a return raises (the connection is restarted and
        # the input, not acknowledged, comes again).
        self._publish_channel.basic_publish(self.cfg.partition_exchange, key, body, props,
                                            mandatory=True)
        channel.basic_ack(method.delivery_tag)
        self.counts["partitioned"] += 1

    # --- the partitions -----------------------------------------------------------------------
    def _partition_callback(self, i: int) -> Callable[[Any, Any, Any, bytes], None]:
        return lambda ch, method, props, body: self._on_partition(i, ch, method, props, body)

    def _on_partition(self, i: int, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.progress.beat()
        if i not in self.owned:
            logger.info("partition %d: taking over", i)
            self.owned.add(i)
            self.counts["takeovers"] += 1
        home = method.routing_key  # the partitioner's key
        if home not in self.homes:
            self.take_over(home)  # its patients' state before their first message
            self.homes.add(home)
        headers = props.headers or {}
        topic = headers.get(_TOPIC_HEADER) or routing_key_to_topic(method.routing_key)
        if self._handled(str(topic), body):
            channel.basic_ack(method.delivery_tag)

    def _handled(self, topic: str, body: bytes) -> bool:
        """The handler's edge (as ``Subscriber``): a failure is dead-lettered, then acknowledged;
        only a dead letter that cannot be kept leaves the message to the broker."""
        try:
            self.handle(Delivered(topic, body))
            self.counts["handled"] += 1
            return True
        except Exception as exc:  # the handler's edge: any failure becomes a dead letter
            self.counts["errors"] += 1
            logger.exception("handling a message on %.200s failed; dead-lettered", topic)
            try:
                self.dead_letter(topic, body, "handler_error", str(exc), type(exc).__name__)
            except Exception:  # not even the dead letter could be kept: leave it to the broker
                logger.exception("the dead letter for %.200s could not be kept; it stays"
                                 " unacknowledged", topic)
                return False
        return True

