"""Forecasting CGM glucose for the ``predicted`` rule (issue 19), kept free of I/O.

Two predictors behind one interface, ``forecast(samples, horizon) -> value``, chosen per rule:

- ``linear``: the least-squares trend of the readings over the last ``span_minutes``, extended
  from the newest reading ``horizon`` minutes ahead (what a CGM's trend arrow implies).
- ``ar2``: Nightscout's AR2 forecast (nightscout/cgm-remote-monitor, ``lib/plugins/ar2.js``). It
  works in log space, ``x = ln(BG / 140 mg/dL)``, on the newest reading and the value 5 minutes
  before it (interpolated, as Nightscout's ``delta`` plugin does), and steps 5 minutes at a time
  with ``x[k+1] = -0.723 * x[k-1] + 1.716 * x[k]``; a point is ``140 * exp(x)`` mg/dL, clamped
  to 36..400 mg/dL. Nightscout raises its "low predicted" alarm from the point 20 minutes ahead
  (4 steps). Here a horizon that is not a multiple of 5 minutes is interpolated between steps,
  and the value is kept unrounded in mmol/L.

``gate`` refuses to forecast from a stream that cannot carry one: too few readings, a gap
longer than ``max_gap_minutes``, a jump faster than ``max_step`` mmol/L per minute between two
readings (a compression low: a sensor pressed on in sleep reads a sudden, false fall), or a
stream that has not yet run unbroken for ``settle_minutes`` (a new sensor warming up, a
reconnection after a gap).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from homevitals.predicted_rule import PredictedRuleConfig
from homevitals.rules.conditions import Sample, Window
from homevitals.units import MGDL_PER_MMOLL

__all__ = ["AR", "Forecast", "PREDICTORS", "ar2", "evaluate", "gate", "linear"]

AR = (-0.723, 1.716)  # Nightscout ar2.js: x[k+1] = AR[0] * x[k-1] + AR[1] * x[k]
_BG_REF, _BG_MIN, _BG_MAX = 140.0, 36.0, 400.0  # mg/dL, ar2.js
_STEP = 5.0  # minutes per AR2 step
_MIN = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Forecast:
    value: float  # predicted, in the rule's unit
    now: float  # the newest reading
    trend: float | None  # per minute, least squares over the last 15 minutes
    horizon_minutes: float


Predictor = Callable[[Sequence[Sample], float, float], float | None]


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a) / _MIN


def _fit(samples: Sequence[Sample]) -> tuple[float, float] | None:
    """Least squares ``value = a + b * minutes`` (minutes from the newest sample)."""
    if len(samples) < 2:
        return None
    t0 = samples[-1].time
    xs = [_minutes(t0, s.time) for s in samples]
    mx, my = sum(xs) / len(xs), sum(s.value for s in samples) / len(samples)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    b = sum((x - mx) * (s.value - my) for x, s in zip(xs, samples, strict=True)) / sxx
    return my - b * mx, b


def linear(samples: Sequence[Sample], horizon: float, span: float) -> float | None:
    """The trend over the last ``span`` minutes, ``horizon`` minutes past the newest reading."""
    now = samples[-1].time
    pts = [s for s in samples if _minutes(s.time, now) <= span]
    if len(pts) < 3:
        return None
    fit = _fit(pts)
    if fit is None:
        return None
    a, b = fit
    return a + b * horizon


def _five_minutes_ago(samples: Sequence[Sample]) -> float | None:
    """The value 5 minutes before the newest, by linear interpolation between the two newest
    readings (Nightscout's delta plugin: ``mgdl5MinsAgo``)."""
    prev, cur = samples[-2], samples[-1]
    gap = _minutes(prev.time, cur.time)
    if gap <= 0:
        return None
    return cur.value - (cur.value - prev.value) * _STEP / gap


def ar2(samples: Sequence[Sample], horizon: float, span: float = 0.0) -> float | None:
    """Nightscout's AR2 forecast ``horizon`` minutes ahead, in mmol/L (``span`` is unused)."""
    if len(samples) < 2:
        return None
    before = _five_minutes_ago(samples)
    cur = samples[-1].value * MGDL_PER_MMOLL
    if before is None or cur < _BG_MIN or before * MGDL_PER_MMOLL < _BG_MIN:
        return None  # ar2.js okToForecast: both points at least 36 mg/dL
    prev_x, x = math.log(before * MGDL_PER_MMOLL / _BG_REF), math.log(cur / _BG_REF)
    points = [x]
    for _ in range(math.ceil(horizon / _STEP)):
        prev_x, x = x, AR[0] * prev_x + AR[1] * x
        points.append(x)
    k, frac = divmod(horizon / _STEP, 1.0)
    lo = points[int(k)]
    hi = points[min(int(k) + 1, len(points) - 1)]
    mgdl = _BG_REF * math.exp(lo + (hi - lo) * frac)
    return min(_BG_MAX, max(_BG_MIN, mgdl)) / MGDL_PER_MMOLL


PREDICTORS: dict[str, Predictor] = {"linear": linear, "ar2": ar2}


def gate(rule: PredictedRuleConfig, samples: Sequence[Sample]) -> str | None:
    """Why the stream cannot carry a forecast (None: it can)."""
    if len(samples) < 3:
        return "too few readings"
    now = samples[-1].time
    if _minutes(samples[-2].time, now) > rule.max_gap_minutes:
        return "gap"
    start = samples[-1]
    for a, b in zip(reversed(samples[:-1]), reversed(samples[1:]), strict=True):
        gap = _minutes(a.time, b.time)
        if gap > rule.max_gap_minutes:
            break
        recent = _minutes(b.time, now) <= max(rule.span_minutes, _STEP)
        if recent and gap > 0 and abs(b.value - a.value) / gap > rule.max_step:
            return "jump"
        start = a
    if _minutes(start.time, now) < rule.settle_minutes:
        return "warm-up"
    return None


def _forecast_at(rule: PredictedRuleConfig, samples: Sequence[Sample]) -> Forecast | None:
    if gate(rule, samples) is not None:
        return None
    value = PREDICTORS[rule.predictor](samples, rule.horizon_minutes, rule.span_minutes)
    if value is None:
        return None
    now = samples[-1].time
    recent = [s for s in samples if _minutes(s.time, now) <= 15]
    fit = _fit(recent) if len(recent) >= 3 else None
    return Forecast(value, samples[-1].value, None if fit is None else fit[1],
                    rule.horizon_minutes)


def evaluate(rule: PredictedRuleConfig, w: Window) -> tuple[Forecast | None, bool]:
    """The forecast as of the newest sample, and whether the rule fires on it: the forecast is
    below the bound, the value now is not (that is the threshold rules' job), glucose is
    falling, the value now is below ``now_below`` (when set), and so it has been on the last
    ``confirm_readings`` readings."""
    samples = w.samples
    fc = _forecast_at(rule, samples)
    if fc is None:
        return None, False
    for back in range(rule.confirm_readings):
        f = fc if back == 0 else _forecast_at(rule, samples[: len(samples) - back])
        if f is None or not _low(rule, f):
            return fc, False
    return fc, True


def _low(rule: PredictedRuleConfig, f: Forecast) -> bool:
    if rule.now_below is not None and f.now >= rule.now_below:
        return False
    return f.value < rule.below <= f.now and (f.trend is None or f.trend < 0)


def history(rule: PredictedRuleConfig) -> tuple[timedelta, int]:
    """What the window must keep: the settle time (a new stream) or the fit, whichever longer,
    plus the readings ``confirm_readings`` looks back over."""
    minutes = max(rule.settle_minutes, rule.span_minutes) + _STEP * rule.confirm_readings
    return timedelta(minutes=minutes), 3 + rule.confirm_readings
