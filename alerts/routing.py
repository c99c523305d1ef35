"""Who a route tells, step by step (issue 6; the patient's own phone, issue 20).

A route's chain is a list of steps, each a role or a list of roles told at once. The people of a
step are the care-team members holding its roles, and for the role ``patient`` the patient's own
``phone``: skipped when there is none, and always for the call button (the patient just pressed
it). Roles nobody holds are skipped; with nobody at all, the family doctor is told. A route with
``end_at_family`` stops at the first step that reaches a family member (issue 14 tuning: a level-1
low goes to the doctor only for a person with no family on the care team). A route with
``doctor_after_minutes`` tells the first step's clinicians in a step of their own, that many
minutes after the person and family, unless the alert names a condition of
``doctor_at_once_rules`` (issue 14, fifth round).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals.vocab.config import CareRole, Config, HomeConfig, PatientConfig, RouteConfig
from homevitals.vocab.readings import Severity

__all__ = ["CARER_ROLES", "PATIENT_ROLE", "Recipient", "Router", "gap"]

logger = logging.getLogger(__name__)

_FALLBACK = RouteConfig(chain=[CareRole.FAMILY_DOCTOR])
PATIENT_ROLE = str(CareRole.PATIENT)
_FAMILY = str(CareRole.FAMILY_MEMBER)
CARER_ROLES = (PATIENT_ROLE, _FAMILY)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Someone a step tells: a care-team member, or the patient on their own phone."""

    name: str
    role: str
    phone: str

    @property
    def is_patient(self) -> bool:
        return self.role == PATIENT_ROLE

    @property
    def is_carer(self) -> bool:
        """The person or their family, who treat a low themselves (not a clinician)."""
        return self.role in CARER_ROLES


def _holders(patient: PatientConfig, role: CareRole, event: bool) -> list[Recipient]:
    if role == CareRole.PATIENT:
        # Issue 20: the call button goes to the care team only (the patient just pressed it).
        if event or patient.phone is None:
            return []
        return [Recipient(patient.name, PATIENT_ROLE, patient.phone)]
    return [Recipient(m.name, str(m.role), m.phone) for m in patient.care_team if m.role == role]


def gap(route: RouteConfig, steps: list[list[Recipient]], k: int) -> float:
    """Minutes from step ``k`` to the next one (or to the first reminder after the last)."""
    if k + 1 >= len(steps):
        return route.renotify_minutes
    if all(r.is_carer for r in steps[k]):
        if route.doctor_after_minutes is not None:
            return route.doctor_after_minutes  # the clinicians' own step (``Router.steps``)
        # The person and their family act on a low themselves (rule of 15): their step waits
        # ``escalate_after_patient_minutes`` whether the family shares it or not.
        return route.escalate_after_patient_minutes
    return route.escalate_after_minutes


class Router:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def route(self, severity: str, rule: str, episode: str = "") -> RouteConfig:
        return next(
            (r for r in self.cfg.alerts.routes if r.matches(severity, rule, episode)), _FALLBACK
        )

    def steps(
        self, patient: PatientConfig, route: RouteConfig, event: bool = False,
        conditions: tuple[str, ...] = (),
    ) -> list[list[Recipient]]:
        """The chain as people; roles nobody holds are skipped (the patient without a phone,
        and always for the call button). Never empty: with nobody in the chain the family
        doctor (always configured) is told, with a warning. ``conditions``: what holds in the
        alert (``doctor_at_once_rules``)."""
        steps = [
            [r for role in roles for r in _holders(patient, role, event)]
            for roles in route.step_roles()
        ]
        steps = [s for s in steps if s]
        if steps and route.doctor_after_minutes is not None and not (
            set(conditions) & set(route.doctor_at_once_rules)
        ):
            carers = [r for r in steps[0] if r.is_carer]
            others = [r for r in steps[0] if not r.is_carer]
            if carers and others:
                steps[:1] = [carers, others]
        if route.end_at_family:
            family = next((k for k, s in enumerate(steps) if any(r.role == _FAMILY for r in s)),
                          None)
            steps = steps if family is None else steps[: family + 1]
        if not steps:
            logger.warning(
                "patient %s has nobody in the roles %s: telling the family doctor instead",
                patient.id,
                ", ".join(map(str, route.chain)),
            )
            steps = [_holders(patient, CareRole.FAMILY_DOCTOR, event)]
        return steps

    def release(self, severity: str, home: HomeConfig, now: datetime) -> datetime:
        """When an SMS may go: quiet hours hold low severity only; critical is never held."""
        quiet = self.cfg.alerts.quiet_hours
        if quiet is None or severity != Severity.LOW:
            return now
        local = now.astimezone(home.zone)
        if not quiet.contains(local.time()):
            return now
        end = datetime.combine(local.date(), quiet.end, home.zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), quiet.end, home.zone)
        return end
