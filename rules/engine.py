"""The rule engine: readings, events and gateway news in, alert decisions out.

Rules are data from the configuration (thresholds, windows, severities); nothing in them is ever
evaluated as code. Each rule's *condition* holds or not per patient; related conditions form one
*episode* (``episode:`` in the rule, issue 14), which is what people are told about: one alert id,
one ACK code, one escalation. The first condition opens the episode (``firing``), a condition of
higher severity raises it (``updated``, one update SMS), and the episode resolves only when its
last condition clears. A rule with ``opens_episode: false`` (a fast fall) never opens one alone.
The state lives in SQLite next to the outbox of decisions, and both change in one transaction: a
crash can neither lose a decision nor repeat one. Readings (``on_reading``) drive threshold and
rate rules; the absence of readings (missing data, a silent gateway, ``rules/watch.py``) is judged
on the engine's clock when messages arrive and on a clock tick.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from homevitals import wire
from homevitals.clock import Clock, SystemClock
from homevitals.config import (
    EventRuleConfig,
    HomeConfig,
    PatientConfig,
    PredictedRuleConfig,
    RateRuleConfig,
    RuleConfig,
    ThresholdRuleConfig,
    effective_rule,
    episode_of,
)
from homevitals.outbox import DurableQueue
from homevitals.readings import (
    SEVERITY_RANK,
    AlertDecision,
    Event,
    GatewayStatus,
    Reading,
)
from homevitals.rules import conditions as cond
from homevitals.rules import predict
from homevitals.rules.device_clock import DeviceClocks
from homevitals.rules.episodes import Episodes, Subject, alert_id
from homevitals.rules.state import SCHEMA, OpenAlert, State
from homevitals.rules.watch import Watch
from homevitals.topics import Topics

__all__ = ["OpenAlert", "RuleEngine", "Subject", "alert_id"]

logger = logging.getLogger(__name__)

_ValueRule = ThresholdRuleConfig | RateRuleConfig


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
        self.device_kinds = {d.id: d.kind for h in homes for d in h.devices}
        self.clocks = DeviceClocks(self.counts)
        self.episodes = Episodes(self.counts, self.emit)
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
    ) -> AlertDecision | None:
        return self.episodes.fire(st, s, rule, source, at, **kw)

    def resolve(
        self, st: State, s: Subject, rule: RuleConfig, current: OpenAlert, why: str, **kw: object
    ) -> AlertDecision | None:
        return self.episodes.resolve(st, s, rule, current, why, **kw)

    # --- readings -----------------------------------------------------------------------------
    def on_reading(self, r: Reading) -> list[AlertDecision]:
        s = self.subjects.get(r.patient)
        if s is None:
            self.counts["unknown_patient"] += 1
            logger.warning(
                "reading %s for unknown patient %s ignored by rules", r.reading_id, r.patient
            )
            return []
        r = self.clocks.judge(r)
        with self.outbox.transaction() as db:
            st = State(db)
            with self.episodes.batch(st) as out:  # one reading, one decision per episode
                for rule in s.rules:
                    if isinstance(rule, ThresholdRuleConfig | RateRuleConfig):
                        self._value_rule(st, s, rule, r)
                    elif isinstance(rule, PredictedRuleConfig):
                        self._predicted(st, s, rule, r)
                self.watch.on_reading(st, s, r)
        return out

    def _sample(self, rule: _ValueRule | PredictedRuleConfig, r: Reading) -> float | None:
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

    def _predicted(
        self, st: State, s: Subject, rule: PredictedRuleConfig, r: Reading
    ) -> AlertDecision | None:
        """Issue 19: the forecast from the CGM's recent stream (``rules/predict.py``)."""
        if self.device_kinds.get(r.device) not in rule.devices:
            return None  # a finger-stick is no part of a CGM's stream
        value = self._sample(rule, r)
        if value is None:
            return None
        w = st.window(r.patient, rule.id)
        if not w.add(cond.Sample(r.time, value, r.reading_id)):
            self.counts["duplicate_reading"] += 1
            return None
        w.prune(*predict.history(rule))
        st.save_window(r.patient, rule.id, w)
        if w.newest.source != r.reading_id:
            return None
        fc, fires = predict.evaluate(rule, w)
        current = st.open_alert(r.patient, rule.id)
        if current is None and fires and fc is not None:
            self.counts["predicted_low"] += 1
            return self.fire(
                st, s, rule, r.reading_id, r.time, **_fields(r, rule.field), trend=fc.trend,
                predicted=fc.value, horizon_minutes=fc.horizon_minutes,
            )
        # Cleared when the forecast is back above clear_at (or, with no forecast possible, the
        # value now is): a gated stream never holds the episode open for good.
        ahead = value if fc is None else fc.value
        if current is not None and r.time >= current.opened_at and ahead >= rule.clear_value:
            why = "no low predicted now"
            return self.resolve(st, s, rule, current, why, **_fields(r, rule.field))
        return None

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
            alone = self._judged_alone(st, s, rule, r)
            fires = cond.breaches(rule, value) if alone else cond.threshold_fires(rule, w)
            if self._in_window(s, rule, r.time) and fires:
                trend = self._trend(st, s, r, rule.field)
                return self.fire(
                    st, s, rule, r.reading_id, r.time, **_fields(r, rule.field), trend=trend
                )
            return None
        if cond.clears(rule, value) and r.time >= current.opened_at:
            return self.resolve(st, s, rule, current, "back in range", **_fields(r, rule.field))
        if not cond.breaches(rule, value):
            self.counts["held_open"] += 1  # within the hysteresis band: no flapping
        return None

    def _trend(self, st: State, s: Subject, r: Reading, field: str) -> float | None:
        """The field's rate of change per minute over the last 15 minutes, for the SMS ("falling
        0.1 mmol/L/min"), from the window a rate rule keeps of it (judged first); None without
        one, or with fewer than three readings in it (a CGM's stream, not a meter's checks)."""
        for rule in s.rules:
            if isinstance(rule, RateRuleConfig) and (rule.measurement, rule.field) == (
                r.measurement, field
            ):
                w = st.window(s.patient.id, rule.id)
                return cond.slope(w, r.time, timedelta(minutes=15))
        return None

    def _judged_alone(self, st: State, s: Subject, rule: ThresholdRuleConfig, r: Reading) -> bool:
        """Is this reading judged without waiting for the rule's sustained condition? Yes for a
        device the sustain is not meant for (a deliberate finger-stick, not a CGM's noise), and
        while a waiving condition holds (a fast fall through the bound is not noise)."""
        kinds = rule.sustain_devices
        if kinds is not None and self.device_kinds.get(r.device) not in kinds:
            return True
        return any(st.open_alert(s.patient.id, w) is not None for w in rule.sustain_waived_by)

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
            trend = self._trend(st, s, r, rule.field)
            return self.fire(
                st, s, rule, r.reading_id, r.time, **_fields(r, rule.field), trend=trend
            )
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
                if current is not None:
                    self._forget_event(st, s, rule, current)
                d = self.fire(
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
                if d is not None:
                    out.append(d)
            out += self.watch.on_home_message(st, s.home, self.clock.now())
        return out

    def _forget_event(
        self, st: State, s: Subject, rule: EventRuleConfig, current: OpenAlert
    ) -> None:
        """A press after the fold time is a new call for help, a new alert: an event has no
        all clear, so its old episode ends here, silently (as it always has)."""
        st.close(s.patient.id, rule.id)
        if not st.holding(s.patient.id, current.alert_id):
            st.close_episode(s.patient.id, episode_of(rule))

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
    """The patient's rules in the order a reading is judged: rules that never open an episode
    first (so a fast fall is known before the low it waives the wait for), then by severity,
    highest first (so a reading at 2.8 opens the low episode at level 2, not 1 then 2)."""
    out = []
    for rule in rules:
        override = p.rule_overrides.get(rule.id)
        if override is not None and override.disabled:
            continue
        out.append(effective_rule(rule, override))
    out.sort(key=lambda r: (getattr(r, "opens_episode", True), -SEVERITY_RANK[r.severity]))
    return tuple(out)
