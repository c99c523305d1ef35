"""What the console reads and drives in other stages, as protocols.

A stage never imports another stage: the composition root
(``homevitals.roots.console_wiring``) fills
these with the alert ledger and escalator (``homevitals.alerts``) and with the store and the
report figures and metrics (``homevitals.ingest``, ``homevitals.reports``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "AlertBook",
    "DeviceStatus",
    "InboxAlert",
    "LastReading",
    "PatientStatus",
    "Record",
    "RecordRow",
    "RecordSection",
    "Records",
    "RiskView",
]

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True, slots=True)
class InboxAlert:
    alert_id: str
    home: str
    patient: str
    rule: str
    severity: str
    state: str  # firing, notified, acknowledged, resolved
    reason: str
    opened_at: datetime
    value: float | None
    unit: str
    observed_at: datetime | None
    step: int  # escalation step, 1 = the first people told
    next_step_at: datetime | None
    told: tuple[str, ...]  # "name (role)"
    acked_at: str | None
    acked_by: str | None
    measurement: str = ""
    trend: float | None = None  # the rule's rate of change per minute in ``unit``, if it knew

    def __post_init__(self) -> None:
        if self.opened_at.tzinfo is None:
            raise ValueError("opened_at must be aware")

    @property
    def is_open(self) -> bool:
        return self.state not in ("acknowledged", "resolved")

    def urgency(self) -> tuple[int, datetime]:
        """Most urgent first: severity, then the oldest."""
        return SEVERITY_ORDER.get(self.severity, 9), self.opened_at


class AlertBook(Protocol):
    def open_alerts(self) -> list[InboxAlert]:
        """Alerts neither acknowledged nor resolved."""
        ...

    def all_alerts(self, since: datetime) -> list[InboxAlert]:
        """Every alert opened since then, open or closed."""
        ...

    def patient_alerts(self, patient: str) -> list[InboxAlert]:
        """Every alert of one patient, newest first."""
        ...

    def acknowledge(self, alert_id: str, by: str, phone: str | None) -> bool:
        """Acknowledge as an SMS ACK does (stops the escalation); False if already closed."""
        ...

    def tell_health_manager(self, alert_id: str, body: str) -> int:
        """SMS the patient's health manager(s) about this alert through the alert outbox
        (sent by the alerts daemon, once per person); how many SMS are new."""
        ...


@dataclass(frozen=True, slots=True)
class LastReading:
    measurement: str
    text: str  # value with its unit
    time: datetime


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device: str
    kind: str
    last_seen: datetime | None
    battery: float | None
    silent: bool
    low_battery: bool


@dataclass(frozen=True, slots=True)
class PatientStatus:
    patient: str
    readings: tuple[LastReading, ...]
    devices: tuple[DeviceStatus, ...]


@dataclass(frozen=True, slots=True)
class RecordRow:
    label: str
    value: str
    off_target: bool = False


@dataclass(frozen=True, slots=True)
class RecordSection:
    title: str
    rows: tuple[RecordRow, ...]
    figures: tuple[tuple[str, str], ...] = ()  # (key, caption); drawn by Records.figure
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """The dynamic health record of one patient over ``period``."""

    period: str
    sections: tuple[RecordSection, ...]


@dataclass(frozen=True, slots=True)
class RiskView:
    """A patient's risk tier (low, medium, high) and the rules that set it, naming readings."""

    tier: str
    reasons: tuple[str, ...]


class Records(Protocol):
    def status(self, patients: list[str]) -> dict[str, PatientStatus]:
        """Last reading per measurement and device health of each patient."""
        ...

    def risk(self, patients: list[str]) -> dict[str, RiskView]:
        """Each patient's risk tier from the configured rules over the console's period."""
        ...

    def record(self, patient: str) -> Record: ...

    def figure(self, patient: str, key: str) -> bytes | None:
        """A PNG named in the record, or None."""
        ...
