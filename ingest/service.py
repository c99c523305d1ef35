"""MQTT -> validate -> batch -> InfluxDB -> acknowledge.

Threads: paho's network thread decodes and validates each message (cheap) and puts it in a
bounded in-memory backlog; one writer thread batches by size and time, writes, and only then
sends the PUBACKs. Both are declared to the runner (``workers``): paho's thread must run and not
be stuck in a message, the writer must go round its loop; readiness (``conditions``) is the
broker session, the subscription and the store accepting the last write.

The backlog can never outgrow what the broker may send unacknowledged (MQTT 5 Receive Maximum,
set to the backlog size), so back-pressure is the broker's queue, never our memory. A database
outage only delays the PUBACKs: nothing is lost, and what the broker re-sends is written again
onto the same points (idempotent).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt

from homevitals.infra.mqtt import (
    PublishError,
    ack_many,
    connect_async,
    disconnect,
    make_client,
    publish,
    reason_failed,
)
from homevitals.infra.mqtt_watch import MqttWatch
from homevitals.infra.runtime import Condition, Progress, Worker, thread_worker
from homevitals.ingest.broker_watch import BrokerWatch
from homevitals.ingest.checks import IngestChecks
from homevitals.ingest.errors import StoreError
from homevitals.ingest.latency import LatencyHistogram
from homevitals.ingest.source import Message, Source
from homevitals.ingest.store import Store
from homevitals.ingest.write_log import WriteTrouble
from homevitals.vocab import wire
from homevitals.vocab.config import Config
from homevitals.vocab.origin import Registry
from homevitals.vocab.readings import AlertDecision, Event, Reading
from homevitals.vocab.topics import Topics

__all__ = ["IngestService"]

logger = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# Statuses that mean "fix the configuration" (credentials, database name), not "bad data".
_CONFIG_STATUSES = (401, 403, 404)


class _Item(NamedTuple):  # a tuple: built once per message on the network thread
    mid: int
    qos: int
    generation: int
    value: Reading | Event | wire.Reject | AlertDecision




class IngestService:
    """``source``: where messages come from when not this service's own MQTT session (the
    cluster profile's broker queues, ingest/source.py); acknowledgements and dead letters then
    go through it too."""

    def __init__(self, cfg: Config, store: Store, source: Source | None = None) -> None:
        self.cfg = cfg
        self.source = source
        self.icfg = cfg.ingest
        self.store = store
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.registry = Registry(cfg.homes)
        # SimpleQueue is C and lock-light; its bound (backlog_max) is kept by _on_message.
        self.backlog: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._room = threading.Event()
        # Received and not yet acknowledged (or given up): the paho thread counts in, the writer
        # counts out; each counter has one writer, so no lock is needed.
        self._taken = 0
        self._released = 0
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.written = 0
        self.write_latency = LatencyHistogram()
        self.retries = 0
        self.trouble = WriteTrouble()
        self._generation = 0
        self._stop = threading.Event()
        self.mqtt = cfg.mqtt_for("ingest")
        self.client = make_client(
            self.mqtt,
            self.icfg.client_id,
            clean_start=False,
            session_expiry=SESSION_EXPIRY_SECONDS,
            manual_ack=True,
            receive_maximum=self.icfg.backlog_max,
            fast_receive=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self.checks = IngestChecks(self.topics, self.registry, self.counts, self.rejects,
                                   self._dead_letter)
        self.broker_watch = BrokerWatch(self.mqtt, self.icfg.client_id)  # $SYS drop counter
        self.watch = MqttWatch(self.mqtt)
        self.writer_progress = Progress()

    @property
    def connected(self) -> bool:
        """Connected, and paho's thread runs and is not held past the keepalive (the watch); with
        another source, that source's own conditions hold (e.g. consuming its queue)."""
        if self.source is not None:
            return all(c.problem() is None for c in self.source.conditions())
        return self.watch.connected

    def workers(self) -> list[Worker]:
        feed = self.source.workers() if self.source else self.watch.workers()
        return [*feed, thread_worker("ingest-writer", self._writer, self.writer_progress)]

    def conditions(self) -> list[Condition]:
        feed = self.source.conditions() if self.source else self.watch.conditions()
        return [*feed, Condition("store", self._store_problem)]

    def _store_problem(self) -> str | None:
        problem = self.trouble.problem  # None while writes work, or none was tried yet
        return None if problem is None else f"the last write failed: {problem}"

    def _subscriptions(self) -> list[str]:
        topics = list(self.topics.ingest_subscriptions)
        group = self.icfg.shared_group
        return [f"$share/{group}/{t}" for t in topics] if group else topics

    def start(self) -> None:
        self._writer.start()
        if self.source is not None:
            self.source.start(self.take)
            return
        self.watch.install(self.client)
        connect_async(self.client, self.mqtt)
        self.broker_watch.start()

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Write and acknowledge what is in memory, then disconnect (SIGTERM path)."""
        deadline = time.monotonic() + drain_seconds
        while not self.backlog.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._writer.join(timeout=drain_seconds)
        if self.source is not None:
            self.source.stop()
            return
        disconnect(self.client)
        self.broker_watch.stop()

    # --- paho thread ------------------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any = None
    ) -> None:
        if reason_failed(rc):
            logger.error("broker refused the connection: %s", rc)
            return
        self._generation += 1
        client.subscribe([(t, 1) for t in self._subscriptions()])
        logger.info("ingest connected to %s:%d", self.cfg.mqtt.host, self.cfg.mqtt.port)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, rcs: Any, _p: Any = None) -> None:
        if any(reason_failed(rc) for rc in rcs):
            logger.error("broker refused a subscription: %s", rcs)
            return
        self.subscribed.set()
        logger.info("ready: subscribed to %s", ", ".join(self._subscriptions()))

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if reason_failed(rc):
            logger.warning("ingest disconnected: %s; paho reconnects", rc)
        else:
            logger.info("ingest disconnected: %s", rc)  # our own disconnect() at shutdown

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self.take(msg, msg.mid, self._generation, msg.qos)

    def take(self, msg: Message, tag: int, generation: int, qos: int = 1) -> None:
        """One message in, from the source's thread (paho's, or a queue consumer's)."""
        self.counts["received"] += 1
        try:
            value = self.checks.validate(msg)
        except Exception as exc:  # the handler's edge: any message ends stored or dead-lettered
            logger.exception("handling a message on %.200s failed; dead-lettered", msg.topic)
            value = self.checks.reject(msg, "handler_error", str(exc), type(exc).__name__)
        if self._taken - self._released >= self.icfg.backlog_max:
            self._wait_for_room()
        self.backlog.put(_Item(tag, qos, generation, value))
        self._taken += 1

    @property
    def held(self) -> int:
        """Messages in memory: received, not yet written and acknowledged."""
        return self._taken - self._released

    def _wait_for_room(self) -> None:
        """The backlog is full. An MQTT 5 broker never gets here (Receive Maximum is the backlog
        size); with MQTT 3.1.1 the network thread waits until the writer has written and
        acknowledged a batch, and the broker holds the rest: back-pressure, never an unbounded
        queue."""
        self.counts["backlog_full"] += 1
        while self.held >= self.icfg.backlog_max and not self._stop.is_set():
            self._room.clear()
            if self.held < self.icfg.backlog_max:
                break
            self._room.wait(0.5)
            # Waiting for the writer on purpose: progress as long as the writer makes it (the
            # writer's own stamp tells whether it does), while the watch sees the thread held.
            self.watch.handler.beat()

    def _dead_letter(self, reason: str, reject: wire.Reject) -> None:
        """Publish a reject on the dead-letter topic; paho refusing it is logged and counted
        (``homevitals_ingest_deadletter_unpublished_total``), the reject is stored either way."""
        if self.source is not None:
            self.source.publish(self.topics.deadletter("ingest", reason), wire.encode(reject))
            return
        try:
            publish(self.client, self.topics.deadletter("ingest", reason), wire.encode(reject),
                    qos=1)
        except PublishError as exc:
            self.counts["deadletter_unpublished"] += 1
            logger.error("dead letter not published: %s", exc)

    # --- writer thread ----------------------------------------------------------------------
    def _next_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        try:
            batch.append(self.backlog.get(timeout=0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.icfg.batch_seconds
        get = self.backlog.get_nowait
        while len(batch) < self.icfg.batch_size:
            try:
                batch.append(get())  # what is already waiting, without a clock read each
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.backlog.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self.backlog.empty()):
            self.writer_progress.beat()
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._write_with_retry(batch)
            except Exception:  # the writer's edge: this thread must outlive any batch
                # Not acknowledged: the broker re-sends these after the next reconnect.
                self.counts["writer_error"] += 1
                logger.exception("writing a batch of %d failed; left unacknowledged", len(batch))
            self._released += len(batch)  # acknowledged, or left for the broker to resend
            self._room.set()

    def _write_with_retry(self, batch: list[_Item]) -> None:
        delay = self.icfg.retry_initial_seconds
        while True:
            self.writer_progress.beat(allow=self.cfg.store.timeout_seconds)
            started = time.perf_counter()
            try:
                self._store_write([i.value for i in batch])
                self.write_latency.observe(time.perf_counter() - started)
            except StoreError as exc:
                if not exc.retryable and exc.status not in _CONFIG_STATUSES:
                    self._refused(batch, exc)
                    return
                # The database is down, slow, or misconfigured (auth, no database): the operator
                # can fix that, so keep the messages unacknowledged and try again, never drop.
                self.retries += 1
                self.trouble.failed(len(batch), exc, delay)
                wait = delay * random.uniform(0.8, 1.2)
                self.writer_progress.beat(allow=wait)
                if self._stop.wait(wait) and not self.connected:
                    return  # shutting down with no broker: the broker keeps them unacknowledged
                delay = min(delay * 2, self.icfg.retry_max_seconds)
                continue
            self.written += len(batch)
            self.trouble.succeeded(len(batch))
            self._ack(batch)
            return

    def _store_write(self, values: list[Reading | Event | wire.Reject | AlertDecision]) -> None:
        """The store's own failures are StoreErrors; anything else it raised came from the data
        (a value no line could hold), so it is refused like a point the database refused."""
        try:
            self.store.write(values)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"{type(exc).__name__}: {exc}", retryable=False, cause_class=type(exc).__name__
            ) from exc

    def _ack(self, batch: list[_Item]) -> None:
        # A mid from an older connection may name another message now: the broker re-sends
        # those anyway, so skipping their PUBACK loses nothing.
        if self.source is not None:
            self.source.ack((i.mid, i.generation) for i in batch)
            return
        generation = self._generation
        ack_many(self.client, ((i.mid, i.qos) for i in batch if i.generation == generation))

    def _refused(self, batch: list[_Item], exc: StoreError) -> None:
        """The database refused the data itself (HTTP 400: type conflict, bad point)."""
        if len(batch) > 1:
            for item in batch:  # one bad point must not hold the others back
                self._write_with_retry([item])
            return
        item = batch[0]
        if isinstance(item.value, wire.Reject) and item.value.get("reason") == "store_rejected":
            # Even the dead letter was refused: the log is all that is left to keep it in.
            logger.error("the rejected point could not be kept either (%s): %s", exc, item.value)
            self._ack(batch)
            return
        self.rejects["store_rejected"] += 1
        logger.error("the database refused a point for good: %s", exc)
        reject = wire.make_reject(
            stage="ingest",
            reason="store_rejected",
            error=str(exc),
            error_class=exc.cause_class,
            topic="",
            payload=_as_bytes(item.value),
            time=datetime.now(UTC),
        )
        self._dead_letter("store_rejected", reject)
        self._write_with_retry([item._replace(value=reject)])  # acknowledges the message


def _as_bytes(value: Reading | Event | wire.Reject | AlertDecision) -> bytes:
    try:
        return wire.encode(value)
    except (TypeError, ValueError) as exc:  # kept as text if it will not encode
        return repr(value).encode("utf-8", "backslashreplace") + f" ({exc})".encode()
