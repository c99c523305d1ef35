"""The rule engine: readings, events and gateway news in, alert decisions out.

Rules are data from the configuration (thresholds, windows, severities); nothing in them is ever
evaluated as code. The engine keeps one open alert per patient and rule. Its state lives in SQLite
next to the outbox of decisions, and both change in one transaction: a crash can neither lose a
decision nor repeat one. Readings (``on_reading``) drive threshold and rate rules; the absence of
readings (missing data, a silent gateway, ``rules/watch.py``) is judged on each message's time and
on a clock tick.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals import wire
from homevitals.clock import Clock, SystemClock
from homevitals.config import (
    EventRuleConfig,
    HomeConfig,
    PatientConfig,
    RateRuleConfig,
    RuleConfig,
    ThresholdRuleConfig,
    effective_rule,
)
from homevitals.outbox import DurableQueue
from homevitals.readings import AlertDecision, AlertState, Event, GatewayStatus, Reading
from homevitals.rules import conditions as cond
from homevitals.rules.state import SCHEMA, OpenAlert, State
from homevitals.rules.watch import Watch
from homevitals.topics import Topics

__all__ = ["OpenAlert", "RuleEngine", "alert_id"]

logger = logging.getLogger(__name__)

_ValueRule = ThresholdRuleConfig | RateRuleConfig


def alert_id(patient: str, rule: str, source: str) -> str:
    """Stable for one episode: the same patient, rule and opening reading give the same id."""
    return "a" + hashlib.sha256(f"{patient}\x1f{rule}\x1f{source}".encode()).hexdigest()[:31]


@dataclass(frozen=True, slots=True)
class Subject:
    """One patient with the rules that apply to them (shared rules with their overrides)."""

    home: HomeConfig
    patient: PatientConfig
    rules: tuple[RuleConfig, ...]


class RuleEngine:
    def __init__(
        self,
        rules: list[RuleConfig],
        homes: list[HomeConfig],
        outbox: DurableQueue,
        topics: Topics,
        clock: Clock | None = None,
    ) -> None:
        self.subjects = {
            p.id: Subject(h, p, _rules_for(rules, p)) for h in homes for p in h.patients
        }
        self.homes = {p.id: h for h in homes for p in h.patients}  # kept for callers
        self.outbox = outbox
        self.topics = topics
        self.clock = clock or SystemClock()
        self.counts: Counter[str] = Counter()
        self.started = self.clock.now()  # the grace baseline for data never seen yet
        outbox.ensure_schema(SCHEMA)
        self.watch = Watch(self)

    # --- state --------------------------------------------------------------------------------
    def open_alert(self, patient: str, rule: str) -> OpenAlert | None:
        with self.outbox.transaction() as db:
            return State(db).open_alert(patient, rule)

    def emit(self, st: State, decision: AlertDecision) -> None:
        topic = self.topics.alert(decision.home, decision.patient)
        self.outbox.put_in(st.db, topic, wire.encode(decision))
        self.counts[f"{decision.state}"] += 1
        logger.warning(
            "%s %s for %s: %s", decision.state, decision.rule, decision.patient, decision.reason
        )

    def fire(
        self, st: State, s: Subject, rule: RuleConfig, source: str, at: datetime, **kw: object
    ) -> AlertDecision:
        aid = alert_id(s.patient.id, rule.id, source)
        st.open(s.patient.id, rule.id, aid, at)
        d = self._decision(aid, AlertState.FIRING, s, rule, rule.reason, **kw)
        self.emit(st, d)
        return d

    def resolve(
        self, st: State, s: Subject, rule: RuleConfig, current: OpenAlert, why: str, **kw: object
    ) -> AlertDecision:
        st.close(s.patient.id, rule.id)
        d = self._decision(
            current.alert_id, AlertState.RESOLVED, s, rule, f"{rule.reason}: {why}", **kw
        )
        self.emit(st, d)
        return d

    def _decision(
        self, aid: str, state: AlertState, s: Subject, rule: RuleConfig, reason: str, **kw: object
    ) -> AlertDecision:
        return AlertDecision(
            alert_id=aid,
            state=state,
            home=s.home.id,
            patient=s.patient.id,
            rule=rule.id,
            severity=rule.severity,
            reason=reason,
            **kw,  # type: ignore[arg-type]  # the optional AlertDecision fields, by name
        )

    # --- readings -----------------------------------------------------------------------------
    def on_reading(self, r: Reading) -> list[AlertDecision]:
        s = self.subjects.get(r.patient)
        if s is None:
            self.counts["unknown_patient"] += 1
            logger.warning(
                "reading %s for unknown patient %s ignored by rules", r.reading_id, r.patient
            )
            return []
        out: list[AlertDecision] = []
        with self.outbox.transaction() as db:
            st = State(db)
            for rule in s.rules:
                d: AlertDecision | None = None
                if isinstance(rule, ThresholdRuleConfig | RateRuleConfig):
                    d = self._value_rule(st, s, rule, r)
                if d is not None:
                    out.append(d)
            out += self.watch.on_reading(st, s, r)
        return out

    def _sample(self, rule: _ValueRule, r: Reading) -> float | None:
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
        return fv.value

    def _value_rule(
        self, st: State, s: Subject, rule: _ValueRule, r: Reading
    ) -> AlertDecision | None:
        value = self._sample(rule, r)
        if value is None:
            return None
        sample = cond.Sample(r.time, value, r.reading_id)
        if isinstance(rule, ThresholdRuleConfig) and not cond.needs_history(rule):
            # Nothing to remember between readings: no write, so a normal reading costs no
            # fsync (the open alert alone makes a redelivery harmless).
            w = cond.Window([sample])
            return self._threshold(st, s, rule, r, w, st.open_alert(r.patient, rule.id))
        w = st.window(r.patient, rule.id)
        if not w.add(sample):
            self.counts["duplicate_reading"] += 1
            return None  # a redelivered reading: already judged
        if isinstance(rule, ThresholdRuleConfig):
            horizon, keep = cond.threshold_horizon(rule)
        else:
            horizon, keep = timedelta(minutes=rule.within_minutes), 2
        w.prune(horizon, keep)
        st.save_window(r.patient, rule.id, w)
        if w.newest.source != r.reading_id:
            return None  # a late reading only fills in history; the newest one already judged
        current = st.open_alert(r.patient, rule.id)
        if isinstance(rule, ThresholdRuleConfig):
            return self._threshold(st, s, rule, r, w, current)
        return self._rate(st, s, rule, r, w, current)

    def _in_window(self, s: Subject, rule: _ValueRule, t: datetime) -> bool:
        return rule.window is None or rule.window.contains(t.astimezone(s.home.zone).time())

    def _threshold(
        self,
        st: State,
        s: Subject,
        rule: ThresholdRuleConfig,
        r: Reading,
        w: cond.Window,
        current: OpenAlert | None,
    ) -> AlertDecision | None:
        value = w.newest.value
        if current is None:
            if self._in_window(s, rule, r.time) and cond.threshold_fires(rule, w):
                return self.fire(st, s, rule, r.reading_id, r.time, **_fields(r, rule.field))
            return None
        if cond.clears(rule, value) and r.time >= current.opened_at:
            return self.resolve(st, s, rule, current, "back in range", **_fields(r, rule.field))
        if not cond.breaches(rule, value):
            self.counts["held_open"] += 1  # within the hysteresis band: no flapping
        return None

    def _rate(
        self,
        st: State,
        s: Subject,
        rule: RateRuleConfig,
        r: Reading,
        w: cond.Window,
        current: OpenAlert | None,
    ) -> AlertDecision | None:
        change = cond.rate_change(rule, w)
        if current is None and change is not None and self._in_window(s, rule, r.time):
            return self.fire(st, s, rule, r.reading_id, r.time, **_fields(r, rule.field))
        if current is not None and change is None and r.time >= current.opened_at:
            return self.resolve(
                st, s, rule, current, "no longer changing that fast", **_fields(r, rule.field)
            )
        return None

    # --- events -------------------------------------------------------------------------------
    def on_event(self, e: Event) -> list[AlertDecision]:
        s = self.subjects.get(e.patient)
        if s is None:
            self.counts["unknown_patient"] += 1
            return []
        out: list[AlertDecision] = []
        with self.outbox.transaction() as db:
            st = State(db)
            for rule in s.rules:
                if not isinstance(rule, EventRuleConfig) or rule.event != e.kind:
                    continue
                current = st.open_alert(e.patient, rule.id)
                fold = timedelta(minutes=rule.fold_minutes)
                if current is not None and timedelta(0) <= e.time - current.opened_at < fold:
                    self.counts["folded"] += 1
                    continue  # the same call for help, pressed again: the open alert covers it
                out.append(
                    self.fire(
                        st,
                        s,
                        rule,
                        e.event_id,
                        e.time,
                        time=e.received_at,
                        measurement="event",
                        field=str(e.kind),
                        observed_at=e.time,
                        source_id=e.event_id,
                    )
                )
            out += self.watch.on_home_message(st, s.home, e.received_at)
        return out

    # --- gateways and the clock ---------------------------------------------------------------
    def on_status(self, status: GatewayStatus) -> list[AlertDecision]:
        with self.outbox.transaction() as db:
            return self.watch.on_status(State(db), status)

    def on_heartbeat(
        self, home: str, at: datetime, batteries: dict[str, float]
    ) -> list[AlertDecision]:
        with self.outbox.transaction() as db:
            return self.watch.on_heartbeat(State(db), home, at, batteries)

    def tick(self, now: datetime | None = None) -> list[AlertDecision]:
        """Judge missing data and silent gateways as of ``now`` (default: the clock)."""
        with self.outbox.transaction() as db:
            return self.watch.tick(State(db), now or self.clock.now())

    def subjects_of(self, home: str) -> list[Subject]:
        return [s for s in self.subjects.values() if s.home.id == home]


def _fields(r: Reading, field: str) -> dict[str, object]:
    fv = r.fields[field]
    return {
        "time": r.received_at,
        "measurement": str(r.measurement),
        "field": field,
        "value": fv.value,
        "unit": str(fv.unit),
        "observed_at": r.time,
        "flags": r.flags,
        "source_id": r.reading_id,
    }


def _rules_for(rules: list[RuleConfig], p: PatientConfig) -> tuple[RuleConfig, ...]:
    out = []
    for rule in rules:
        override = p.rule_overrides.get(rule.id)
        if override is not None and override.disabled:
            continue
        out.append(effective_rule(rule, override))
    return tuple(out)
