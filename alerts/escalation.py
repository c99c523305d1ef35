"""Who is told, in what order, and when the next person is: routing, escalation, reminders, ACK.

A route (``alerts.routes``, first match by severity and rule) is a chain of steps (who is at
each: ``alerts/routing.py``). The first step is told at once (low severity waits out quiet
hours; nothing else ever does). While the alert is unacknowledged, the next step is told after
``escalate_after_minutes`` (``escalate_after_patient_minutes`` after a step of the patient
alone, and the patient's own OK does not stop it: issue 20); past the end of
the chain everyone told gets a reminder every ``renotify_minutes``, up to ``max_reminders``. A
step with nobody in that role is skipped; a step whose every SMS failed for good (Twilio 21211,
21610, or a failed delivery report) is left at once. Every step is logged in the ledger.

All decisions are taken against the ledger's durable state and the injected clock, so the same
code runs from a timer, from the safety-net sweep, after a restart and from the CLI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from homevitals.alerts.ledger import AlertRow, Ledger, Note
from homevitals.alerts.patient_text import direction_of, patient_text
from homevitals.alerts.routing import CARER_ROLES, Recipient, Router, gap
from homevitals.alerts.routing import PATIENT_ROLE as _PATIENT
from homevitals.alerts.text import (
    ack_text,
    alert_text,
    display_name,
    escalation_text,
    reminder_text,
    update_text,
)
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config, HomeConfig, PatientConfig, RouteConfig
from homevitals.vocab.readings import SEVERITY_RANK, AlertDecision, AlertState, Severity

__all__ = ["Escalator", "Recipient", "Router"]

logger = logging.getLogger(__name__)


class Escalator:
    def __init__(
        self,
        cfg: Config,
        ledger: Ledger,
        clock: Clock,
        wake_at: Callable[[str, datetime, datetime], None] = lambda _a, _t, _n: None,
        on_new: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_new = on_new
        self.cfg = cfg
        self.ledger = ledger
        self.clock = clock
        self.router = Router(cfg)
        self.wake_at = wake_at
        self._lock = threading.Lock()

    def _who(self, patient_id: str) -> tuple[HomeConfig, PatientConfig]:
        return self.cfg.patient(patient_id)

    def _name(self, patient: PatientConfig) -> str:
        return display_name(patient.name, patient.id, patient.number, self.cfg.alerts.privacy)

    def _steps(self, patient: PatientConfig, route: RouteConfig, d: AlertDecision) -> list[
        list[Recipient]
    ]:
        return self.router.steps(
            patient, route, event=d.measurement == "event", conditions=(d.rule, *d.conditions)
        )

    def _lay(
        self, kind: str, d: AlertDecision, who: tuple[HomeConfig, PatientConfig], code: str,
        *, doctor_told: bool = False, at: datetime | None = None,
    ) -> str:
        """The patient's own SMS (issue 20), in their language."""
        home, patient = who
        rule = next((r for r in self.cfg.rules.definitions if r.id == d.rule), None)
        return patient_text(
            kind, d, home.zone, code, lang=patient.language, glucose_unit=patient.glucose_unit,
            direction=direction_of(rule), doctor_told=doctor_told, at=at,
        )

    # --- decisions from the rule engine -------------------------------------------------------
    def on_decision(self, d: AlertDecision) -> int:
        """Record a decision and who must hear of it. Idempotent: 0 for a redelivery."""
        if d.state == AlertState.UPDATED:
            row = self.ledger.alert(d.alert_id)
            now_at = None if row is None else SEVERITY_RANK[row.decoded().severity]
            if now_at is not None and SEVERITY_RANK[d.severity] < now_at:
                return self._on_fall(d)
            if row is not None and SEVERITY_RANK[d.severity] == now_at:
                return self._on_join(row, d)
            return self._on_update(d)
        home, patient = self._who(d.patient)
        now = self.clock.now()
        at = self.router.release(str(d.severity), home, now)
        nxt: datetime | None = None

        def compose(row: AlertRow) -> tuple[list[Note], datetime | None]:
            nonlocal nxt
            code = row.ack_code or ""
            body = alert_text(
                d, self._name(patient), home.zone, code, glucose_unit=patient.glucose_unit
            )
            if d.state == AlertState.RESOLVED:
                told = self.ledger.told(d.alert_id)
                lay = self._lay("resolved", d, (home, patient), code)
                return [
                    Note(r, n, role, lay if role == _PATIENT else body, "resolved", row.step, at)
                    for r, n, role in told
                ], None
            route = self.router.route(str(d.severity), d.rule, d.episode)
            steps = self._steps(patient, route, d)
            nxt = at + timedelta(minutes=gap(route, steps, 0))
            lay = self._lay(
                "alert", d, (home, patient), code,
                doctor_told=any(not m.is_carer for m in steps[0]),
            )
            notes = [
                Note(m.phone, m.name, m.role, lay if m.is_patient else body, "firing", 0, at)
                for m in steps[0]
            ]
            return notes, nxt

        with self._lock:
            _, new = self.ledger.record_decision(d, now, compose)
        if new:
            self.on_new()  # the sender first; the timer's own write can wait
            if nxt is not None:
                self.wake_at(d.alert_id, nxt, now)
        return new

    def _on_fall(self, d: AlertDecision) -> int:
        """The episode fell back to a lower severity (level 2 -> level 1): no SMS (no storm),
        a line in the audit trail, and the higher chain's next steps (the doctor's delayed
        first SMS, the backup doctor, reminders) are not taken."""
        with self._lock:
            self.ledger.record_fall(d, self.clock.now())
        return 0

    def _on_join(self, row: AlertRow, d: AlertDecision) -> int:
        """A condition of the episode's own severity joined it (``announce_join``: an urgent
        low while the doctor's first SMS waits its minutes, issue 14). No SMS of its own; when
        the route pages the doctor at once on that condition (``doctor_at_once_rules``) and
        the doctor's delayed step is the next one, it is taken now. A redelivery, or a join
        after that step, an ACK or the all clear, changes nothing."""
        if row.step != 0 or row.acked_at is not None or row.resolved:
            return 0
        stored = row.decoded()
        route = self.router.route(row.severity, stored.rule, stored.episode)
        if route.doctor_after_minutes is None or d.rule not in route.doctor_at_once_rules:
            return 0
        _, patient = self._who(d.patient)
        steps = self._steps(patient, route, stored)
        if len(steps) < 2 or not all(m.is_carer for m in steps[0]):
            return 0  # the doctor was in the first step already
        now = self.clock.now()
        with self._lock:
            # The doctor is told the urgent reading, under the rule that opened the alert (its
            # route and chain stay those of the level-2 low).
            told = replace(d, rule=stored.rule, reason=stored.reason, conditions=stored.conditions)
            taken = self.ledger.expedite(
                d.alert_id, now, f"{d.rule} joined ({d.value} {d.unit}): the doctor's step now",
                told,
            )
        if taken:
            self.wake_at(d.alert_id, now, now)
        return 0

    def _on_update(self, d: AlertDecision) -> int:
        """The episode's severity rose: one update SMS to everyone told so far and to the first
        step of the new severity's chain, and the escalation re-timed to that chain (the
        steps already told count as taken). After an acknowledgement, only those told hear of
        it: the acknowledgement covers the episode, so nothing escalates again.

        Back at a severity the episode had reached before (a level-2 low that fell to level 1,
        silently, and deepened again): the person and family, who treat each low, get the
        update (one ``update-<severity>`` each per alert, as always); a clinician already told
        does not (the fall was never sent to them, so what they were told still holds); the
        chain is re-timed as on a first rise."""
        home, patient = self._who(d.patient)
        now = self.clock.now()
        at = self.router.release(str(d.severity), home, now)
        nxt: datetime | None = None

        def compose(row: AlertRow, again: bool) -> tuple[list[Note], int, datetime | None]:
            nonlocal nxt
            body = update_text(
                d, self._name(patient), home.zone, row.ack_code or "",
                glucose_unit=patient.glucose_unit,
            )
            kind = f"update-{d.severity}"
            told = self.ledger.told(d.alert_id)
            route = self.router.route(str(d.severity), d.rule, d.episode)
            steps = self._steps(patient, route, d)
            phones = {r for r, _, _ in told}
            new = [] if row.acked_at is not None else [m for m in steps[0] if m.phone not in phones]
            lay = self._lay(
                "update", d, (home, patient), row.ack_code or "",
                doctor_told=any(role not in CARER_ROLES for _, _, role in told)
                or any(not m.is_carer for m in new),
            )
            notes = [
                Note(r, n, role, lay if role == _PATIENT else body, kind, row.step, at)
                for r, n, role in told
                if not again or role in CARER_ROLES
            ]
            if row.acked_at is not None:
                return notes, row.step, None
            k = 0
            while k + 1 < len(steps) and all(m.phone in phones for m in steps[k + 1]):
                k += 1
            notes += [
                Note(m.phone, m.name, m.role, lay if m.is_patient else body, kind, k, at)
                for m in new
            ]
            nxt = at + timedelta(minutes=gap(route, steps, k))
            return notes, k, nxt

        with self._lock:
            row, new = self.ledger.record_update(d, now, compose)
        if row is None:  # never heard of it (the firing was lost): it opens the alert now
            return self.on_decision(replace(d, state=AlertState.FIRING))
        if new:
            self.on_new()
            if nxt is not None:
                self.wake_at(d.alert_id, nxt, now)
        return new

    # --- timers -------------------------------------------------------------------------------
    def run_due(self, now: datetime | None = None) -> int:
        """Take every escalation step or reminder that is due; the number of new SMS."""
        now = now or self.clock.now()
        new = 0
        with self._lock:
            for row in self.ledger.due_alerts(now):
                # The check and the step are one transaction: an ACK committed first leaves
                # nothing to claim; an ACK after waits for the step and cancels what it queued.
                with self.ledger.claim(row.alert_id, now) as claimed:
                    if claimed is not None:  # else another worker has it, or it is not due
                        new += self._advance(claimed, now)
        return new

    def _advance(self, row: AlertRow, now: datetime) -> int:
        d = row.decoded()
        if SEVERITY_RANK[d.severity] < SEVERITY_RANK[Severity(row.severity)]:
            # Fallen (level 2 back at level 1, issue 14): the higher chain's step is not taken.
            # ``record_fall`` clears the due time; this check runs in the claim's transaction.
            self.ledger.add(row.alert_id, [], now, expect=(row.step, row.reminders),
                            next_step_at=None, entry=f"not taken: back at {d.severity}")
            return 0
        home, patient = self._who(row.patient)
        route = self.router.route(row.severity, d.rule, d.episode)
        steps = self._steps(patient, route, d)
        code = row.ack_code or ""
        at = self.router.release(row.severity, home, now)
        if row.step + 1 < len(steps):
            k = row.step + 1
            # The patient by the name the SMS use for them (privacy: initials), not their own.
            before = [self._name(patient) if m.is_patient else m.name for s in steps[:k] for m in s]
            told = [m for s in steps[:k] for m in s]
            ok = row.patient_acked_at is not None and any(m.is_patient for m in told)
            body = escalation_text(
                d, self._name(patient), home.zone, code, before, glucose_unit=patient.glucose_unit,
                answered_ok=self._name(patient) if ok else None,
            )
            if k == 1 and route.doctor_after_minutes is not None and all(
                m.is_carer for m in steps[0]
            ):  # the doctor's first SMS, 10 minutes after the family's: the alert itself
                body = alert_text(
                    d, self._name(patient), home.zone, code, glucose_unit=patient.glucose_unit
                )
            lay = self._lay("alert", d, (home, patient), code)
            notes = [
                Note(m.phone, m.name, m.role, lay if m.is_patient else body, f"escalation-{k}", k,
                     at)
                for m in steps[k]
            ]
            nxt = at + timedelta(minutes=gap(route, steps, k))
            names = ", ".join(f"{m.name} ({m.role})" for m in steps[k])
            entry = f"escalated to step {k + 1} of {len(steps)}: {names}"
            new = self.ledger.add(
                row.alert_id,
                notes,
                now,
                expect=(row.step, row.reminders),
                step=k,
                next_step_at=nxt,
                entry=entry,
            )
        elif row.reminders < route.max_reminders:
            n = row.reminders + 1
            body = reminder_text(
                d, self._name(patient), home.zone, code, n, glucose_unit=patient.glucose_unit
            )
            lay = self._lay("reminder", d, (home, patient), code)
            notes = [
                Note(r, nm, role, lay if role == _PATIENT else body, f"reminder-{n}", row.step, at)
                for r, nm, role in self.ledger.told(row.alert_id)
                if role != _PATIENT or row.patient_acked_at is None  # the patient said OK
            ]
            nxt = at + timedelta(minutes=route.renotify_minutes)
            new = self.ledger.add(
                row.alert_id,
                notes,
                now,
                expect=(row.step, row.reminders),
                reminders=n,
                next_step_at=nxt,
                entry=f"reminder {n} of {route.max_reminders}",
            )
        else:
            self.ledger.add(
                row.alert_id,
                [],
                now,
                expect=(row.step, row.reminders),
                next_step_at=None,
                entry="end of the chain: no more reminders",
            )
            return 0
        self.wake_at(row.alert_id, nxt, now)
        return new

    def on_dead_end(self, alert_id: str, step: int, kind: str, why: str) -> bool:
        """An SMS failed for good (or was not delivered): if nobody at its step can still be
        reached, the next step is due now."""
        if kind in ("resolved", "acknowledged") or self.ledger.step_alive(alert_id, step):
            return False
        now = self.clock.now()
        if self.ledger.expedite(
            alert_id,
            now,
            f"nobody at step {step + 1} reachable ({why}): moving to the next person now",
        ):
            self.run_due(now)
            return True
        return False

    # --- acknowledgement ----------------------------------------------------------------------
    def acknowledge(
        self, code: str, by: str, via: str, phone: str | None = None
    ) -> AlertRow | None:
        """Acknowledge the newest open alert with this code. With ``phone`` (an SMS reply),
        only an alert of a patient whose care team has that number."""
        now = self.clock.now()
        with self._lock:
            for row in self.ledger.by_code(code):
                _, patient = self._who(row.patient)
                member = next((m for m in patient.care_team if m.phone == phone), None)
                if phone is not None and member is None:
                    continue
                who = by if member is None else f"{member.name} ({member.role}, {member.phone})"
                if self.ledger.acknowledge(row.alert_id, who, via, now):
                    self._tell_acknowledged(row, who, phone, now)
                    return self.ledger.alert(row.alert_id)
        return None

    def _tell_acknowledged(self, row: AlertRow, who: str, phone: str | None, now: datetime) -> None:
        home, patient = self._who(row.patient)
        d = row.decoded()
        body = ack_text(d, self._name(patient), home.zone, row.ack_code or "", who, now)
        lay = self._lay("acknowledged", d, (home, patient), "", at=now)
        notes = [
            Note(r, n, role, lay if role == _PATIENT else body, "acknowledged", row.step, now)
            for r, n, role in self.ledger.told(row.alert_id)
            if r != phone
        ]
        self.ledger.add(row.alert_id, notes, now)

    def patient_ok(
        self, patient: PatientConfig, phone: str, code: str | None
    ) -> tuple[AlertRow | None, bool]:
        """The patient answered OK (or with the code) from their own number (issue 20): the
        newest open alert of theirs they were told about (or the one with that code) is
        acknowledged for the patient's step only. (row, True) when newly noted, (row, False)
        when noted before, (None, False) when there is no such alert."""
        now = self.clock.now()
        who = f"{patient.name} ({_PATIENT}, {phone})"
        with self._lock:
            rows = [r for r in self.ledger.open_told(phone) if r.patient == patient.id]
            if code is not None:
                rows = [r for r in rows if r.ack_code == code]
            if not rows:
                return None, False
            row = rows[0]
            noted = self.ledger.patient_acknowledge(row.alert_id, who, phone, "SMS reply", now)
            return self.ledger.alert(row.alert_id), noted
