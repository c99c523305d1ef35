"""``threshold``: a value below or above a bound, with hysteresis (``clear_at``) and, when set, a
sustained condition: ``for_minutes``, ``n_of_m`` or a confirming second reading
(``confirm_within_minutes``). A plain bound judges each reading alone; only a sustained condition
keeps a window of recent samples (``rules/state.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from homevitals.rules import values
from homevitals.rules.conditions import Sample, Window
from homevitals.rules.kinds.base import Problem, RuleModel
from homevitals.vocab.config_base import DeviceKind, Model, TimeWindow
from homevitals.vocab.readings import Measurement
from homevitals.vocab.units import Unit

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import OpenAlert, State
    from homevitals.vocab.readings import AlertDecision, Reading

__all__ = ["MODEL", "NOfM", "ThresholdRuleConfig"]


class NOfM(Model):
    """At least ``n`` of the last ``m`` readings breach the bound."""

    n: int = Field(ge=1)
    m: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _n_le_m(self) -> NOfM:
        if self.n > self.m:
            raise ValueError(f"n_of_m: n ({self.n}) cannot exceed m ({self.m})")
        return self


class ThresholdRuleConfig(RuleModel):
    rank = 0

    kind: Literal["threshold"]
    measurement: Measurement
    field: str
    below: float | None = None
    above: float | None = None
    unit: Unit
    window: TimeWindow | None = None
    # Issue 6 (docs/rules-and-alerts.md): hysteresis, sustained conditions, confirmation.
    clear_at: float | None = Field(
        None, description="resolve only once the value is back to here (default: the bound)"
    )
    for_minutes: float | None = Field(None, gt=0, description="breached for at least this long")
    n_of_m: NOfM | None = None
    confirm_within_minutes: float | None = Field(
        None, gt=0, description="fire on a second breaching reading within this time"
    )
    sustain_devices: list[DeviceKind] | None = Field(
        None,
        description="apply for_minutes / n_of_m only to readings from these device kinds"
        " (a CGM); a reading from any other device (a finger-stick) is judged alone",
    )
    opens_episode: bool = Field(True, description="false: only joins an open episode")
    announce_join: bool = Field(
        False, description="joining an open episode of the same severity sends an update (an"
        " urgent low while the doctor's first SMS waits: the route may page the doctor now)",
    )
    fire_devices: list[DeviceKind] | None = Field(
        None, description="fire only on readings from these device kinds (a finger-stick); a"
        " reading from any device may clear it",
    )
    sustain_waived_by: list[str] = Field(
        [], description="rule ids: while one of their conditions holds, do not wait to sustain"
    )

    @model_validator(mode="after")
    def _one_bound(self) -> ThresholdRuleConfig:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"rule {self.id}: give exactly one of 'below' or 'above'")
        if self.clear_at is not None:
            if self.below is not None and self.clear_at < self.below:
                raise ValueError(f"rule {self.id}: clear_at must be >= below ({self.below})")
            if self.above is not None and self.clear_at > self.above:
                raise ValueError(f"rule {self.id}: clear_at must be <= above ({self.above})")
        given = [self.for_minutes, self.n_of_m, self.confirm_within_minutes]
        if sum(g is not None for g in given) > 1:
            raise ValueError(
                f"rule {self.id}: give at most one of for_minutes, n_of_m, confirm_within_minutes"
            )
        return self

    # --- configuration ------------------------------------------------------------------------
    def opens(self) -> bool:
        return self.opens_episode

    def announces_join(self) -> bool:
        return self.announce_join

    def names_unknown(self, ids: set[str]) -> str | None:
        unknown = [w for w in self.sustain_waived_by if w not in ids]
        if unknown:
            return f"rule {self.id}: sustain_waived_by names unknown rule {unknown[0]!r}"
        return None

    def problems(self, produced: set[Measurement] | None) -> Iterator[Problem]:
        if produced is not None and self.measurement not in produced:
            yield "measurement", (f"rule {self.id} watches {self.measurement}, which no device"
                                  " produces")
        yield from super().problems(produced)

    # --- arithmetic ---------------------------------------------------------------------------
    def breaches(self, value: float) -> bool:
        """Bounds are compared as written, glucose too: a CGM's 54 mg/dL (2.997 mmol/L) is
        below 3.0 here, while the reports count it by the consensus (not below 54 mg/dL,
        ``homevitals.vocab.units.glucose_limit``). Judging it by the consensus lost 2 of 18
        level-2 lows of the held-out adult cohort: a reading at the limit is within the sensor's
        error, and the alarm errs on the side of the low (docs/rules-and-alerts.md)."""
        if self.below is not None:
            return value < self.below
        return self.above is not None and value > self.above

    def clears(self, value: float) -> bool:
        """Back in range, past the hysteresis band (``clear_at``), so a hovering value cannot
        flap."""
        if self.below is not None:
            return value >= (self.clear_at if self.clear_at is not None else self.below)
        assert self.above is not None
        return value <= (self.clear_at if self.clear_at is not None else self.above)

    def needs_history(self) -> bool:
        """A plain bound judges each reading alone; only sustained conditions keep a window."""
        return any(x is not None for x in (self.n_of_m, self.for_minutes,
                                           self.confirm_within_minutes))

    def horizon(self) -> tuple[timedelta, int]:
        """How much history the rule needs: (time span, number of samples)."""
        minutes = max(2 * (self.for_minutes or 0.0), self.confirm_within_minutes or 0.0)
        return timedelta(minutes=minutes), (self.n_of_m.m if self.n_of_m else 2)

    def _streak(self, w: Window) -> list[Sample]:
        """The newest run of consecutive breaching samples, oldest first."""
        run: list[Sample] = []
        for s in reversed(w.samples):
            if not self.breaches(s.value):
                break
            run.append(s)
        return run[::-1]

    def fires(self, w: Window) -> bool:
        """Does the window, as of its newest sample, meet the rule's condition?"""
        if not w.samples or not self.breaches(w.newest.value):
            return False
        if self.n_of_m is not None:
            last = w.samples[-self.n_of_m.m :]
            return sum(self.breaches(s.value) for s in last) >= self.n_of_m.n
        streak = self._streak(w)
        if self.for_minutes is not None:
            return w.newest.time - streak[0].time >= timedelta(minutes=self.for_minutes)
        if self.confirm_within_minutes is not None:
            # A second breaching reading soon after the first confirms it (e.g. a repeated blood
            # pressure measurement after 5 minutes of rest, ESC/ESH 2018 section 4.3).
            within = timedelta(minutes=self.confirm_within_minutes)
            return len(streak) >= 2 and w.newest.time - streak[-2].time <= within
        return True

    # --- evaluation ---------------------------------------------------------------------------
    def on_reading(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading
    ) -> AlertDecision | None:
        value = values.sample(engine, self, r)
        if value is None:
            return None
        if not self.needs_history():
            # Nothing to remember between readings: no write, so a normal reading costs no
            # fsync (the open alert alone makes a redelivery harmless).
            w: Window | None = Window([Sample(r.time, value, r.reading_id)])
        else:
            w = values.updated_window(engine, st, self, r, value, self.horizon())
        if w is None:
            return None
        return self._judge(engine, st, s, r, w, st.open_alert(r.patient, self.id))

    def _judge(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading, w: Window,
        current: OpenAlert | None,
    ) -> AlertDecision | None:
        value = w.newest.value
        if current is None:
            alone = self._judged_alone(engine, st, s, r)
            fires = self.breaches(value) if alone else self.fires(w)
            kinds = self.fire_devices
            if kinds is not None and engine.device_kinds.get(r.device) not in kinds:
                fires = False
            if values.in_window(s, self.window, r.time) and fires:
                trend = values.trend(st, s, r, self.field)
                return engine.fire(
                    st, s, self, r.reading_id, r.time, **values.fields(r, self.field), trend=trend
                )
            return None
        if self.clears(value) and r.time >= current.opened_at:
            return engine.resolve(
                st, s, self, current, "back in range", **values.fields(r, self.field)
            )
        if not self.breaches(value):
            engine.counts["held_open"] += 1  # within the hysteresis band: no flapping
        return None

    def _judged_alone(self, engine: RuleEngine, st: State, s: Subject, r: Reading) -> bool:
        """Is this reading judged without waiting for the rule's sustained condition? Yes for a
        device the sustain is not meant for (a deliberate finger-stick, not a CGM's noise), and
        while a waiving condition holds (a fast fall through the bound is not noise)."""
        kinds = self.sustain_devices
        if kinds is not None and engine.device_kinds.get(r.device) not in kinds:
            return True
        return any(st.open_alert(s.patient.id, w) is not None for w in self.sustain_waived_by)


MODEL = ThresholdRuleConfig
