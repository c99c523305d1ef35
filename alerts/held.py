"""Alert decisions that met no database, kept on the worker's disk until the ledger is back.

In the cluster profile the ledger is PostgreSQL behind Patroni. While there is no primary (a
failover takes about Patroni's ttl; losing both nodes takes as long as the operator), a decision
cannot be recorded. It must not be lost, and it must not become a dead letter that nobody acts on
(issue 17). So the alerts worker writes it to a table of its own local SQLite file (the outbox
file of its dead letters, ``alerts.outbox_path``: WAL, FULL sync, one commit), acknowledges the
broker, and this worker's thread records it once the database answers again, retrying with a
growing delay. A held decision is deleted only after the ledger committed it; the ledger's keys
make a second record of it (another worker held it too, or a crash between the two commits) a
no-op.

Order per alert holds: while anything is held, every new decision is held behind it, so a
``resolved`` never overtakes its own ``firing``. The paho network thread never waits on the
database longer than one attempt, so the broker session keeps its keepalive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from homevitals.infra.outbox import DurableQueue
from homevitals.infra.runtime import LoopThread
from homevitals.infra.subscriber import DeadLetterSink
from homevitals.vocab import wire
from homevitals.vocab.readings import AlertDecision

__all__ = ["HeldDecisions"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
"""
_RETRY_INITIAL, _RETRY_MAX = 0.5, 8.0


class HeldDecisions(LoopThread):
    """``offer(d, topic, payload)``: record a decision now, or hold it; a thread records what
    is held.

    ``record`` is the ledger's idempotent insert (``Escalator.on_decision``); ``on_recorded``
    wakes the sender and the timer after a held decision was recorded; ``dead_letter`` keeps
    one whose recording fails for another reason than an unreachable database (as the
    subscriber's edge does), so that it cannot block the ones behind it forever."""

    def __init__(
        self,
        outbox: DurableQueue,
        record: Callable[[AlertDecision], int],
        on_recorded: Callable[[], None],
        dead_letter: DeadLetterSink,
    ) -> None:
        super().__init__("alerts-held", join_seconds=10)
        self.outbox = outbox
        self.record = record
        self.on_recorded = on_recorded
        self.dead_letter = dead_letter
        outbox.ensure_schema(_SCHEMA)
        # How many are held, kept in memory so that a decision costs no extra SQLite
        # transaction while nothing is held (the embedded profile's ledger shares the file).
        self._lock = threading.Lock()
        with outbox.transaction() as db:
            self._held = int(db.execute("SELECT COUNT(*) FROM held_decisions").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return self._held

    def offer(self, d: AlertDecision, topic: str, payload: bytes | bytearray) -> int:
        """Record ``d`` (the ledger's count of new rows), or hold it on disk and return 0.

        Durable either way when this returns, so the broker may be acknowledged."""
        if self.count() == 0:
            try:
                return self.record(d)
            except OperationalError as exc:
                logger.warning("alert ledger unreachable (%s); decision %s held on disk until"
                               " it is back", exc.orig, d.alert_id)
        else:
            logger.info("decision %s held behind earlier ones waiting for the ledger", d.alert_id)
        with self._lock, self.outbox.transaction() as db:
            db.execute("INSERT INTO held_decisions(alert_id, topic, payload) VALUES (?, ?, ?)",
                       (d.alert_id, topic, bytes(payload)))
            self._held += 1
        self._wake.set()
        return 0

    def _oldest(self) -> tuple[int, str, bytes] | None:
        with self.outbox.transaction() as db:
            row = db.execute(
                "SELECT seq, topic, payload FROM held_decisions ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bytes(row[2]))

    def _forget(self, seq: int) -> None:
        with self._lock, self.outbox.transaction() as db:
            if db.execute("DELETE FROM held_decisions WHERE seq = ?", (seq,)).rowcount:
                self._held -= 1

    def _run(self) -> None:
        delay = _RETRY_INITIAL
        while not self._stop.is_set():
            self.progress.beat(allow=_RETRY_MAX)
            if self._record_oldest():
                delay = _RETRY_INITIAL
                continue
            if self.count() == 0:
                self.progress.idle()
                self._wake.wait()
                self._wake.clear()
            else:  # the ledger is still away
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _record_oldest(self) -> bool:
        """Record the oldest held decision: True when one was recorded and forgotten."""
        oldest = self._oldest()
        if oldest is None:
            return False
        seq, topic, payload = oldest
        try:
            d = wire.decode(payload)  # checked before it was held
            if not isinstance(d, AlertDecision):
                raise TypeError(f"a {type(d).__name__} was held")
            self.record(d)
        except OperationalError as exc:
            logger.warning("alert ledger still unreachable (%s); %d decision(s) held",
                           exc.orig, self.count())
            return False
        except Exception as exc:  # this thread's edge: a kept dead letter, never a stuck queue
            logger.exception("recording held decision %d failed; dead-lettered", seq)
            self.dead_letter(topic, payload, "handler_error", str(exc), type(exc).__name__)
            self._forget(seq)
            return True
        self._forget(seq)
        logger.info("held decision %s recorded now that the ledger is back", d.alert_id)
        self.on_recorded()
        return True
