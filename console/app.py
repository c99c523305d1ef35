"""What a console user may see and do: the rules of access, independent of HTTP.

A doctor or a health manager sees the patients whose care team lists the phone number of their
account; an admin sees every patient and manages accounts. A patient the user may not see is
answered exactly like a patient that does not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from homevitals.console.accounts import Account, Accounts, Role
from homevitals.console.followups import FollowUp, FollowUps
from homevitals.console.ports import (
    AlertBook,
    InboxAlert,
    LastReading,
    PatientStatus,
    Records,
    RiskView,
)
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import CareRole, Config, HomeConfig, PatientConfig
from homevitals.vocab.risk_config import Tier

__all__ = ["PAGE_SIZE", "ConsoleApp", "PatientRow"]

logger = logging.getLogger(__name__)

MAX_NOTE = 2000
PAGE_SIZE = 50
SYNC_MARGIN_HOURS = 7 * 24  # a console down for a week still creates the tasks it missed


@dataclass(frozen=True, slots=True)
class PatientRow:
    home: HomeConfig
    patient: PatientConfig
    status: PatientStatus | None
    open_alerts: int
    overdue: int
    risk: RiskView | None = None


class ConsoleApp:
    def __init__(self, cfg: Config, accounts: Accounts, alerts: AlertBook, records: Records,
                 followups: FollowUps, clock: Clock) -> None:
        self.cfg = cfg
        self.ccfg = cfg.console
        self.accounts = accounts
        self.alerts = alerts
        self.records = records
        self.followups = followups
        self.clock = clock

    # --- access -------------------------------------------------------------------------------
    def visible(self, user: Account) -> list[tuple[HomeConfig, PatientConfig]]:
        return [(h, p) for h in self.cfg.homes for p in h.patients if self._sees(user, p)]

    @staticmethod
    def _sees(user: Account, p: PatientConfig) -> bool:
        if user.role == Role.ADMIN:
            return True
        return user.phone is not None and any(m.phone == user.phone for m in p.care_team)

    def patient(self, user: Account, patient_id: str) -> tuple[HomeConfig, PatientConfig] | None:
        """The patient if this user may see them; None for unknown and forbidden alike."""
        try:
            home, p = self.cfg.patient(patient_id)
        except KeyError:
            return None
        return (home, p) if self._sees(user, p) else None

    # --- inbox --------------------------------------------------------------------------------
    def inbox(self, user: Account) -> list[InboxAlert]:
        mine = {p.id for _, p in self.visible(user)}
        return sorted((a for a in self.alerts.open_alerts() if a.patient in mine),
                      key=InboxAlert.urgency)

    def current(self, alerts: list[InboxAlert]) -> dict[str, LastReading]:
        """Alert id -> the patient's newest reading of the alert's measurement."""
        status = self.records.status(sorted({a.patient for a in alerts}))
        out = {}
        for a in alerts:
            st = status.get(a.patient)
            last = next((r for r in (st.readings if st else ()) if r.measurement == a.measurement),
                        None)
            if last is not None:
                out[a.alert_id] = last
        return out

    def acknowledge(self, user: Account, alert_id: str, note: str, address: str) -> str | None:
        """Acknowledge one of the user's open alerts; the message to show, None if not theirs."""
        alert = next((a for a in self.inbox(user) if a.alert_id == alert_id), None)
        if alert is None:
            return None
        _, p = self.cfg.patient(alert.patient)
        # With the account's phone on the patient's care team, the ledger records the same
        # "who" as for that person's SMS reply, and they get no "acknowledged" SMS themselves.
        phone = user.phone if any(m.phone == user.phone for m in p.care_team) else None
        done = self.alerts.acknowledge(alert_id, f"{user.display_name} ({user.role})", phone)
        self.accounts.audit(user.username, "alert acknowledged" if done else "ack: already closed",
                            alert.patient, alert_id, address)
        note = note.strip()[:MAX_NOTE]
        if note:
            self.accounts.add_note(user.username, alert.patient, alert_id, note)
        return "Acknowledged: the escalation has stopped." if done else "Already closed."

    # --- patients -----------------------------------------------------------------------------
    def patient_rows(self, user: Account, query: str = "", page: int = 0
                     ) -> tuple[list[PatientRow], int]:
        """One page of the user's patients matching ``query``, and how many match in all.
        Only the page's patients are read from the store: a list of 1 000 stays fast."""
        q = query.strip().lower()
        matching = [(h, p) for h, p in self.visible(user)
                    if not q or q in p.name.lower() or q in p.id.lower() or q in (p.number or "")]
        seen = matching[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        statuses = self.records.status([p.id for _, p in seen])
        risks = self.records.risk([p.id for _, p in seen])
        counts: dict[str, int] = {}
        for a in self.alerts.open_alerts():
            counts[a.patient] = counts.get(a.patient, 0) + 1
        now = self.clock.now()
        late: dict[str, int] = {}
        for f in self.tasks(user):
            late[f.patient] = late.get(f.patient, 0) + f.overdue(now)
        return [PatientRow(h, p, statuses.get(p.id), counts.get(p.id, 0), late.get(p.id, 0),
                           risks.get(p.id)) for h, p in seen], len(matching)

    def add_note(self, user: Account, patient_id: str, body: str) -> bool:
        if self.patient(user, patient_id) is None or not body.strip():
            return False
        self.accounts.add_note(user.username, patient_id, None, body.strip()[:MAX_NOTE])
        return True

    # --- follow-up tasks ----------------------------------------------------------------------
    def _sync(self) -> None:
        doctors = {p.id: next(f"{m.name} ({m.role})" for m in p.care_team
                              if m.role == CareRole.FAMILY_DOCTOR)
                   for h in self.cfg.homes for p in h.patients}
        # Alerts of the last days only: an older one has its task already (or is history).
        since = self.clock.now() - timedelta(hours=max(self.followups.hours.values(), default=0)
                                             + SYNC_MARGIN_HOURS)
        alerts = [a for a in self.alerts.all_alerts(since)
                  if a.severity in self.followups.hours and self.followups.get(a.alert_id) is None]
        if not alerts:
            return
        # The patient's risk tier when the task is made sets how soon it is due (issue 15).
        tiers = self.records.risk(sorted({a.patient for a in alerts}))
        cap = {p: self.ccfg.risk.follow_up_hours.get(Tier(r.tier), 0.0)
               for p, r in tiers.items()}
        self.followups.sync(alerts, doctors, cap)

    def tasks(self, user: Account) -> list[FollowUp]:
        """The user's follow-ups not yet done, the soonest due first (created from the ledger)."""
        self._sync()
        return self.followups.open({p.id for _, p in self.visible(user)})

    def escalate_overdue(self) -> int:
        """Tell the health manager by SMS of every overdue follow-up, once; how many."""
        self._sync()
        told = 0
        for f in self.followups.overdue():
            body = (f"homevitals: the follow-up (call or home visit) after the {f.severity}"
                    f" alert \"{f.reason}\" for patient {f.patient} was due by"
                    f" {f.due_at.strftime('%Y-%m-%d %H:%M')} UTC and is not done."
                    f" Assigned to {f.assignee}.")
            told += self.alerts.tell_health_manager(f.alert_id, body)
            self.followups.escalated(f.alert_id)
            self.accounts.audit("(console)", "overdue follow-up sent to the health manager",
                                f.patient, f.alert_id)
            logger.info("follow-up for alert %s is overdue: health manager told", f.alert_id)
        return told

    def complete(self, user: Account, alert_id: str, outcome: str, address: str) -> bool | None:
        """Record a follow-up done; None if not the user's, False without an outcome note."""
        task = self.followups.get(alert_id)
        if task is None or self.patient(user, task.patient) is None:
            return None
        outcome = outcome.strip()[:MAX_NOTE]
        if not outcome:
            return False
        if self.followups.done(alert_id, f"{user.display_name} ({user.role})", outcome):
            self.accounts.audit(user.username, "follow-up done", task.patient, alert_id, address)
        return True
