"""Conditions into episodes into decisions (issue 14).

A rule's *condition* holds or not, per patient (``open_alerts`` in ``rules/state.py``). Related
conditions form one *episode* (``episode:`` in the rule; a rule naming none is an episode of its
own): the glucose lows, a hypertensive crisis. People are told about episodes, never about rules:

- the first condition opens the episode: ``firing``, with a new alert id;
- a condition of higher severity raises it: ``updated`` (one update SMS, the escalation re-timed),
  never a second alert; one of equal or lower severity joins it silently, except a rule with
  ``announce_join`` of the same severity (an urgent low): ``updated`` at that severity, no SMS of
  its own, on which a route may page the doctor at once (``doctor_at_once_rules``);
- a rule with ``opens_episode: false`` (a fast fall) never opens one: its condition waits,
  unattached, and joins the episode when another condition opens it;
- the episode resolves (``resolved``, the one all clear) only when its last condition clears;
- when the conditions of its severity clear while others hold (level 2 back at level 1), it
  falls: ``updated`` with the lower severity (issue 14, fifth round), which the alerts stage
  records without an SMS and which ends the steps of the higher severity's chain.

Within one reading the decisions are collected and emitted together (``batch``), so each lists
every condition that holds after the whole reading was judged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from homevitals.rules.kinds.base import RuleModel, episode_of
from homevitals.rules.state import OpenAlert, State
from homevitals.vocab.readings import SEVERITY_RANK, AlertDecision, AlertState, Severity

if TYPE_CHECKING:
    from homevitals.vocab.config import HomeConfig, PatientConfig

__all__ = ["Episodes", "Subject", "alert_id"]

logger = logging.getLogger(__name__)


def alert_id(patient: str, episode: str, source: str) -> str:
    """Stable for one episode: the same patient, episode and opening reading give the same id
    (a rule of no named episode is an episode of its own, named by the rule's id)."""
    return "a" + hashlib.sha256(f"{patient}\x1f{episode}\x1f{source}".encode()).hexdigest()[:31]


@dataclass(frozen=True, slots=True)
class Subject:
    """One patient with the rules that apply to them (shared rules with their overrides)."""

    home: HomeConfig
    patient: PatientConfig
    rules: tuple[RuleModel, ...]


class Episodes:
    def __init__(
        self, counts: Counter[str], emit: Callable[[State, AlertDecision], None]
    ) -> None:
        self.counts = counts
        self.emit = emit
        self._deferred: list[AlertDecision] | None = None
        self._fell: dict[str, Severity] = {}  # alert id: its severity before a fall (``batch``)

    @contextmanager
    def batch(self, st: State) -> Iterator[list[AlertDecision]]:
        """Hold the decisions made inside; emit them at the end with the conditions that hold
        then (a crisis confirmed on systolic and diastolic by one reading lists both)."""
        out: list[AlertDecision] = []
        self._deferred = []
        try:
            yield out
        finally:
            held, self._deferred = self._deferred, None
            fell, self._fell = self._fell, {}
        over = {d.alert_id for d in held if d.state == AlertState.RESOLVED}
        for d in held:
            if d.alert_id in over and d.alert_id in fell:
                if d.state == AlertState.UPDATED:
                    continue  # fell and then cleared in one reading: the all clear alone,
                d = replace(d, severity=fell[d.alert_id])  # at the severity it had before
            if d.state != AlertState.RESOLVED:
                d = replace(d, conditions=tuple(st.holding(d.patient, d.alert_id)))
            self.emit(st, d)
            out.append(d)

    def _emit(self, st: State, d: AlertDecision) -> None:
        if self._deferred is not None:
            self._deferred.append(d)
        else:
            self.emit(st, d)

    def fire(
        self, st: State, s: Subject, rule: RuleModel, source: str, at: datetime, **kw: object
    ) -> AlertDecision | None:
        """The rule's condition now holds: open its episode, raise it, or join it quietly."""
        pid, name = s.patient.id, episode_of(rule)
        ep = st.episode(pid, name)
        if ep is None:
            if not rule.opens():
                st.open(pid, rule.id, "", at)  # holds, waiting for an episode to join
                self.counts["pending"] += 1
                return None
            aid = alert_id(pid, name, source)
            st.open_episode(pid, name, aid, at, str(rule.severity), rule.id)
            st.open(pid, rule.id, aid, at)
            st.adopt(pid, aid, [r.id for r in s.rules if episode_of(r) == name])
            state = AlertState.FIRING
        else:
            aid = ep.alert_id
            st.open(pid, rule.id, aid, at)
            if SEVERITY_RANK[rule.severity] <= SEVERITY_RANK[Severity(ep.severity)]:
                self.counts["joined"] += 1
                if not (rule.announces_join() and rule.severity == Severity(ep.severity)) or (
                    self._deferred is not None and any(x.alert_id == aid for x in self._deferred)
                ):  # silent; or told already by this reading's decision, which names it
                    return None
                # Announced (an urgent low joining a level-2 episode): an update of the same
                # severity, which the alerts stage may act on (``doctor_at_once_rules``).
            else:
                st.raise_episode(pid, name, str(rule.severity), rule.id)
            state = AlertState.UPDATED
        held = tuple(st.holding(pid, aid))
        d = self._decision(aid, state, s, rule, rule.reason, rule.severity, name, held, **kw)
        self._emit(st, d)
        return d

    def resolve(
        self, st: State, s: Subject, rule: RuleModel, current: OpenAlert, why: str, **kw: object
    ) -> AlertDecision | None:
        """The rule's condition cleared; its episode resolves when nothing else in it holds."""
        pid, name = s.patient.id, episode_of(rule)
        st.close(pid, rule.id)
        if not current.alert_id:
            return None  # it never joined an episode
        held = st.holding(pid, current.alert_id)
        if held:
            self.counts["held_by_episode"] += 1  # no all clear while anything still holds
            return self._fall(st, s, name, current.alert_id, held, why, **kw)
        ep = st.episode(pid, name)
        severity = rule.severity if ep is None else Severity(ep.severity)
        st.close_episode(pid, name)
        d = self._decision(
            current.alert_id, AlertState.RESOLVED, s, rule, f"{rule.reason}: {why}", severity,
            name, (), **kw,
        )
        self._emit(st, d)
        return d

    def _fall(
        self, st: State, s: Subject, name: str, aid: str, held: list[str], why: str,
        **kw: object,
    ) -> AlertDecision | None:
        """The episode's severity falls to the highest that still holds, if lower: an update
        of lower severity (no SMS; the alerts stage stops the higher chain's steps)."""
        pid = s.patient.id
        ep = st.episode(pid, name)
        rules = [r for r in s.rules if r.id in held]
        if ep is None or not rules:
            return None
        top = max(rules, key=lambda r: SEVERITY_RANK[r.severity])
        if SEVERITY_RANK[top.severity] >= SEVERITY_RANK[Severity(ep.severity)]:
            return None
        st.raise_episode(pid, name, str(top.severity), top.id)
        if self._deferred is not None:
            self._fell.setdefault(aid, Severity(ep.severity))
        self.counts["fell"] += 1
        reason = f"{top.reason}: the higher level cleared ({why})"
        d = self._decision(
            aid, AlertState.UPDATED, s, top, reason, top.severity, name, tuple(held), **kw
        )
        self._emit(st, d)
        return d

    def _decision(
        self,
        aid: str,
        state: AlertState,
        s: Subject,
        rule: RuleModel,
        reason: str,
        severity: Severity,
        episode: str,
        conditions: tuple[str, ...],
        **kw: object,
    ) -> AlertDecision:
        return AlertDecision(
            alert_id=aid,
            state=state,
            home=s.home.id,
            patient=s.patient.id,
            rule=rule.id,
            severity=severity,
            reason=reason,
            episode=episode,
            conditions=conditions,
            **kw,  # type: ignore[arg-type]  # the optional AlertDecision fields, by name
        )
