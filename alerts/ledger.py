"""The durable record of alerts and notifications: the outbox and the audit trail in one.

An alert moves firing -> notified -> acknowledged -> resolved; its escalation step and the time
its next step is due live on its row, so a restart picks the chain up where it stopped. Each
notification is a row with a state (pending -> sending -> sent | failed | cancelled) written before
and after the provider is called, unique per (alert, kind, recipient): a redelivered decision or a
timer that fires twice can never create a second SMS. Twilio has no idempotency key for Messages,
so a row found in ``sending`` after a crash is looked up at Twilio before anything is resent
(``alerts/app.py``). Every step is written to ``log`` in the same transaction.

The concerns live in their own modules, joined here into the one ``Ledger`` every caller uses:
alerts (ledger_alerts.py), notifications (ledger_notifications.py), inbound SMS
(ledger_inbound.py), the audit trail (ledger_audit.py), the tables (ledger_rows.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect

from homevitals.alerts.errors import AlertsError
from homevitals.alerts.history import format_history
from homevitals.alerts.ledger_alerts import AlertTable
from homevitals.alerts.ledger_audit import AuditTrail
from homevitals.alerts.ledger_db import LedgerDb, SQLAlchemyError
from homevitals.alerts.ledger_inbound import InboundLog
from homevitals.alerts.ledger_rows import (
    ADDED,
    INDEXES,
    AlertRow,
    Note,
    Notification,
    create_tables,
)

__all__ = ["AlertRow", "Ledger", "LedgerDb", "Note", "Notification", "format_history"]


class Ledger(AlertTable, InboundLog, AuditTrail):
    """``where``: a SQLite file (the embedded default) or a SQLAlchemy URL
    (``postgresql+psycopg://...``, the cluster profile: docs/cluster.md)."""

    def __init__(
        self, where: str | Path, randbelow: Callable[[int], int] | None = None
    ) -> None:
        # Acknowledgement codes must be unguessable in production (secrets); a replay passes a
        # seeded source so that the same scenario gives the same SMS texts.
        self._randbelow = randbelow or secrets.randbelow
        try:
            self._db = LedgerDb(where)  # busy timeout: the CLI writes acks alongside
            self._lock = self._db.lock
            create_tables(self._db.engine)
            self._migrate()
        except SQLAlchemyError as exc:
            raise AlertsError(f"cannot open the alert ledger {where}: {exc}") from exc

    @property
    def db(self) -> LedgerDb:
        """The database, shared with the alarm budget (alerts/budget.py)."""
        return self._db

    def _migrate(self) -> None:
        insp = inspect(self._db.engine)
        with self._tx() as db:
            for table, cols in ADDED.items():
                have = {c["name"] for c in insp.get_columns(table)}
                for name, decl in cols:
                    if name not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
            for sql in INDEXES:
                db.execute(sql)

    def close(self) -> None:
        self._db.close()
