"""The arithmetic of rules, kept free of I/O: bounds, hysteresis, sustained conditions, rates.

A rule sees a short, time-ordered window of recent samples of one field for one patient. The
window is stored with the rule state (``rules/state.py``) and pruned to what the rule can still
use, so it stays a few dozen numbers however long the engine runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals import wire
from homevitals.config import RateRuleConfig, ThresholdRuleConfig

__all__ = [
    "Sample", "Window", "breaches", "clears", "rate_change", "slope", "threshold_fires"
]


@dataclass(frozen=True, slots=True)
class Sample:
    time: datetime
    value: float
    source: str  # the reading id: a redelivered reading is never counted twice


class Window:
    """Samples ordered by the time they were measured (late deliveries slot into place)."""

    def __init__(self, samples: list[Sample] | None = None) -> None:
        self.samples = sorted(samples or [], key=lambda s: s.time)

    def add(self, s: Sample) -> bool:
        """False if this reading is already in the window (MQTT redelivery)."""
        if any(x.source == s.source for x in self.samples):
            return False
        self.samples.append(s)
        self.samples.sort(key=lambda x: x.time)
        return True

    @property
    def newest(self) -> Sample:
        return self.samples[-1]

    def prune(self, horizon: timedelta, keep_last: int) -> None:
        if not self.samples:
            return
        since = self.newest.time - horizon
        cut = max(0, len(self.samples) - keep_last)
        self.samples = [s for i, s in enumerate(self.samples) if i >= cut or s.time >= since]

    def dumps(self) -> str:
        return json.dumps([[wire.format_time(s.time), s.value, s.source] for s in self.samples])

    @classmethod
    def loads(cls, text: str) -> Window:
        return cls(
            [Sample(wire.parse_time(t, "window"), float(v), str(i)) for t, v, i in json.loads(text)]
        )


def breaches(rule: ThresholdRuleConfig, value: float) -> bool:
    if rule.below is not None:
        return value < rule.below
    return rule.above is not None and value > rule.above


def clears(rule: ThresholdRuleConfig, value: float) -> bool:
    """Back in range, past the hysteresis band (``clear_at``), so a hovering value cannot flap."""
    if rule.below is not None:
        return value >= (rule.clear_at if rule.clear_at is not None else rule.below)
    assert rule.above is not None
    return value <= (rule.clear_at if rule.clear_at is not None else rule.above)


def needs_history(rule: ThresholdRuleConfig) -> bool:
    """A plain bound judges each reading alone; only sustained conditions keep a window."""
    return any(x is not None for x in (rule.n_of_m, rule.for_minutes, rule.confirm_within_minutes))


def threshold_horizon(rule: ThresholdRuleConfig) -> tuple[timedelta, int]:
    """How much history the rule needs: (time span, number of samples)."""
    minutes = max(2 * (rule.for_minutes or 0.0), rule.confirm_within_minutes or 0.0)
    return timedelta(minutes=minutes), (rule.n_of_m.m if rule.n_of_m else 2)


def _streak(rule: ThresholdRuleConfig, w: Window) -> list[Sample]:
    """The newest run of consecutive breaching samples, oldest first."""
    run: list[Sample] = []
    for s in reversed(w.samples):
        if not breaches(rule, s.value):
            break
        run.append(s)
    return run[::-1]


def threshold_fires(rule: ThresholdRuleConfig, w: Window) -> bool:
    """Does the window, as of its newest sample, meet the rule's condition?"""
    if not w.samples or not breaches(rule, w.newest.value):
        return False
    if rule.n_of_m is not None:
        last = w.samples[-rule.n_of_m.m :]
        return sum(breaches(rule, s.value) for s in last) >= rule.n_of_m.n
    streak = _streak(rule, w)
    if rule.for_minutes is not None:
        return w.newest.time - streak[0].time >= timedelta(minutes=rule.for_minutes)
    if rule.confirm_within_minutes is not None:
        # A second breaching reading soon after the first confirms it (e.g. a repeated blood
        # pressure measurement after 5 minutes of rest, ESC/ESH 2018 section 4.3).
        within = timedelta(minutes=rule.confirm_within_minutes)
        return len(streak) >= 2 and w.newest.time - streak[-2].time <= within
    return True


def rate_change(rule: RateRuleConfig, w: Window) -> float | None:
    """The fall (or rise) to the newest sample from the extreme within the rule's span, when it
    exceeds the rule's amount; else None."""
    if len(w.samples) < 2:
        return None
    now = w.newest
    since = now.time - timedelta(minutes=rule.within_minutes)
    earlier = [s.value for s in w.samples[:-1] if s.time >= since]
    if not earlier:
        return None
    if rule.fall is not None:
        change = max(earlier) - now.value
        return change if change > rule.fall else None
    assert rule.rise is not None
    change = now.value - min(earlier)
    return change if change > rule.rise else None


def slope(w: Window, now: datetime, span: timedelta, at_least: int = 3) -> float | None:
    """Least-squares rate of change per minute over the samples in ``(now - span, now]``; None
    with fewer than ``at_least`` of them (a CGM has three in 15 minutes; a meter never does)."""
    pts = [s for s in w.samples if now - span <= s.time <= now]
    if len(pts) < at_least:
        return None
    xs = [(s.time - pts[0].time) / timedelta(minutes=1) for s in pts]
    mx, my = sum(xs) / len(xs), sum(s.value for s in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (s.value - my) for x, s in zip(xs, pts, strict=True)) / sxx
