"""The rule engine: readings and events in, alert decisions out.

Rules are data from the configuration (thresholds, windows, severities); nothing in them is ever
evaluated as code. The engine keeps one open alert per patient and rule. Its state lives in SQLite
next to the outbox of decisions, and both change in one transaction: a crash can neither lose a
decision nor repeat one.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals import wire
from homevitals.config import EventRuleConfig, HomeConfig, RuleConfig, ThresholdRuleConfig
from homevitals.outbox import DurableQueue
from homevitals.readings import AlertDecision, AlertState, Event, Reading
from homevitals.topics import Topics

__all__ = ["OpenAlert", "RuleEngine"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS open_alerts (
    patient TEXT NOT NULL,
    rule TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (patient, rule)
);
"""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    opened_at: datetime


def _alert_id(patient: str, rule: str, source: str) -> str:
    return "a" + hashlib.sha256(f"{patient}\x1f{rule}\x1f{source}".encode()).hexdigest()[:31]


class RuleEngine:
    def __init__(
        self, rules: list[RuleConfig], homes: list[HomeConfig], outbox: DurableQueue, topics: Topics
    ) -> None:
        self.thresholds = [r for r in rules if isinstance(r, ThresholdRuleConfig)]
        self.event_rules = [r for r in rules if isinstance(r, EventRuleConfig)]
        self.homes = {p.id: h for h in homes for p in h.patients}
        self.outbox = outbox
        self.topics = topics
        self.counts: Counter[str] = Counter()
        outbox.ensure_schema(_SCHEMA)

    # --- state --------------------------------------------------------------------------------
    def open_alert(self, patient: str, rule: str) -> OpenAlert | None:
        with self.outbox.transaction() as db:
            return self._get(db, patient, rule)

    @staticmethod
    def _get(db: sqlite3.Connection, patient: str, rule: str) -> OpenAlert | None:
        row = db.execute(
            "SELECT alert_id, opened_at FROM open_alerts WHERE patient=? AND rule=?",
            (patient, rule),
        ).fetchone()
        return None if row is None else OpenAlert(row[0], wire.parse_time(row[1], "opened_at"))

    def _emit(self, db: sqlite3.Connection, decision: AlertDecision) -> None:
        topic = self.topics.alert(decision.home, decision.patient)
        self.outbox.put_in(db, topic, wire.encode(decision))
        self.counts[f"{decision.state}"] += 1
        logger.warning(
            "%s %s for %s: %s", decision.state, decision.rule, decision.patient, decision.reason
        )

    # --- readings -----------------------------------------------------------------------------
    def on_reading(self, r: Reading) -> list[AlertDecision]:
        home = self.homes.get(r.patient)
        if home is None:
            self.counts["unknown_patient"] += 1
            logger.warning(
                "reading %s for unknown patient %s ignored by rules", r.reading_id, r.patient
            )
            return []
        out: list[AlertDecision] = []
        with self.outbox.transaction() as db:
            for rule in self.thresholds:
                d = self._threshold(db, rule, home, r)
                if d is not None:
                    self._emit(db, d)
                    out.append(d)
        return out

    def _threshold(
        self, db: sqlite3.Connection, rule: ThresholdRuleConfig, home: HomeConfig, r: Reading
    ) -> AlertDecision | None:
        if r.measurement != rule.measurement or rule.field not in r.fields:
            return None
        fv = r.fields[rule.field]
        if fv.unit != rule.unit:
            self.counts["unit_mismatch"] += 1
            logger.error(
                "rule %s expects %s but reading %s has %s",
                rule.id,
                rule.unit,
                r.reading_id,
                fv.unit,
            )
            return None
        breached = (
            fv.value < rule.below if rule.below is not None else fv.value > (rule.above or 0.0)
        )
        local = r.time.astimezone(home.zone)
        in_window = rule.window is None or rule.window.contains(local.time())
        current = self._get(db, r.patient, rule.id)
        if breached and in_window and current is None:
            aid = _alert_id(r.patient, rule.id, r.reading_id)
            db.execute(
                "INSERT INTO open_alerts VALUES (?,?,?,?)",
                (r.patient, rule.id, aid, wire.format_time(r.time)),
            )
            return self._decision(aid, AlertState.FIRING, rule, home, r, rule.reason)
        if not breached and current is not None and r.time >= current.opened_at:
            db.execute("DELETE FROM open_alerts WHERE patient=? AND rule=?", (r.patient, rule.id))
            return self._decision(
                current.alert_id,
                AlertState.RESOLVED,
                rule,
                home,
                r,
                f"{rule.reason}: back in range",
            )
        return None

    def _decision(
        self,
        aid: str,
        state: AlertState,
        rule: ThresholdRuleConfig,
        home: HomeConfig,
        r: Reading,
        reason: str,
    ) -> AlertDecision:
        fv = r.fields[rule.field]
        return AlertDecision(
            alert_id=aid,
            state=state,
            home=home.id,
            patient=r.patient,
            rule=rule.id,
            severity=rule.severity,
            reason=reason,
            time=r.received_at,
            measurement=str(r.measurement),
            field=rule.field,
            value=fv.value,
            unit=str(fv.unit),
            observed_at=r.time,
            flags=r.flags,
            source_id=r.reading_id,
        )

    # --- events -------------------------------------------------------------------------------
    def on_event(self, e: Event) -> list[AlertDecision]:
        home = self.homes.get(e.patient)
        if home is None:
            self.counts["unknown_patient"] += 1
            return []
        out: list[AlertDecision] = []
        with self.outbox.transaction() as db:
            for rule in self.event_rules:
                if rule.event != e.kind:
                    continue
                current = self._get(db, e.patient, rule.id)
                fold = timedelta(minutes=rule.fold_minutes)
                if current is not None and timedelta(0) <= e.time - current.opened_at < fold:
                    self.counts["folded"] += 1
                    continue  # the same call for help, pressed again: the open alert covers it
                aid = _alert_id(e.patient, rule.id, e.event_id)
                db.execute(
                    "INSERT OR REPLACE INTO open_alerts VALUES (?,?,?,?)",
                    (e.patient, rule.id, aid, wire.format_time(e.time)),
                )
                d = AlertDecision(
                    alert_id=aid,
                    state=AlertState.FIRING,
                    home=home.id,
                    patient=e.patient,
                    rule=rule.id,
                    severity=rule.severity,
                    reason=rule.reason,
                    time=e.received_at,
                    measurement="event",
                    field=str(e.kind),
                    observed_at=e.time,
                    source_id=e.event_id,
                )
                self._emit(db, d)
                out.append(d)
        return out
