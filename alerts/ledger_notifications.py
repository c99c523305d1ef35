"""The notifications of the alert ledger (alerts/ledger.py): the SMS outbox. Each is a row
with a state (pending -> sending -> sent | failed | cancelled) written before and after the
provider is called, unique per (alert, kind, recipient)."""

from __future__ import annotations

from datetime import datetime

from homevitals.alerts.ledger_base import LedgerBase
from homevitals.alerts.ledger_rows import LIVE_KINDS, NCOLS, Note, Notification
from homevitals.vocab import wire

__all__ = ["NotificationTable"]


class NotificationTable(LedgerBase):
    def _insert(self, alert_id: str, notes: list[Note], now: datetime, t: str) -> int:
        new = 0
        for n in notes:
            cur = self._db.execute(
                "INSERT INTO notifications(alert_id, kind, recipient, name, role,"
                " body, step, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT DO NOTHING",
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

    def told(self, alert_id: str) -> list[tuple[str, str, str]]:
        """Everyone told about the alert (or about to be): (recipient, name, role). An SMS
        folded by the alarm budget counts: its digest tells them (alerts/budget.py)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT recipient, name, role FROM notifications WHERE id IN (SELECT min(id)"
                " FROM notifications WHERE alert_id=? AND "
                + LIVE_KINDS
                + " AND state IN ('pending','sending','sent','folded','digested')"
                " AND coalesce(delivery, '') NOT IN"
                " ('failed','undelivered') GROUP BY recipient) ORDER BY id",
                (alert_id,),
            ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def step_alive(self, alert_id: str, step: int) -> bool:
        """Is anyone at this step still being (or already) reached?"""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM notifications WHERE alert_id=? AND step=? AND "
                + LIVE_KINDS
                + " AND state IN ('pending','sending','sent') AND coalesce(delivery, '') NOT IN"
                " ('failed','undelivered')",
                (alert_id, step),
            ).fetchone()
        return bool(row[0])

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
            + LIVE_KINDS
            + " AND (kind LIKE 'escalation-%' OR kind LIKE 'reminder-%'"
            + held
            + ")",
            (f"not sent: {why}", *args),
        )
        if cur.rowcount:
            self._log(alert_id, t, f"{cur.rowcount} pending SMS cancelled: {why}")

    def due(self, now: datetime, limit: int = 20) -> list[Notification]:
        """Pending SMS whose time has come, never ahead of an earlier one to the same person
        about the same alert (an all clear must not overtake its alert in a retry)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {NCOLS} FROM notifications n WHERE state='pending'"
                " AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM notifications p"
                " WHERE p.alert_id=n.alert_id AND p.recipient=n.recipient AND p.id<n.id"
                " AND p.state IN ('pending','sending')) ORDER BY id LIMIT ?",
                (wire.format_time(now), limit),
            ).fetchall()
        return [Notification(*r) for r in rows]

    def interrupted(self) -> list[Notification]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {NCOLS} FROM notifications WHERE state='sending' ORDER BY id"
            ).fetchall()
        return [Notification(*r) for r in rows]

    def mark_sending(self, n: Notification, now: datetime, by: str = "") -> bool:
        """Claim the SMS for this sender (``by``: the worker): False if another worker took it
        (or it was cancelled) since it was read as due."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE notifications SET state='sending', attempts=attempts+1,"
                " sending_at=?, sending_by=? WHERE id=? AND state='pending'",
                (wire.format_time(now), by, n.id),
            )
        return bool(cur.rowcount)

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
        self._set(n, now, "UPDATE notifications SET state='pending' WHERE id=? AND"
                  " state='sending'", (n.id,), why)

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
            row = db.execute(f"SELECT {NCOLS} FROM notifications WHERE sid=?", (sid,)).fetchone()
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
