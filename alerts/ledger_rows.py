"""The alert ledger's tables (alerts/ledger.py) and the rows read from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, UniqueConstraint

from homevitals.vocab import wire
from homevitals.vocab.readings import AlertDecision

__all__ = ["ACOLS", "ADDED", "INDEXES", "LIVE_KINDS", "NCOLS", "AlertRow", "Note",
           "Notification", "create_tables"]

_META = MetaData()
_ID: dict[str, Any] = {"sqlite_autoincrement": True}  # SQLite: never reuse an id, as before

# Times are ISO-8601 text in UTC (``wire.format_time``): they sort as they compare.
ALERTS = Table(
    "alerts", _META,
    Column("alert_id", Text, primary_key=True),
    Column("home", Text, nullable=False), Column("patient", Text, nullable=False),
    Column("rule", Text, nullable=False), Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False), Column("opened_at", Text, nullable=False),
    Column("resolved_at", Text), Column("decision", Text, nullable=False),
    Column("ack_code", Text), Column("acked_at", Text), Column("acked_by", Text),
    # The due time of the alert's next escalation step or reminder: the timer's row.
    Column("step", Integer, nullable=False, server_default="0"),
    Column("reminders", Integer, nullable=False, server_default="0"),
    Column("next_step_at", Text),
    Column("patient_acked_at", Text),  # issue 20: the patient's OK (their step only)
)
NOTIFICATIONS = Table(
    "notifications", _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Text, nullable=False), Column("kind", Text, nullable=False),
    Column("recipient", Text, nullable=False), Column("name", Text, nullable=False),
    Column("role", Text, nullable=False), Column("body", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Text, nullable=False), Column("created_at", Text, nullable=False),
    Column("sent_at", Text), Column("sid", Text), Column("error", Text),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("sending_at", Text), Column("delivery", Text),
    Column("sending_by", Text),  # the alert worker that sent it (issue 17)
    # The kind names the step ("firing", "escalation-2", "reminder-1"): a second SMS for the
    # same step to the same person cannot be written, by any worker.
    UniqueConstraint("alert_id", "kind", "recipient"),
    **_ID,
)
LOG = Table(
    "log", _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Text, nullable=False), Column("alert_id", Text, nullable=False),
    Column("entry", Text, nullable=False),
    **_ID,
)
INBOUND = Table(
    "inbound", _META,
    Column("message_sid", Text, primary_key=True), Column("time", Text, nullable=False),
    Column("sender", Text, nullable=False), Column("body", Text, nullable=False),
    Column("outcome", Text),
)
# Columns added by issue 6 and 20; ALTERed into a ledger written by an older version.
ADDED = {
    "alerts": [
        ("ack_code", "TEXT"),
        ("acked_at", "TEXT"),
        ("acked_by", "TEXT"),
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("reminders", "INTEGER NOT NULL DEFAULT 0"),
        ("next_step_at", "TEXT"),
        ("patient_acked_at", "TEXT"),
    ],
    "notifications": [
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("sending_at", "TEXT"),
        ("delivery", "TEXT"),
        ("sending_by", "TEXT"),
    ],
}
# Indexes on added columns, made after the ALTERs (``create_all`` skips existing tables).
INDEXES = [
    "CREATE INDEX IF NOT EXISTS alerts_due ON alerts(next_step_at)",
    "CREATE INDEX IF NOT EXISTS notifications_sid ON notifications(sid)",
    "CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_attempt_at)",
]


def create_tables(engine: Engine) -> None:
    _META.create_all(engine)


NCOLS = "id, alert_id, kind, recipient, name, role, body, attempts, step, sending_at"
ACOLS = (
    "alert_id, home, patient, rule, severity, state, opened_at, ack_code, acked_at, acked_by,"
    " step, reminders, next_step_at, decision, patient_acked_at"
)
LIVE_KINDS = "kind NOT IN ('resolved', 'acknowledged')"


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
    patient_acked_at: str | None = None

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"

    def decoded(self) -> AlertDecision:
        d = wire.decode(self.decision.encode())
        assert isinstance(d, AlertDecision)
        return d
