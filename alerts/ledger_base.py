"""What every part of the alert ledger shares: its one SQLite connection, the lock, the
transaction, and the audit log that each step writes inside its own transaction."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from homevitals.sqlite_tx import immediate

__all__ = ["LedgerBase"]


class LedgerBase:
    _db: sqlite3.Connection
    _lock: threading.RLock
    _randbelow: Callable[[int], int]

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with immediate(self._db, self._lock) as db:
            yield db

    def _log(self, alert_id: str, t: str, entry: str) -> None:
        self._db.execute(
            "INSERT INTO log(time, alert_id, entry) VALUES (?,?,?)", (t, alert_id, entry)
        )
