"""The durable record of alerts and notifications: the outbox and the audit trail in one.

An alert moves firing -> notified -> acknowledged -> resolved; its escalation step and the time
its next step is due live on its row, so a restart picks the chain up where it stopped. Each
notification is a row with a state (pending -> sending -> sent | failed | cancelled) written before
and after the provider is called, unique per (alert, kind, recipient): a redelivered decision or a
timer that fires twice can never create a second SMS. Twilio has no idempotency key for Messages,
so a row found in ``sending`` after a crash is looked up at Twilio before anything is resent
(``alerts/main.py``). Every step is written to ``log`` in the same transaction.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from homevitals import wire
from homevitals.alerts.errors import AlertsError
from homevitals.alerts.history import HISTORY_SQL, format_history
from homevitals.readings import SEVERITY_RANK, AlertDecision, AlertState, Severity

__all__ = ["AlertRow", "Ledger", "Note", "Notification", "format_history"]

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
CREATE TABLE IF NOT EXISTS inbound (
    message_sid TEXT PRIMARY KEY, time TEXT NOT NULL, sender TEXT NOT NULL, body TEXT NOT NULL,
    outcome TEXT
);
"""
# Columns added by issue 6; ALTERed into a ledger written by an older version.
_ADDED = {
    "alerts": [
        ("ack_code", "TEXT"),
        ("acked_at", "TEXT"),
        ("acked_by", "TEXT"),
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("reminders", "INTEGER NOT NULL DEFAULT 0"),
        ("next_step_at", "TEXT"),
    ],
    "notifications": [
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("sending_at", "TEXT"),
        ("delivery", "TEXT"),
    ],
}
_INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_due ON alerts(next_step_at);
CREATE INDEX IF NOT EXISTS notifications_sid ON notifications(sid);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_attempt_at);
"""

_NCOLS = "id, alert_id, kind, recipient, name, role, body, attempts, step, sending_at"
_ACOLS = (
    "alert_id, home, patient, rule, severity, state, opened_at, ack_code, acked_at, acked_by,"
    " step, reminders, next_step_at, decision"
)
_LIVE_KINDS = "kind NOT IN ('resolved', 'acknowledged')"


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
    step: int = 0
    sending_at: str | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """A notification to create: who, what, and not before when (quiet hours)."""

    recipient: str
    name: str
    role: str
    body: str
    kind: str
    step: int
    not_before: datetime


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    home: str
    patient: str
    rule: str
    severity: str
    state: str
    opened_at: str
    ack_code: str | None
    acked_at: str | None
    acked_by: str | None
    step: int
    reminders: int
    next_step_at: str | None
    decision: str

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"

    def decoded(self) -> AlertDecision:
        d = wire.decode(self.decision.encode())
        assert isinstance(d, AlertDecision)
        return d


class Ledger:
    def __init__(self, path: str | Path, randbelow: Callable[[int], int] | None = None) -> None:
        # Acknowledgement codes must be unguessable in production (secrets); a replay passes a
        # seeded source so that the same scenario gives the same SMS texts.
        self._randbelow = randbelow or secrets.randbelow
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")  # the CLI writes acks alongside
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._db.executescript(_INDEXES)
        except sqlite3.Error as exc:
            raise AlertsError(f"cannot open the alert ledger {path}: {exc}") from exc

    def _migrate(self) -> None:
        for table, cols in _ADDED.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in cols:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _log(self, alert_id: str, t: str, entry: str) -> None:
        self._db.execute(
            "INSERT INTO log(time, alert_id, entry) VALUES (?,?,?)", (t, alert_id, entry)
        )

    # --- alerts -------------------------------------------------------------------------------
    def record(
        self, d: AlertDecision, notes: list[tuple[str, str, str, str]], now: datetime
    ) -> int:
        """The skeleton's API, kept for callers that route by hand: store a decision and its
        notifications (recipient, name, role, body) atomically; how many are new."""
        kind = str(d.state)

        def compose(_row: AlertRow) -> tuple[list[Note], datetime | None]:
            return [Note(r, n, role, b, kind, 0, now) for r, n, role, b in notes], None

        return self.record_decision(d, now, compose)[1]

    def record_decision(
        self,
        d: AlertDecision,
        now: datetime,
        compose: Callable[[AlertRow], tuple[list[Note], datetime | None]],
    ) -> tuple[AlertRow, int]:
        """One transaction (one fsync) for a decision: the alert's row (created with its ACK
        code, or resolved), the notifications ``compose`` builds from that row, and when its
        next step is due. Returns the row and how many notifications are new (0: redelivery)."""
        t = wire.format_time(now)
        with self._tx() as db:
            row, _ = self._ensure(d, now)
            if d.state == "firing" and (row.acked_at or row.resolved):
                return row, 0
            notes, next_step_at = compose(row)
            new = self._insert(d.alert_id, notes, now, t)
            if new and next_step_at is not None:
                db.execute(
                    "UPDATE alerts SET next_step_at=? WHERE alert_id=?",
                    (wire.format_time(next_step_at), d.alert_id),
                )
        return row, new

    def record_update(
        self,
        d: AlertDecision,
        now: datetime,
        compose: Callable[[AlertRow], tuple[list[Note], int, datetime | None]],
    ) -> tuple[AlertRow | None, int]:
        """The episode's severity rose (issue 14): one transaction for the row's new severity
        and decision, the update SMS ``compose`` builds, and (unless acknowledged) the
        escalation re-timed to the new severity's chain: ``compose`` gives its step and when the
        next one is due. (None, 0) if the alert is unknown; 0 SMS for a redelivery, or an update
        that raises nothing (the row is already at that severity) or comes after the all clear."""
        t = wire.format_time(now)
        with self._tx() as db:
            row = self._row(d.alert_id)
            if row is None:
                return None, 0
            if row.resolved or SEVERITY_RANK[d.severity] <= SEVERITY_RANK[Severity(row.severity)]:
                return row, 0
            stored = wire.encode(replace(d, state=AlertState.FIRING)).decode()
            # ``rule`` stays the one that opened the alert (its name in the history); the decision
            # stored names the rule that raised it, which routing reads (alerts/escalation.py).
            db.execute(
                "UPDATE alerts SET severity=?, decision=? WHERE alert_id=?",
                (str(d.severity), stored, d.alert_id),
            )
            self._log(
                d.alert_id, t, f"updated: {row.severity} -> {d.severity} by {d.rule}: {d.reason}"
            )
            row = self._row(d.alert_id)
            assert row is not None
            notes, step, next_step_at = compose(row)
            if notes and all(n.not_before <= now for n in notes):
                # Risen out of quiet hours: what was held for them goes now, ahead of the update
                # (``due`` never lets an SMS overtake an earlier one to the same person).
                cur = db.execute(
                    "UPDATE notifications SET next_attempt_at=? WHERE alert_id=? AND"
                    " state='pending' AND attempts=0 AND next_attempt_at>?",
                    (t, d.alert_id, t),
                )
                if cur.rowcount:
                    self._log(d.alert_id, t, f"{cur.rowcount} SMS held for quiet hours sent now")
            new = self._insert(d.alert_id, notes, now, t)
            if row.acked_at is None and next_step_at is not None:
                db.execute(
                    "UPDATE alerts SET step=?, reminders=0, next_step_at=? WHERE alert_id=?",
                    (step, wire.format_time(next_step_at), d.alert_id),
                )
                self._log(
                    d.alert_id,
                    t,
                    f"escalation re-timed to the {d.severity} chain: at step {step + 1},"
                    f" next step at {wire.format_time(next_step_at)}",
                )
        return row, new

    def _ensure(self, d: AlertDecision, now: datetime) -> tuple[AlertRow, bool]:
        """The alert's row, created (with its ACK code) or resolved by ``d``; True if changed.
        Runs inside the caller's transaction."""
        t = wire.format_time(now)
        changed = False
        if self._row(d.alert_id) is None:
            self._db.execute(
                "INSERT INTO alerts(alert_id, home, patient, rule, severity, state, opened_at,"
                " decision, ack_code) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    d.alert_id,
                    d.home,
                    d.patient,
                    d.rule,
                    str(d.severity),
                    "firing",
                    t,
                    wire.encode(d).decode(),
                    self._new_code(now),
                ),
            )
            self._log(d.alert_id, t, f"firing: {d.rule} {d.severity} for {d.patient}: {d.reason}")
            changed = True
        if d.state == "resolved":
            cur = self._db.execute(
                "UPDATE alerts SET state='resolved', resolved_at=?, next_step_at=NULL"
                " WHERE alert_id=? AND resolved_at IS NULL",
                (t, d.alert_id),
            )
            if cur.rowcount:
                self._cancel(d.alert_id, t, "resolved", held_firing_too=now)
                self._log(d.alert_id, t, f"resolved: {d.reason}")
                changed = True
        row = self._row(d.alert_id)
        assert row is not None
        return row, changed

    def _new_code(self, now: datetime) -> str:
        """A 4-digit code no alert of the last week or still open uses (10 000 codes)."""
        week = wire.format_time(now - timedelta(days=7))
        used = {
            r[0]
            for r in self._db.execute(
                "SELECT ack_code FROM alerts WHERE ack_code IS NOT NULL AND (opened_at >= ?"
                " OR state NOT IN ('acknowledged', 'resolved'))",
                (week,),
            )
        }
        for digits in (4, 4, 4, 4, 4, 6):
            code = str(self._randbelow(9 * 10 ** (digits - 1)) + 10 ** (digits - 1))
            if code not in used:
                return code
        return str(self._randbelow(900_000_000) + 100_000_000)

    def _row(self, alert_id: str) -> AlertRow | None:
        r = self._db.execute(
            f"SELECT {_ACOLS} FROM alerts WHERE alert_id=?", (alert_id,)
        ).fetchone()
        return None if r is None else AlertRow(*r)

    def alert(self, alert_id: str) -> AlertRow | None:
        with self._lock:
            return self._row(alert_id)

    def due_alerts(self, now: datetime) -> list[AlertRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ACOLS} FROM alerts WHERE next_step_at IS NOT NULL AND next_step_at <= ?"
                " AND acked_at IS NULL AND resolved_at IS NULL ORDER BY next_step_at",
                (wire.format_time(now),),
            ).fetchall()
        return [AlertRow(*r) for r in rows]

    def scheduled(self) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (str(a), str(t))
                for a, t in self._db.execute(
                    "SELECT alert_id, next_step_at FROM alerts WHERE next_step_at IS NOT NULL"
                )
            ]

    def by_code(self, code: str) -> list[AlertRow]:
        """Alerts with this ACK code not yet acknowledged, newest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ACOLS} FROM alerts WHERE ack_code=? AND acked_at IS NULL"
                " ORDER BY opened_at DESC",
                (code,),
            ).fetchall()
        return [AlertRow(*r) for r in rows]

    def add(
        self,
        alert_id: str,
        notes: list[Note],
        now: datetime,
        *,
        expect: tuple[int, int] | None = None,
        step: int | None = None,
        reminders: int | None = None,
        next_step_at: datetime | None = None,
        entry: str | None = None,
    ) -> int:
        """Create notifications and move the alert's escalation state, atomically.

        ``expect`` = the (step, reminders) the caller read: if the row moved meanwhile (a timer
        fired twice), nothing happens and 0 is returned."""
        t = wire.format_time(now)
        with self._tx() as db:
            if expect is not None:
                cur = db.execute(
                    "UPDATE alerts SET step=?, reminders=?, next_step_at=? WHERE alert_id=?"
                    " AND step=? AND reminders=? AND acked_at IS NULL AND resolved_at IS NULL",
                    (
                        expect[0] if step is None else step,
                        expect[1] if reminders is None else reminders,
                        None if next_step_at is None else wire.format_time(next_step_at),
                        alert_id,
                        *expect,
                    ),
                )
                if cur.rowcount == 0:
                    return 0
            new = self._insert(alert_id, notes, now, t)
            if entry and (new or expect is not None):
                self._log(alert_id, t, entry)
        return new

    def _insert(self, alert_id: str, notes: list[Note], now: datetime, t: str) -> int:
        new = 0
        for n in notes:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO notifications(alert_id, kind, recipient, name, role,"
                " body, step, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    alert_id,
                    n.kind,
                    n.recipient,
                    n.name,
                    n.role,
                    n.body,
                    n.step,
                    wire.format_time(max(n.not_before, now)),
                    t,
                ),
            )
            new += cur.rowcount
            if cur.rowcount and n.not_before > now:
                self._log(
                    alert_id,
                    t,
                    f"{n.kind} to {n.name} held for quiet hours until"
                    f" {wire.format_time(n.not_before)}",
                )
        return new

    def expedite(self, alert_id: str, now: datetime, why: str) -> bool:
        """Escalate now (nobody at the current step can be reached)."""
        t = wire.format_time(now)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET next_step_at=? WHERE alert_id=? AND acked_at IS NULL"
                " AND resolved_at IS NULL",
                (t, alert_id),
            )
            if cur.rowcount:
                self._log(alert_id, t, why)
        return bool(cur.rowcount)

    def told(self, alert_id: str) -> list[tuple[str, str, str]]:
        """Everyone told about the alert (or about to be): (recipient, name, role). An SMS
        folded by the alarm budget counts: its digest tells them (alerts/budget.py)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT recipient, name, role FROM notifications WHERE alert_id=? AND "
                + _LIVE_KINDS
                + " AND state IN ('pending','sending','sent','folded','digested')"
                " AND coalesce(delivery, '') NOT IN"
                " ('failed','undelivered') GROUP BY recipient ORDER BY min(id)",
                (alert_id,),
            ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def step_alive(self, alert_id: str, step: int) -> bool:
        """Is anyone at this step still being (or already) reached?"""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM notifications WHERE alert_id=? AND step=? AND "
                + _LIVE_KINDS
                + " AND state IN ('pending','sending','sent') AND coalesce(delivery, '') NOT IN"
                " ('failed','undelivered')",
                (alert_id, step),
            ).fetchone()
        return bool(row[0])

    def acknowledge(self, alert_id: str, by: str, via: str, now: datetime) -> bool:
        t = wire.format_time(now)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET acked_at=?, acked_by=?, next_step_at=NULL, state=CASE state"
                " WHEN 'resolved' THEN 'resolved' ELSE 'acknowledged' END"
                " WHERE alert_id=? AND acked_at IS NULL",
                (t, by, alert_id),
            )
            if cur.rowcount:
                self._log(alert_id, t, f"acknowledged by {by} via {via}")
                self._cancel(alert_id, t, "acknowledged")
        return bool(cur.rowcount)

    def _cancel(
        self, alert_id: str, t: str, why: str, held_firing_too: datetime | None = None
    ) -> None:
        """Stop escalations and reminders not yet sent (and SMS held for quiet hours)."""
        # attempts = 0: held for quiet hours, not a first SMS waiting out a Twilio retry.
        held = "" if held_firing_too is None else " OR (attempts = 0 AND next_attempt_at > ?)"
        args: tuple[object, ...] = (alert_id,)
        if held_firing_too is not None:
            args += (wire.format_time(held_firing_too),)
        cur = self._db.execute(
            "UPDATE notifications SET state='cancelled', error=? WHERE alert_id=? AND"
            " state='pending' AND "
            + _LIVE_KINDS
            + " AND (kind LIKE 'escalation-%' OR kind LIKE 'reminder-%'"
            + held
            + ")",
            (f"not sent: {why}", *args),
        )
        if cur.rowcount:
            self._log(alert_id, t, f"{cur.rowcount} pending SMS cancelled: {why}")

    # --- notifications ------------------------------------------------------------------------
    def due(self, now: datetime, limit: int = 20) -> list[Notification]:
        """Pending SMS whose time has come, never ahead of an earlier one to the same person
        about the same alert (an all clear must not overtake its alert in a retry)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_NCOLS} FROM notifications n WHERE state='pending'"
                " AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM notifications p"
                " WHERE p.alert_id=n.alert_id AND p.recipient=n.recipient AND p.id<n.id"
                " AND p.state IN ('pending','sending')) ORDER BY id LIMIT ?",
                (wire.format_time(now), limit),
            ).fetchall()
        return [Notification(*r) for r in rows]

    def interrupted(self) -> list[Notification]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_NCOLS} FROM notifications WHERE state='sending' ORDER BY id"
            ).fetchall()
        return [Notification(*r) for r in rows]

    def mark_sending(self, n: Notification, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='sending', attempts=attempts+1,"
            " sending_at=? WHERE id=?",
            (wire.format_time(now), n.id),
            None,
        )

    def mark_sent(self, n: Notification, sid: str, now: datetime, how: str = "sent") -> None:
        with self._tx() as db:
            t = wire.format_time(now)
            db.execute(
                "UPDATE notifications SET state='sent', sid=?, sent_at=? WHERE id=?", (sid, t, n.id)
            )
            db.execute(
                "UPDATE alerts SET state='notified' WHERE alert_id=? AND state='firing'",
                (n.alert_id,),
            )
            self._log(
                n.alert_id,
                t,
                f"{n.kind} SMS to {n.name} ({n.role}, {n.recipient}) {how}, sid {sid}",
            )

    def mark_retry(self, n: Notification, at: datetime, error: str, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='pending', next_attempt_at=?, error=? WHERE id=?",
            (wire.format_time(at), error, n.id),
            f"SMS to {n.recipient} will be retried at {wire.format_time(at)}: {error}",
        )

    def mark_unsent(self, n: Notification, now: datetime, why: str) -> None:
        """Back to pending after a crash mid-send, once Twilio confirmed it never got it."""
        self._set(n, now, "UPDATE notifications SET state='pending' WHERE id=?", (n.id,), why)

    def mark_failed(self, n: Notification, error: str, now: datetime) -> None:
        self._set(
            n,
            now,
            "UPDATE notifications SET state='failed', error=? WHERE id=?",
            (error, n.id),
            f"{n.kind} SMS to {n.name} ({n.role}, {n.recipient}) failed: {error}",
        )

    def _set(
        self, n: Notification, now: datetime, sql: str, args: tuple[object, ...], entry: str | None
    ) -> None:
        with self._tx() as db:
            db.execute(sql, args)
            if entry:
                self._log(n.alert_id, wire.format_time(now), entry)

    def delivery(self, sid: str, status: str, error: str, now: datetime) -> Notification | None:
        """A Twilio status callback: record it; the notification it concerns, if ours."""
        with self._tx() as db:
            row = db.execute(f"SELECT {_NCOLS} FROM notifications WHERE sid=?", (sid,)).fetchone()
            if row is None:
                return None
            n = Notification(*row)
            db.execute("UPDATE notifications SET delivery=? WHERE id=?", (status, n.id))
            detail = f" (error {error})" if error else ""
            self._log(
                n.alert_id,
                wire.format_time(now),
                f"{n.kind} SMS to {n.name} ({n.recipient}): {status}{detail}",
            )
        return n

    # --- inbound SMS --------------------------------------------------------------------------
    def inbound_first(self, sid: str, sender: str, body: str, now: datetime) -> bool:
        """True the first time a MessageSid is seen (Twilio retries a webhook that timed out)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO inbound(message_sid, time, sender, body) VALUES (?,?,?,?)",
                (sid, wire.format_time(now), sender, body),
            )
        return bool(cur.rowcount)

    def inbound_outcome(self, sid: str, outcome: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE inbound SET outcome=? WHERE message_sid=?", (outcome, sid))

    # --- reading ------------------------------------------------------------------------------
    def history(self, patient: str | None = None) -> list[dict[str, object]]:
        """The audit trail: every alert, who was told what and when, and who acknowledged."""
        q, args = HISTORY_SQL, ()  # type: tuple[str, tuple[object, ...]]
        if patient:
            q = q.replace("/*where*/", "WHERE a.patient = ?")
            args = (patient,)
        with self._lock:
            cur = self._db.execute(q, args)
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            logs = self._db.execute("SELECT alert_id, time, entry FROM log ORDER BY id").fetchall()
        by_alert: dict[str, list[str]] = {}
        for alert_id, t, entry in logs:
            by_alert.setdefault(str(alert_id), []).append(f"{t}  {entry}")
        for r in rows:
            r["log"] = by_alert.get(str(r["alert_id"]), [])
        return rows

    def state_counts(self) -> dict[str, int]:
        """Notifications by state (pending, sending, sent, failed ...), for /metrics."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM notifications GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

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
