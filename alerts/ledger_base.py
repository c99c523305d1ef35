"""What every part of the alert ledger shares: its database (``alerts/ledger_db.py``), the
transaction, and the audit log that each step writes inside its own transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from homevitals.alerts.ledger_db import LedgerDb

__all__ = ["LedgerBase"]


class LedgerBase:
    _db: LedgerDb
    _lock: threading.RLock
    _randbelow: Callable[[int], int]

    @contextmanager
    def _tx(self) -> Iterator[LedgerDb]:
        with self._db.tx() as db:
            yield db

    def _log(self, alert_id: str, t: str, entry: str) -> None:
        self._db.execute(
            "INSERT INTO log(time, alert_id, entry) VALUES (?,?,?)", (t, alert_id, entry)
        )
