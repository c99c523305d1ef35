"""The alert ledger's tables (alerts/ledger.py) and the rows read from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from homevitals import wire
from homevitals.readings import AlertDecision

__all__ = ["ACOLS", "ADDED", "INDEXES", "LIVE_KINDS", "NCOLS", "SCHEMA", "AlertRow", "Note",
           "Notification"]

SCHEMA = """
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
ADDED = {
    "alerts": [
        ("ack_code", "TEXT"),
        ("acked_at", "TEXT"),
        ("acked_by", "TEXT"),
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("reminders", "INTEGER NOT NULL DEFAULT 0"),
        ("next_step_at", "TEXT"),
        ("patient_acked_at", "TEXT"),  # issue 20: the patient's OK (their step only)
    ],
    "notifications": [
        ("step", "INTEGER NOT NULL DEFAULT 0"),
        ("sending_at", "TEXT"),
        ("delivery", "TEXT"),
    ],
}
INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_due ON alerts(next_step_at);
CREATE INDEX IF NOT EXISTS notifications_sid ON notifications(sid);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_attempt_at);
"""

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
