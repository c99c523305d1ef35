"""The rule engine: readings, events and gateway news in, alert decisions out.

Rules are data from the configuration (thresholds, windows, severities); nothing in them is ever
evaluated as code. Each rule's *condition* holds or not per patient; related conditions form one
*episode* (``episode:`` in the rule, issue 14), which is what people are told about: one alert id,
one ACK code, one escalation. The first condition opens the episode (``firing``), a condition of
higher severity raises it (``updated``, one update SMS), and the episode resolves only when its
last condition clears. A rule with ``opens_episode: false`` (a fast fall) never opens one alone.
The state lives next to the outbox of decisions (SQLite, or PostgreSQL: ``rules/store.py``), and
both change in one transaction: a crash can neither lose a decision nor repeat one. Each rule
judges what it cares about through its kind's hooks (``rules/kinds/``): readings (``on_reading``:
thresholds, rates, forecasts), events; the absence of readings (missing data, a silent gateway,
``rules/watch.py``) is judged on the engine's clock when messages arrive and when a check comes
due (``run_due``, driven by the one timer in ``rules/timers.py``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from homevitals.rules.device_clock import DeviceClocks
from homevitals.rules.episodes import Episodes, Subject, alert_id
from homevitals.rules.kinds import RuleConfig, RuleModel, effective_rule
from homevitals.rules.state import SCHEMA, DecisionOutbox, OpenAlert, State
from homevitals.rules.watch import Watch
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock, SystemClock
from homevitals.vocab.config import HomeConfig, PatientConfig
from homevitals.vocab.readings import (
    SEVERITY_RANK,
    AlertDecision,
    Event,
    GatewayStatus,
    Reading,
)
from homevitals.vocab.topics import Topics

__all__ = ["OpenAlert", "RuleEngine", "Subject", "alert_id"]

logger = logging.getLogger(__name__)


class RuleEngine:
    def __init__(
        self,
        rules: list[RuleConfig],
        homes: list[HomeConfig],
        outbox: DecisionOutbox,
        topics: Topics,
        clock: Clock | None = None,
        owner: str = "rules",
    ) -> None:
        self.subjects = {
            p.id: Subject(h, p, _rules_for(rules, p)) for h in homes for p in h.patients
        }
        self.homes = {p.id: h for h in homes for p in h.patients}  # kept for callers
        self.outbox = outbox
        self.topics = topics
        self.clock = clock or SystemClock()
        self.owner = owner  # this worker's name on the due checks it keeps
        self.owned: set[str] | None = None  # None: every patient (one worker); ``take_over``
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
        self, st: State, s: Subject, rule: RuleModel, source: str, at: datetime, **kw: object
    ) -> AlertDecision | None:
        return self.episodes.fire(st, s, rule, source, at, **kw)

    def resolve(
        self, st: State, s: Subject, rule: RuleModel, current: OpenAlert, why: str, **kw: object
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
                for rule in s.rules:  # each kind judges the readings it cares about
                    rule.on_reading(self, st, s, r)
                self.watch.on_reading(st, s, r)
        return out

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
                d = rule.on_event(self, st, s, e)
                if d is not None:
                    out.append(d)
            out += self.watch.on_home_message(st, s.home, self.clock.now())
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

    def run_due(self, now: datetime | None = None) -> list[AlertDecision]:
        """Judge the homes whose silence checks (this worker's) are due at ``now``."""
        now = now or self.clock.now()
        out: list[AlertDecision] = []
        with self.outbox.transaction() as db:
            st = State(db)
            due = set(st.due_patients(now, self.owner))
            for s in self.subjects.values():  # in the configured order, as the tick judges
                if s.patient.id in due and self.owns(s.patient.id):
                    out += self.watch.judge_due(st, s, now)
        return out

    def next_due(self) -> datetime | None:
        """When this worker's earliest silence check is due (None: it keeps none)."""
        with self.outbox.transaction() as db:
            return State(db).next_due(self.owner)

    def take_over(self, patients: Iterable[str] | None = None) -> list[Subject]:
        """This worker now owns ``patients`` (None: every configured patient; unknown ids are
        ignored): their state is read from the database from here on (what memory held of
        them is dropped), and their silence checks become this worker's, scheduled from that
        state. Returns the subjects taken. ``RulesApp.take_over`` adds their pending decisions."""
        wanted = [self.subjects[p] for p in (self.subjects if patients is None else patients)
                  if p in self.subjects]
        homes = {s.home.id: s.home for s in wanted}
        now = self.clock.now()
        with self.outbox.transaction() as db:  # the lock the message handlers hold too
            if patients is None:
                self.owned = None
            else:
                self.owned = (self.owned or set()) | {s.patient.id for s in wanted}
            self.watch.forget({s.patient.id for s in wanted}, set(homes))
            st = State(db)
            for home in homes.values():
                self.watch.schedule(st, home, now, force=True, judged=False)
        return wanted

    def give_up(self, patients: Iterable[str]) -> None:
        """Another worker owns ``patients`` now: stop scheduling and judging their checks."""
        with self.outbox.transaction():
            mine = set(self.subjects) if self.owned is None else self.owned
            self.owned = mine - set(patients)

    def owns(self, patient: str) -> bool:
        return self.owned is None or patient in self.owned

    def subjects_of(self, home: str) -> list[Subject]:
        return [s for s in self.subjects.values() if s.home.id == home]


def _rules_for(rules: list[RuleConfig], p: PatientConfig) -> tuple[RuleModel, ...]:
    """The patient's rules in the order a reading is judged: rules that never open an episode
    first (so a fast fall is known before the low it waives the wait for), then by severity,
    highest first (so a reading at 2.8 opens the low episode at level 2, not 1 then 2)."""
    out = []
    for rule in rules:
        override = p.rule_overrides.get(rule.id)
        if override is not None and override.disabled:
            continue
        out.append(effective_rule(rule, override))
    out.sort(key=lambda r: (r.opens(), -SEVERITY_RANK[r.severity]))
    return tuple(out)
