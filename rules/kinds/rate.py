"""``rate``: a fall (or rise) of more than ``fall``/``rise`` within ``within_minutes``: a glucose
falling fast. Its window of the field is also where the SMS trend comes from
(``rules/values.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from homevitals.rules import values
from homevitals.rules.conditions import Window
from homevitals.rules.kinds.base import RuleModel
from homevitals.vocab.config_base import TimeWindow
from homevitals.vocab.readings import Measurement
from homevitals.vocab.units import Unit

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import State
    from homevitals.vocab.readings import AlertDecision, Reading

__all__ = ["MODEL", "RateRuleConfig"]


class RateRuleConfig(RuleModel):
    """A fall (or rise) of more than ``fall``/``rise`` within ``within_minutes``."""

    rank = 2

    kind: Literal["rate"]
    measurement: Measurement
    field: str
    unit: Unit
    fall: float | None = Field(None, gt=0)
    rise: float | None = Field(None, gt=0)
    within_minutes: float = Field(gt=0)
    window: TimeWindow | None = None
    opens_episode: bool = Field(True, description="false: only joins an open episode")

    @model_validator(mode="after")
    def _one_direction(self) -> RateRuleConfig:
        if (self.fall is None) == (self.rise is None):
            raise ValueError(f"rule {self.id}: give exactly one of 'fall' or 'rise'")
        return self

    def opens(self) -> bool:
        return self.opens_episode

    def keeps_trend(self, measurement: Measurement, field: str) -> bool:
        return (self.measurement, self.field) == (measurement, field)

    def change(self, w: Window) -> float | None:
        """The fall (or rise) to the newest sample from the extreme within the rule's span, when
        it exceeds the rule's amount; else None."""
        if len(w.samples) < 2:
            return None
        now = w.newest
        since = now.time - timedelta(minutes=self.within_minutes)
        earlier = [s.value for s in w.samples[:-1] if s.time >= since]
        if not earlier:
            return None
        if self.fall is not None:
            change = max(earlier) - now.value
            return change if change > self.fall else None
        assert self.rise is not None
        change = now.value - min(earlier)
        return change if change > self.rise else None

    def on_reading(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading
    ) -> AlertDecision | None:
        value = values.sample(engine, self, r)
        if value is None:
            return None
        history = (timedelta(minutes=self.within_minutes), 2)
        w = values.updated_window(engine, st, self, r, value, history)
        if w is None:
            return None
        current = st.open_alert(r.patient, self.id)
        change = self.change(w)
        if current is None and change is not None and values.in_window(s, self.window, r.time):
            trend = values.trend(st, s, r, self.field)
            return engine.fire(
                st, s, self, r.reading_id, r.time, **values.fields(r, self.field), trend=trend
            )
        if current is not None and change is None and r.time >= current.opened_at:
            return engine.resolve(
                st, s, self, current, "no longer changing that fast", **values.fields(r, self.field)
            )
        return None


MODEL = RateRuleConfig
