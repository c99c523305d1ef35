"""The durable record of alerts and notifications: the outbox and the audit trail in one.

An alert moves firing -> notified -> acknowledged -> resolved; its escalation step and the time
its next step is due live on its row, so a restart picks the chain up where it stopped. Each
notification is a row with a state (pending -> sending -> sent | failed | cancelled) written before
and after the provider is called, unique per (alert, kind, recipient): a redelivered decision or a
timer that fires twice can never create a second SMS. Twilio has no idempotency key for Messages,
so a row found in ``sending`` after a crash is looked up at Twilio before anything is resent
(``alerts/main.py``). Every step is written to ``log`` in the same transaction.

The concerns live in their own modules, joined here into the one ``Ledger`` every caller uses:
alerts (ledger_alerts.py), notifications (ledger_notifications.py), inbound SMS
(ledger_inbound.py), the audit trail (ledger_audit.py), the tables (ledger_rows.py).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from homevitals.alerts.errors import AlertsError
from homevitals.alerts.history import format_history
from homevitals.alerts.ledger_alerts import AlertTable
from homevitals.alerts.ledger_audit import AuditTrail
from homevitals.alerts.ledger_inbound import InboundLog
from homevitals.alerts.ledger_rows import ADDED, INDEXES, SCHEMA, AlertRow, Note, Notification
from homevitals.sqlite_tx import open_wal

__all__ = ["AlertRow", "Ledger", "Note", "Notification", "format_history"]


class Ledger(AlertTable, InboundLog, AuditTrail):
    def __init__(self, path: str | Path, randbelow: Callable[[int], int] | None = None) -> None:
        # Acknowledgement codes must be unguessable in production (secrets); a replay passes a
        # seeded source so that the same scenario gives the same SMS texts.
        self._randbelow = randbelow or secrets.randbelow
        self._lock = threading.RLock()
        try:
            self._db = open_wal(path, busy_timeout_ms=10000)  # the CLI writes acks alongside
            self._db.executescript(SCHEMA)
            self._migrate()
            self._db.executescript(INDEXES)
        except sqlite3.Error as exc:
            raise AlertsError(f"cannot open the alert ledger {path}: {exc}") from exc

    def _migrate(self) -> None:
        for table, cols in ADDED.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in cols:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
