"""``predicted`` (issue 19): a forecast of CGM glucose, which fires when the value
``horizon_minutes`` ahead is below ``below`` while the value now is not. The forecasting
arithmetic is kept free of I/O.

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
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from homevitals.rules import values
from homevitals.rules.conditions import Sample, Window
from homevitals.rules.kinds.base import RuleModel
from homevitals.vocab.readings import Measurement, Severity
from homevitals.vocab.units import MGDL_PER_MMOLL, Unit

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import State
    from homevitals.vocab.readings import AlertDecision, Reading

__all__ = [
    "AR", "MODEL", "PREDICTORS", "Forecast", "PredictedRuleConfig", "ar2", "evaluate", "gate",
    "history", "linear",
]


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


class PredictedRuleConfig(RuleModel):
    """Fires when the forecast ``horizon_minutes`` ahead is below ``below`` while the value now
    is not; does nothing when the stream is too sparse or noisy to forecast from."""

    rank = 6

    kind: Literal["predicted"]
    measurement: Measurement = Measurement.GLUCOSE
    field: str = "glucose"
    unit: Unit = Unit.MMOL_PER_L
    below: float = Field(3.0, gt=0, description="the predicted value that fires")
    clear_at: float | None = Field(
        None, description="resolve once the forecast is back to here (default: below + 0.9)"
    )
    horizon_minutes: float = Field(20.0, ge=5, le=60, description="how far ahead to forecast")
    predictor: Literal["linear", "ar2"] = Field(
        "ar2", description="linear: least-squares trend; ar2: Nightscout's AR2 forecast"
    )
    span_minutes: float = Field(20.0, ge=10, le=60, description="history the linear fit uses")
    max_gap_minutes: float = Field(
        10.0, gt=0, description="a longer silence between readings breaks the stream"
    )
    settle_minutes: float = Field(
        30.0, ge=0,
        description="the stream must have run unbroken this long (a new sensor warming up,"
        " a reconnection) before anything is forecast",
    )
    max_step: float = Field(
        0.3, gt=0,
        description="mmol/L per minute: a faster change between two readings is not physiology"
        " (a compression low, a sensor glitch); no forecast across it",
    )
    confirm_readings: int = Field(
        1, ge=1, le=6, description="the forecast must be low on this many readings in a row"
    )
    now_below: float | None = Field(
        None, gt=0,
        description="forecast only while the value now is below this (a fall after a meal"
        " bolus from high values is the insulin working, not a low coming)",
    )
    devices: list[str] = Field(["cgm"], description="device kinds whose readings are used")
    severity: Severity = Severity.MEDIUM
    opens_episode: bool = Field(True, description="false: only joins an open episode")

    @model_validator(mode="after")
    def _clear(self) -> PredictedRuleConfig:
        if self.clear_at is not None and self.clear_at < self.below:
            raise ValueError(f"rule {self.id}: clear_at must be >= below ({self.below})")
        return self

    @property
    def clear_value(self) -> float:
        return self.clear_at if self.clear_at is not None else self.below + 0.9

    def opens(self) -> bool:
        return self.opens_episode

    def on_reading(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading
    ) -> AlertDecision | None:
        """The forecast from the CGM's recent stream (a finger-stick is no part of it)."""
        if engine.device_kinds.get(r.device) not in self.devices:
            return None
        value = values.sample(engine, self, r)
        if value is None:
            return None
        w = values.updated_window(engine, st, self, r, value, history(self))
        if w is None:
            return None
        fc, fires = evaluate(self, w)
        current = st.open_alert(r.patient, self.id)
        if current is None and fires and fc is not None:
            engine.counts["predicted_low"] += 1
            return engine.fire(
                st, s, self, r.reading_id, r.time, **values.fields(r, self.field), trend=fc.trend,
                predicted=fc.value, horizon_minutes=fc.horizon_minutes,
            )
        # Cleared when the forecast is back above clear_at (or, with no forecast possible, the
        # value now is): a gated stream never holds the episode open for good.
        ahead = value if fc is None else fc.value
        if current is not None and r.time >= current.opened_at and ahead >= self.clear_value:
            why = "no low predicted now"
            return engine.resolve(st, s, self, current, why, **values.fields(r, self.field))
        return None


MODEL = PredictedRuleConfig
