"""The alerts stage's configuration section (``alerts:``): the notifier and its credentials,
who is told in what order (``routes``, with the defaults in ``default_routes``), quiet hours, the
inbound webhook and the alarm budget. Pure pydantic: the root model in
``homevitals/vocab/config.py`` assembles it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from homevitals.vocab.config_base import E164 as _E164
from homevitals.vocab.config_base import MetricsConfig, Model, MqttLogin, TimeWindow
from homevitals.vocab.config_homes import CareRole
from homevitals.vocab.readings import Severity

__all__ = ["AlertsConfig", "RouteConfig", "TwilioConfig", "WebhookConfig", "default_routes"]


class TwilioConfig(Model):
    """Credentials come from the environment (``*_env``) or a file, never from this file."""

    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name, not a secret
    auth_token_file: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = Field(None, description="URL Twilio calls with delivery status")
    api_base_url: str | None = Field(None, description="override the REST base URL (proxy, tests)")
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("twilio needs from_number or messaging_service_sid")
        if self.from_number and not _E164.match(self.from_number):
            raise ValueError(f"from_number {self.from_number!r} is not an E.164 number")
        return self


class RouteConfig(Model):
    """Who hears about which alerts, in what order. The first matching route wins."""

    severities: list[Severity] = Field([], description="empty: any severity")
    rules: list[str] = Field([], description="empty: any rule")
    # A step is a role, or a list of roles told at once ([patient, family_doctor], issue 20).
    chain: list[CareRole | list[CareRole]] = Field(
        min_length=1, description="escalation steps, by role"
    )
    escalate_after_minutes: float = Field(15.0, gt=0)
    # Issue 20: how long a step of the patient alone waits before the next one (the ADA "rule
    # of 15": treat, then check again 15 minutes later).
    escalate_after_patient_minutes: float = Field(15.0, gt=0)
    renotify_minutes: float = Field(30.0, gt=0)
    max_reminders: int = Field(6, ge=0)
    # Issue 14 tuning: the family is the person's backup for a low they treat themselves; the
    # steps after one that reaches a family member are for a person who has none.
    end_at_family: bool = Field(False, description="no steps after one with a family member")
    # Issue 14, fifth round: the person and family treat a low within minutes, a doctor cannot.
    doctor_after_minutes: float | None = Field(
        None, gt=0, description="the first step's clinicians are told this many minutes after"
        " the person and family, and only if the alert is still at this route's severity;"
        " None: all at once",
    )
    doctor_at_once_rules: list[str] = Field(
        [], description="conditions (rule ids) that tell the clinicians at once (an urgent low)"
    )

    def matches(self, severity: str, rule: str, episode: str = "") -> bool:
        """``rules`` may name a rule or an episode (issue 14)."""
        return (not self.severities or severity in self.severities) and (
            not self.rules or rule in self.rules or (bool(episode) and episode in self.rules)
        )

    def step_roles(self) -> list[list[CareRole]]:
        """The chain as steps, each a list of roles told at once."""
        return [c if isinstance(c, list) else [c] for c in self.chain]


def default_routes() -> list[RouteConfig]:
    """A dead gateway or a flat battery goes to the health manager, not the doctor at 3 a.m."""
    r = CareRole
    return [
        RouteConfig(
            rules=["gateway-offline", "device-battery-low"],
            chain=[r.HEALTH_MANAGER],
            escalate_after_minutes=120,
            renotify_minutes=240,
            max_reminders=2,
        ),
        # Issue 20: a level-1 (or predicted) low warns the person first, who can act fastest;
        # issue 14 (tuning): and their family, who treat a child's low (ISPAD 2022,
        # hypoglycaemia chapter; CGM followers' apps share low alerts with family). Level 1 is
        # the "alert value" the person treats themselves (15 g, recheck at 15 min; ADA
        # Standards of Care 2024, section 6): no doctor, unanswered it reminds the family every
        # 2 hours (3 at most); if it deepens, the level-2 route below tells the doctor at once.
        # A person with no family member on the care team: the family doctor 30 minutes later
        # (two "rule of 15" cycles), since nobody else would notice a low they cannot treat,
        # and the backup doctor after 60 more, as before this tuning.
        # Bench figures: docs/rules-and-alerts.md, "Tuning the defaults".
        RouteConfig(
            rules=["glucose-low"],
            severities=[Severity.LOW, Severity.MEDIUM],
            chain=[[r.PATIENT, r.FAMILY_MEMBER], r.FAMILY_DOCTOR, r.BACKUP_DOCTOR],
            end_at_family=True,
            escalate_after_patient_minutes=30,
            escalate_after_minutes=60,
            renotify_minutes=120,
            max_reminders=3,
        ),
        # A level-2 low: the person, their family (who treat a child's low, ISPAD 2022) and the
        # doctor. Unanswered, the backup doctor 20 minutes after the doctor and the health
        # manager 20 after that; then reminders hourly, at most 2 (issue 14 tuning: reminders
        # every 30 minutes were about a seventh of a doctor's SMS on the UVA/Padova child cohort,
        # bench/alarm_burden.py).
        RouteConfig(
            rules=["glucose-low"],
            severities=[Severity.HIGH],
            chain=[[r.PATIENT, r.FAMILY_MEMBER, r.FAMILY_DOCTOR], r.BACKUP_DOCTOR,
                   r.HEALTH_MANAGER],
            # Issue 14, sixth round: the backup doctor 30 minutes after the family's first SMS
            # (10 + 20), when two "rule of 15" cycles (treat, recheck after 15 minutes: ADA
            # Standards of Care 2024, section 6) have not lifted the low; was 15 (docs/
            # rules-and-alerts.md, "Tuning, sixth round").
            escalate_after_minutes=20,
            renotify_minutes=60,
            max_reminders=2,
            # Issue 14, fifth round: the person and family first; the doctor 10 minutes later,
            # only if the low is still at level 2 then (a treated low is not theirs to hear of),
            # and at once for an urgent low (docs/rules-and-alerts.md, "Tuning, fifth round").
            doctor_after_minutes=10,
            doctor_at_once_rules=["hypo-level-2-urgent", "hypo-level-2-meter"],
        ),
        # A hypertensive crisis: the person and the doctor at once, escalating as a level-2 low.
        RouteConfig(
            rules=["hypertensive-crisis"],
            severities=[Severity.HIGH],
            chain=[[r.PATIENT, r.FAMILY_DOCTOR], r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=15,
            renotify_minutes=60,
            max_reminders=2,
        ),
        RouteConfig(
            severities=[Severity.CRITICAL],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=5,
            renotify_minutes=10,
            max_reminders=12,
        ),
        RouteConfig(
            severities=[Severity.HIGH],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=15,
            renotify_minutes=30,
        ),
        RouteConfig(
            severities=[Severity.MEDIUM],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR],
            escalate_after_minutes=60,
            renotify_minutes=120,
            max_reminders=3,
        ),
        RouteConfig(
            chain=[r.FAMILY_DOCTOR], escalate_after_minutes=720, renotify_minutes=720,
            max_reminders=1,
        ),
    ]


class WebhookConfig(Model):
    """Twilio's inbound-SMS and status-callback webhook, served by the alerts daemon."""

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=1, le=65535)
    public_url: str = Field(
        description="the URL Twilio calls (behind a TLS proxy); the signature covers it"
    )

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+", v):
            raise ValueError(f"public_url {v!r} must be an http(s) URL")
        return v.rstrip("/")


class AlertsConfig(Model):
    client_id: str = "homevitals-alerts"
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    notifier: Literal["twilio", "console"] = "console"
    twilio: TwilioConfig | None = None
    outbox_path: str = "homevitals-alerts-outbox.sqlite"
    ledger_url: str | None = Field(
        None, description="the alert ledger in PostgreSQL (postgresql+psycopg://...), shared by"
        " several alert workers (docs/cluster.md); default: SQLite in outbox_path",
    )
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    # Issue 6: routing, escalation, quiet hours, the inbound webhook (docs/rules-and-alerts.md).
    routes: list[RouteConfig] = Field(default_factory=lambda: default_routes())
    privacy: Literal["full_name", "initials"] = Field(
        "full_name", description="initials: SMS name patients by initials and patient number only"
    )
    quiet_hours: TimeWindow | None = Field(
        None, description="patient's local time; holds low severity only"
    )
    webhook: WebhookConfig | None = None
    schedule_path: str | None = None  # unused since issue 16 (due times are ledger rows); kept
    # so that an older config still loads
    sweep_seconds: float = Field(
        30.0, gt=0, description="the longest the escalation timer sleeps before it looks at the"
        " ledger again (for due times another process wrote)",
    )
    # Issue 14, the alarm budget (alerts/budget.py): at most this many SMS per recipient and
    # patient in any 60 minutes; more are folded into one digest SMS. Critical always goes
    # through (and counts). 4 lets one real episode's whole story through untouched (first SMS,
    # a severity update, the all clear, one reminder), so only a storm is ever folded.
    sms_per_hour: int = Field(4, ge=1, description="SMS budget per recipient and patient")
