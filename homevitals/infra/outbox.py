"""A durable MQTT outbox: every message is on disk before it is published.

Used by the gateway on the Pi (every reading) and by the rule engine (every alert decision, in the
same SQLite transaction as the rule state that produced it).

SQLite in WAL mode with ``synchronous=FULL``, so a committed message survives ``kill -9`` and
power loss. A row is deleted only when the broker has acknowledged it (QoS 1 PUBACK). Rows are
replayed in insertion order. The size is bounded: at the bound the oldest rows are dropped, and
each drop is logged and counted (a full queue means the home has been offline for a long time and
the newest readings matter most to the people watching).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Protocol

from homevitals.infra.mqtt import PublishError, publish
from homevitals.infra.runtime import Progress, Worker, thread_worker
from homevitals.infra.sqlite_tx import immediate, open_wal
from homevitals.vocab.errors import HomevitalsError

__all__ = ["DurableQueue", "MessageQueue", "OutboxError", "OutboxPump", "QueuedMessage"]

logger = logging.getLogger(__name__)


class OutboxError(HomevitalsError):
    """The outbox database cannot be opened or written."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL DEFAULT 1,
    retain INTEGER NOT NULL DEFAULT 0,
    message_id TEXT
);
CREATE TABLE IF NOT EXISTS parked (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class MessageQueue(Protocol):
    """What the pump and the dead letters need of a queue: this module's ``DurableQueue``, or
    the rules' store on SQLAlchemy (``rules/store.py``)."""

    def put(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
            message_id: str | None = None) -> int: ...

    def peek(self, limit: int, after: int = 0) -> list[QueuedMessage]: ...

    def ack(self, seq: int) -> None: ...

    def park(self, seq: int, reason: str) -> None: ...

    def __len__(self) -> int: ...


class DurableQueue:
    def __init__(self, path: str | Path, max_messages: int = 1_000_000) -> None:
        self._lock = threading.Lock()
        self.max_messages = max_messages
        self.dropped = 0
        try:
            self._db = open_wal(path)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the gateway queue {path}: {exc}") from exc
        self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def ensure_schema(self, sql: str) -> None:
        """Create a caller's own tables in the same database, for ``transaction()``."""
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction for the caller's own tables and ``put_in``; nothing else runs."""
        with immediate(self._db, self._lock, on_rollback=self._recount) as db:
            yield db

    def put_in(self, db: sqlite3.Connection, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """``put`` inside a ``transaction()`` (the lock is already held)."""
        db.execute(
            "INSERT INTO outbox(topic, payload, qos, retain) VALUES (?,?,?,0)",
            (topic, payload, qos),
        )
        self._count += 1

    def _recount(self) -> None:
        self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        message_id: str | None = None,
    ) -> int:
        with self._lock:
            if self._count >= self.max_messages:
                self._drop_oldest(self._count - self.max_messages + 1)
            cur = self._db.execute(
                "INSERT INTO outbox(topic, payload, qos, retain, message_id) VALUES (?,?,?,?,?)",
                (topic, payload, qos, int(retain), message_id),
            )
            self._count += 1
            return int(cur.lastrowid or 0)

    def _drop_oldest(self, n: int) -> None:
        self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (n,)
        )
        self._count -= n
        self.dropped += n
        logger.error(
            "gateway queue full (%d messages): dropped the %d oldest; %d dropped since start",
            self.max_messages,
            n,
            self.dropped,
        )

    def peek(self, limit: int, after: int = 0) -> list[QueuedMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [QueuedMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._count -= cur.rowcount

    def park(self, seq: int, reason: str) -> None:
        """Move a message the broker refused out of the way, keeping it on disk."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO parked(seq, topic, payload, reason) "
                "SELECT seq, topic, payload, ? FROM outbox WHERE seq = ?",
                (reason, seq),
            )
            cur = db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._count -= cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def get_state(self, key: str) -> str | None:
        """Small durable key/value state (e.g. a glucose meter's last sequence number)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class OutboxPump:
    """Hands outbox rows to a paho client, at most ``max_inflight`` at a time, in order.

    paho-mqtt 2.x stalls at QoS 1 when more than 65 535 publishes wait for acknowledgement
    (16-bit message ids wrap, MQTT 5 section 2.2.1), hence the bound. paho re-sends
    unacknowledged QoS 1 messages itself after a reconnect; a row is deleted only on its PUBACK,
    so a crash at any moment re-sends it on the next start. A message the broker refuses (MQTT 5
    reason code, e.g. 0x87 not authorized) is parked on disk rather than re-sent forever.

    Concurrency: paho calls ``on_publish`` while holding its own ``_out_message_mutex``, and
    ``client.publish`` takes that same mutex; so ``on_publish`` only hands the acknowledgement over
    on a lock-free queue, and the pump thread alone owns the mid -> row map (taking no lock of
    ours around ``publish``, which would invert the lock order and deadlock). The pump records a
    mid right after ``publish`` returns and reads acknowledgements only after that, so an early
    PUBACK is never missed.
    """

    def __init__(
        self, client: Any, queue: MessageQueue, max_inflight: int = 100, name: str = "outbox"
    ) -> None:
        self.client = client
        self.queue = queue
        self.max_inflight = max_inflight
        self.published = 0
        self.acked = 0
        self.rejected = 0
        self.refused = 0  # publishes paho would not take (retried on a later round)
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acks: SimpleQueue[tuple[int, object]] = SimpleQueue()
        self._inflight: dict[int, int] = {}  # paho mid -> queue seq; pump thread only
        self._last_seq = 0
        self._thread = threading.Thread(target=self._run, name=f"pump-{name}", daemon=True)
        self.name = name
        self.progress = Progress()

    def worker(self) -> Worker:
        """The pump thread for the runner: it must run and go round its loop (at least every
        second; a ``publish`` that blocks shows as a stall)."""
        return thread_worker(f"pump-{self.name}", self._thread, self.progress)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def set_connected(self, connected: bool) -> None:
        if connected:
            self.connected.set()
            self._wake.set()
        else:
            self.connected.clear()

    def drain(self, seconds: float) -> bool:
        """Wait until the queue is empty (True) or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while len(self.queue) and time.monotonic() < deadline:
            self._wake.set()
            self._stop.wait(0.02)
        return len(self.queue) == 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def on_publish(self, mid: int, reason_code: object) -> None:
        """Call from the client's on_publish (paho's thread, under paho's lock): never blocks."""
        self._acks.put((mid, reason_code))
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def alive(self) -> bool:
        """The pump thread runs (liveness): without it nothing leaves the queue."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.progress.beat()
            self._wake.wait(1.0)
            self._wake.clear()
            self._take_acks()
            if self.connected.is_set():
                self._fill()
                self._take_acks()

    def _take_acks(self) -> None:
        while True:
            try:
                mid, reason_code = self._acks.get_nowait()
            except Empty:
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue  # a message published elsewhere on this client (status, heartbeat)
            failure = getattr(reason_code, "is_failure", None)
            if failure if failure is not None else bool(reason_code):
                logger.error("broker refused queued message %d: %s; parked", seq, reason_code)
                self.queue.park(seq, str(reason_code))
                self.rejected += 1
            else:
                self.queue.ack(seq)
                self.acked += 1

    def _fill(self) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for msg in self.queue.peek(room, after=self._last_seq):
            # Each row is handed to paho once per process; paho re-sends it after a reconnect
            # until the PUBACK comes.
            try:
                info = publish(self.client, msg.topic, msg.payload, qos=msg.qos,
                               retain=msg.retain)
            except PublishError as exc:  # e.g. paho's queue is full: the row waits for a turn
                self.refused += 1
                logger.warning("queued message %d not taken, retried later: %s", msg.seq, exc)
                return
            self._inflight[info.mid] = msg.seq
            self._last_seq = msg.seq
            self.published += 1
