"""The window of recent samples a rule judges, and the slope the SMS trend is taken from; each
kind's own arithmetic (bounds, hysteresis, sustained conditions, rates) is in ``rules/kinds/``.

A rule sees a short, time-ordered window of recent samples of one field for one patient. The
window is stored with the rule state (``rules/state.py``) and pruned to what the rule can still
use, so it stays a few dozen numbers however long the engine runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals.vocab import wire

__all__ = ["Sample", "Window", "slope"]


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
