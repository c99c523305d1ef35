"""Follow-up tasks: every alert of a configured severity (high and critical by default) asks for
a call or a home visit within a time (48 h for high), recorded done with an outcome note.

Tasks are rows keyed by the alert, created from the alert ledger whenever the console looks
(``sync``), with the due time counted from when the alert opened: a console that was down when
an alert fired still creates its task, due when it always was, and a second look never makes a
second task.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from homevitals.console.errors import ConsoleError
from homevitals.console.ports import InboxAlert
from homevitals.vocab.clock import Clock

__all__ = ["FollowUp", "FollowUps"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS followups (
    alert_id TEXT PRIMARY KEY, patient TEXT NOT NULL, severity TEXT NOT NULL,
    reason TEXT NOT NULL, assignee TEXT NOT NULL, created_at TEXT NOT NULL, due_at TEXT NOT NULL,
    done_at TEXT, done_by TEXT, outcome TEXT, escalated_at TEXT
);
CREATE INDEX IF NOT EXISTS followups_due ON followups(done_at, due_at);
"""
_COLS = "alert_id, patient, severity, reason, assignee, due_at, done_at, done_by, outcome"


@dataclass(frozen=True, slots=True)
class FollowUp:
    alert_id: str
    patient: str
    severity: str
    reason: str
    assignee: str
    due_at: datetime
    done_at: str | None
    done_by: str | None
    outcome: str | None

    def overdue(self, now: datetime) -> bool:
        return self.done_at is None and self.due_at < now


def _row(r: tuple[str, ...]) -> FollowUp:
    return FollowUp(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), r[6], r[7], r[8])


class FollowUps:
    def __init__(self, path: str | Path, clock: Clock, hours: dict[str, float]) -> None:
        self.clock = clock
        self.hours = hours
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConsoleError(f"cannot open the console database {path}: {exc}") from exc

    def sync(self, alerts: list[InboxAlert], assignee: dict[str, str],
             cap: dict[str, float] | None = None) -> int:
        """A task for every alert that asks for one; how many are new. ``cap``: patient ->
        hours (by risk tier); a task is due by the lesser of that and its severity's hours."""
        def hours(a: InboxAlert) -> float:
            limit = (cap or {}).get(a.patient, 0.0)
            return min(self.hours[a.severity], limit) if limit > 0 else self.hours[a.severity]

        rows = [
            (a.alert_id, a.patient, a.severity, a.reason, assignee.get(a.patient, ""),
             self.clock.now().isoformat(), (a.opened_at + timedelta(hours=hours(a))).isoformat())
            for a in alerts if a.severity in self.hours]
        with self._lock:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO followups(alert_id, patient, severity, reason, assignee,"
                " created_at, due_at) VALUES (?,?,?,?,?,?,?)", rows)
            return self._db.total_changes - before

    def open(self, patients: set[str]) -> list[FollowUp]:
        """Tasks not yet done for these patients, the soonest due first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM followups WHERE done_at IS NULL ORDER BY due_at").fetchall()
        return [f for f in map(_row, rows) if f.patient in patients]

    def of_patient(self, patient: str) -> list[FollowUp]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM followups WHERE patient=?"
                                    " ORDER BY due_at DESC", (patient,)).fetchall()
        return list(map(_row, rows))

    def overdue(self) -> list[FollowUp]:
        """Tasks past due, not done, whose health manager has not been told yet."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM followups WHERE done_at IS NULL AND escalated_at IS NULL"
                " AND due_at < ? ORDER BY due_at", (self.clock.now().isoformat(),)).fetchall()
        return list(map(_row, rows))

    def escalated(self, alert_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE followups SET escalated_at=? WHERE alert_id=?",
                             (self.clock.now().isoformat(), alert_id))

    def get(self, alert_id: str) -> FollowUp | None:
        with self._lock:
            r = self._db.execute(f"SELECT {_COLS} FROM followups WHERE alert_id=?",
                                 (alert_id,)).fetchone()
        return None if r is None else _row(r)

    def done(self, alert_id: str, by: str, outcome: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE followups SET done_at=?, done_by=?, outcome=? WHERE alert_id=?"
                " AND done_at IS NULL", (self.clock.now().isoformat(), by, outcome, alert_id))
        return bool(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()
