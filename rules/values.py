"""What the rules on values (threshold, rate, predicted) share: taking a rule's sample from a
reading, the window of recent samples kept per patient and rule, the rule's time window in the
patient's zone, and the fields of a reading an alert decision carries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from homevitals.rules.conditions import Sample, Window, slope
from homevitals.vocab.readings import Measurement, Reading
from homevitals.vocab.units import Unit

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import State
    from homevitals.vocab.config_base import TimeWindow

__all__ = ["Measured", "fields", "in_window", "sample", "trend", "updated_window"]

logger = logging.getLogger(__name__)


class Measured(Protocol):
    """A rule on one field of one measurement, in one unit."""

    @property
    def id(self) -> str: ...
    @property
    def measurement(self) -> Measurement: ...
    @property
    def field(self) -> str: ...
    @property
    def unit(self) -> Unit: ...


def sample(engine: RuleEngine, rule: Measured, r: Reading) -> float | None:
    """The rule's value in ``r`` (None: not this rule's field, or in another unit)."""
    if r.measurement != rule.measurement or rule.field not in r.fields:
        return None
    fv = r.fields[rule.field]
    if fv.unit != rule.unit:
        engine.counts["unit_mismatch"] += 1
        logger.error(
            "rule %s expects %s but reading %s has %s", rule.id, rule.unit, r.reading_id, fv.unit
        )
        return None
    return fv.value


def updated_window(
    engine: RuleEngine, st: State, rule: Measured, r: Reading, value: float,
    history: tuple[timedelta, int],
) -> Window | None:
    """The rule's window with ``r`` added, pruned to ``history`` and saved; None when there is
    nothing to judge: a redelivered reading (already judged), or a late one that only fills in
    history (the newest reading was judged already)."""
    w = st.window(r.patient, rule.id)
    if not w.add(Sample(r.time, value, r.reading_id)):
        engine.counts["duplicate_reading"] += 1
        return None
    w.prune(*history)
    st.save_window(r.patient, rule.id, w)
    if w.newest.source != r.reading_id:
        return None
    return w


def in_window(s: Subject, window: TimeWindow | None, t: datetime) -> bool:
    """Is ``t`` within the rule's time window, in the patient's home zone?"""
    return window is None or window.contains(t.astimezone(s.home.zone).time())


def trend(st: State, s: Subject, r: Reading, field: str) -> float | None:
    """The field's rate of change per minute over the last 15 minutes, for the SMS ("falling
    0.1 mmol/L/min"), from the window a rate rule keeps of it (judged first); None without
    one, or with fewer than three readings in it (a CGM's stream, not a meter's checks)."""
    for rule in s.rules:
        if rule.keeps_trend(r.measurement, field):
            w = st.window(s.patient.id, rule.id)
            return slope(w, r.time, timedelta(minutes=15))
    return None


def fields(r: Reading, field: str) -> dict[str, object]:
    """What an alert decision on ``r.field`` tells of the reading."""
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
