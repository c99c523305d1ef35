"""The durable record of alerts and notifications: the outbox and the audit trail in one.

Each notification is a row with a state (pending -> sending -> sent | failed) written before and
after the provider is called. A row is unique per (alert, kind, recipient), so a redelivered
decision can never create a second SMS. Twilio has no idempotency key for Messages: a row found in
``sending`` at start-up was interrupted mid-call, and is resent only after a warning (at-least-once
for a life-safety message is the lesser evil; the window is the duration of one HTTP request).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from homevitals import wire
from homevitals.alerts.errors import AlertsError
from homevitals.readings import AlertDecision

__all__ = ["Ledger", "Notification", "format_history"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    home TEXT NOT NULL, patient TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
    state TEXT NOT NULL, opened_at TEXT NOT NULL, resolved_at TEXT, decision TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, kind TEXT NOT NULL,
    recipient TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL, body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL, created_at TEXT NOT NULL, sent_at TEXT, sid TEXT, error TEXT,
    UNIQUE (alert_id, kind, recipient)
);
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL, alert_id TEXT NOT NULL, entry TEXT NOT NULL
);
"""


_SELECT = "SELECT id, alert_id, kind, recipient, name, role, body, attempts FROM notifications"


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    alert_id: str
    kind: str
    recipient: str
    name: str
    role: str
    body: str
    attempts: int


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AlertsError(f"cannot open the alert ledger {path}: {exc}") from exc

    def record(
        self, d: AlertDecision, notes: list[tuple[str, str, str, str]], now: datetime
    ) -> int:
        """Store a decision and its notifications (recipient, name, role, body) atomically.

        Returns how many notifications are new (0 for a redelivered decision)."""
        t = wire.format_time(now)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        d.alert_id,
                        d.home,
                        d.patient,
                        d.rule,
                        str(d.severity),
                        str(d.state),
                        t,
                        None,
                        wire.encode(d).decode(),
                    ),
                )
                if d.state == "resolved":
                    self._db.execute(
                        "UPDATE alerts SET state='resolved', resolved_at=?"
                        " WHERE alert_id=? AND resolved_at IS NULL",
                        (t, d.alert_id),
                    )
                new = 0
                for recipient, name, role, body in notes:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO notifications(alert_id, kind, recipient, name,"
                        " role, body, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?)",
                        (d.alert_id, str(d.state), recipient, name, role, body, t, t),
                    )
                    new += cur.rowcount
                if new:
                    self._log(
                        d.alert_id,
                        t,
                        f"{d.state}: {d.rule} {d.severity} for {d.patient}: {d.reason}",
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def _log(self, alert_id: str, t: str, entry: str) -> None:
        self._db.execute(
            "INSERT INTO log(time, alert_id, entry) VALUES (?,?,?)", (t, alert_id, entry)
        )

    def due(self, now: datetime, limit: int = 20) -> list[Notification]:
        with self._lock:
            rows = self._db.execute(
                _SELECT + " WHERE state IN ('pending','sending') AND next_attempt_at <= ?"
                " ORDER BY id LIMIT ?",
                (wire.format_time(now), limit),
            ).fetchall()
        return [Notification(*r) for r in rows]

    def interrupted(self) -> list[Notification]:
        with self._lock:
            rows = self._db.execute(
                _SELECT + " WHERE state = 'sending'"
            ).fetchall()
        return [Notification(*r) for r in rows]

    def mark_sending(self, n: Notification, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='sending', attempts=attempts+1 WHERE id=?",
            (n.id,),
            None,
        )

    def mark_sent(self, n: Notification, sid: str, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='sent', sid=?, sent_at=? WHERE id=?",
            (sid, wire.format_time(now), n.id),
            f"SMS to {n.name} ({n.role}, {n.recipient}) sent, sid {sid}",
        )

    def mark_retry(self, n: Notification, at: datetime, error: str, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='pending', next_attempt_at=?, error=? WHERE id=?",
            (wire.format_time(at), error, n.id),
            f"SMS to {n.recipient} will be retried: {error}",
        )

    def mark_failed(self, n: Notification, error: str, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='failed', error=? WHERE id=?",
            (error, n.id),
            f"SMS to {n.name} ({n.role}, {n.recipient}) failed: {error}",
        )

    def _set(
        self, n: Notification, now: datetime, sql: str, args: tuple[object, ...], entry: str | None
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(sql, args)
            if entry:
                self._log(n.alert_id, wire.format_time(now), entry)
            self._db.execute("COMMIT")

    def history(self, patient: str | None = None) -> list[dict[str, object]]:
        """The audit trail: every alert with who was told what, when."""
        q = (
            "SELECT a.alert_id, a.patient, a.rule, a.severity, a.state, a.opened_at, a.resolved_at,"
            " n.kind, n.name, n.role, n.recipient, n.state, n.sent_at, n.sid, n.body, n.error"
            " FROM alerts a LEFT JOIN notifications n ON n.alert_id = a.alert_id"
        )
        args: tuple[object, ...] = ()
        if patient:
            q += " WHERE a.patient = ?"
            args = (patient,)
        q += " ORDER BY a.opened_at, n.id"
        cols = [
            "alert_id",
            "patient",
            "rule",
            "severity",
            "alert_state",
            "opened_at",
            "resolved_at",
            "kind",
            "name",
            "role",
            "recipient",
            "sms_state",
            "sent_at",
            "sid",
            "body",
            "error",
        ]
        with self._lock:
            return [dict(zip(cols, r, strict=True)) for r in self._db.execute(q, args).fetchall()]

    def pending_count(self) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM notifications WHERE state IN ('pending','sending')"
                ).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def format_history(rows: list[dict[str, object]]) -> str:
    """The audit trail as text: one block per alert, one line per message sent about it."""
    lines: list[str] = []
    current = None
    for h in rows:
        if h["alert_id"] != current:
            current = h["alert_id"]
            resolved = f", resolved {h['resolved_at']}" if h["resolved_at"] else ""
            lines.append(
                f"alert {str(h['alert_id'])[:8]}  {h['patient']}  {h['rule']}  {h['severity']}"
                f"  opened {h['opened_at']}{resolved}"
            )
        if h["kind"] is None:
            continue
        lines.append(
            f"  {h['kind']:<8}  {h['sms_state']:<7}  {h['sent_at'] or '-':<27}  to {h['name']}"
            f" ({h['role']}, {h['recipient']})  sid {h['sid'] or '-'}"
        )
        lines.append(f"            {h['body']}")
        if h["error"]:
            lines.append(f"            error: {h['error']}")
    return "\n".join(lines) if lines else "no alerts"
