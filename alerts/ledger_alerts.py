"""The alerts of the alert ledger (alerts/ledger.py): firing -> notified -> acknowledged ->
resolved, with the escalation step and the time its next step is due on the row, so that a
restart picks the chain up where it stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from homevitals.alerts.ledger_notifications import NotificationTable
from homevitals.alerts.ledger_rows import ACOLS, AlertRow, Note
from homevitals.vocab import wire
from homevitals.vocab.readings import SEVERITY_RANK, AlertDecision, AlertState, Severity

__all__ = ["AlertTable"]


class AlertTable(NotificationTable):
    """Alerts, and the notifications each step of theirs creates (in the same transaction)."""

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
        compose: Callable[[AlertRow, bool], tuple[list[Note], int, datetime | None]],
    ) -> tuple[AlertRow | None, int]:
        """The episode's severity rose (issue 14): one transaction for the row's new severity
        and decision, the update SMS ``compose`` builds, and (unless acknowledged) the
        escalation re-timed to the new severity's chain: ``compose`` gives its step and when the
        next one is due. ``compose`` is told whether the episode had reached that severity
        before (a rise back after a fall). (None, 0) if the alert is unknown; 0 SMS for a
        redelivery, or an update that raises nothing (the row is already at that severity) or
        comes after the all clear."""
        t = wire.format_time(now)
        with self._tx() as db:
            row = self._row(d.alert_id)
            if row is None:
                return None, 0
            now_at = row.decoded().severity  # below row.severity after a fall (record_fall)
            if row.resolved or SEVERITY_RANK[d.severity] <= SEVERITY_RANK[now_at]:
                return row, 0
            again = SEVERITY_RANK[d.severity] <= SEVERITY_RANK[Severity(row.severity)]
            stored = wire.encode(replace(d, state=AlertState.FIRING)).decode()
            # ``rule`` stays the one that opened the alert (its name in the history); the decision
            # stored names the rule that raised it, which routing reads (alerts/escalation.py).
            db.execute(
                "UPDATE alerts SET severity=?, decision=? WHERE alert_id=?",
                (str(d.severity), stored, d.alert_id),
            )
            self._log(
                d.alert_id, t, f"updated: {now_at} -> {d.severity} by {d.rule}: {d.reason}"
                + (" (back at a severity reached before: clinicians told are not told again)"
                   if again else ""),
            )
            row = self._row(d.alert_id)
            assert row is not None
            notes, step, next_step_at = compose(row, again)
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

    def record_fall(self, d: AlertDecision, now: datetime) -> bool:
        """The episode fell to a lower severity (issue 14, fifth round): one transaction for
        the decision stored (its severity is the alert's current one; ``severity`` stays the
        highest reached) and the end of its chain (the next step and reminders belong to the
        higher severity; a rise re-times them). No SMS. False: unknown, resolved, or not lower
        than now."""
        t = wire.format_time(now)
        with self._tx() as db:
            row = self._row(d.alert_id)
            if row is None or row.resolved:
                return False
            was = row.decoded().severity
            if SEVERITY_RANK[d.severity] >= SEVERITY_RANK[was]:
                return False
            stored = wire.encode(replace(d, state=AlertState.FIRING)).decode()
            db.execute(
                "UPDATE alerts SET decision=?, next_step_at=NULL WHERE alert_id=?",
                (stored, d.alert_id),
            )
            self._log(
                d.alert_id, t, f"fell: {was} -> {d.severity} ({d.reason}): no SMS;"
                f" the {was} chain's next steps are not taken",
            )
        return True

    def _ensure(self, d: AlertDecision, now: datetime) -> tuple[AlertRow, bool]:
        """The alert's row, created (with its ACK code) or resolved by ``d``; True if changed.
        Runs inside the caller's transaction."""
        t = wire.format_time(now)
        changed = False
        # ON CONFLICT: another alert worker may record the same decision at the same moment
        # (both hear it); the one that commits first opens the alert.
        if self._row(d.alert_id) is None and self._db.execute(
                "INSERT INTO alerts(alert_id, home, patient, rule, severity, state, opened_at,"
                " decision, ack_code) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
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
            ).rowcount:
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
            f"SELECT {ACOLS} FROM alerts WHERE alert_id=?", (alert_id,)
        ).fetchone()
        return None if r is None else AlertRow(*r)

    def alert(self, alert_id: str) -> AlertRow | None:
        with self._lock:
            return self._row(alert_id)

    def due_alerts(self, now: datetime) -> list[AlertRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ACOLS} FROM alerts WHERE next_step_at IS NOT NULL AND next_step_at <= ?"
                " AND acked_at IS NULL AND resolved_at IS NULL ORDER BY next_step_at",
                (wire.format_time(now),),
            ).fetchall()
        return [AlertRow(*r) for r in rows]

    @contextmanager
    def claim(self, alert_id: str, now: datetime) -> Iterator[AlertRow | None]:
        """A transaction holding the alert if its next step is still due and no other worker
        holds it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer): the step
        taken inside it commits with the claim. None: nothing to do here."""
        with self._tx() as db:
            r = db.execute(
                f"SELECT {ACOLS} FROM alerts WHERE alert_id=? AND next_step_at IS NOT NULL"
                " AND next_step_at <= ? AND acked_at IS NULL AND resolved_at IS NULL"
                + db.claim_clause,
                (alert_id, wire.format_time(now)),
            ).fetchone()
            yield None if r is None else AlertRow(*r)

    def next_due(self) -> datetime | None:
        """When the earliest escalation step or reminder of an open alert is due."""
        with self._lock:
            t = self._db.execute(
                "SELECT min(next_step_at) FROM alerts WHERE next_step_at IS NOT NULL"
                " AND acked_at IS NULL AND resolved_at IS NULL"
            ).fetchone()[0]
        return None if t is None else wire.parse_time(str(t), "next_step_at")

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
                f"SELECT {ACOLS} FROM alerts WHERE ack_code=? AND acked_at IS NULL"
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

    def expedite(
        self, alert_id: str, now: datetime, why: str, decision: AlertDecision | None = None
    ) -> bool:
        """Escalate now (nobody at the current step can be reached, or an urgent low joined
        while the doctor's step waited). ``decision``: stored as the alert's, so the next step
        tells its reading."""
        t = wire.format_time(now)
        with self._tx() as db:
            if decision is not None:
                stored = wire.encode(replace(decision, state=AlertState.FIRING)).decode()
                cur = db.execute(
                    "UPDATE alerts SET next_step_at=?, decision=? WHERE alert_id=?"
                    " AND acked_at IS NULL AND resolved_at IS NULL",
                    (t, stored, alert_id),
                )
            else:
                cur = db.execute(
                    "UPDATE alerts SET next_step_at=? WHERE alert_id=? AND acked_at IS NULL"
                    " AND resolved_at IS NULL",
                    (t, alert_id),
                )
            if cur.rowcount:
                self._log(alert_id, t, why)
        return bool(cur.rowcount)

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

    def patient_acknowledge(
        self, alert_id: str, by: str, phone: str, via: str, now: datetime
    ) -> bool:
        """The patient's OK (issue 20): their step only. Reminders to the patient stop; the
        escalation to the care team stays due unless the episode clears first."""
        t = wire.format_time(now)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET patient_acked_at=? WHERE alert_id=? AND patient_acked_at IS"
                " NULL AND acked_at IS NULL AND resolved_at IS NULL",
                (t, alert_id),
            )
            if cur.rowcount:
                self._log(alert_id, t, f"acknowledged by {by} via {via}: the patient's step"
                                       " only; the care team is still told unless it clears")
                db.execute(
                    "UPDATE notifications SET state='cancelled', error=? WHERE alert_id=? AND"
                    " recipient=? AND state='pending' AND kind LIKE 'reminder-%'",
                    ("not sent: the patient answered OK", alert_id, phone),
                )
        return bool(cur.rowcount)

    def open_told(self, recipient: str) -> list[AlertRow]:
        """Open, unacknowledged alerts this number was told about, newest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ACOLS} FROM alerts WHERE acked_at IS NULL AND resolved_at IS NULL"
                " AND alert_id IN (SELECT alert_id FROM notifications WHERE recipient=?)"
                " ORDER BY opened_at DESC",
                (recipient,),
            ).fetchall()
        return [AlertRow(*r) for r in rows]
