"""``battery``: a device battery (from heartbeats or battery readings) below ``below`` %, the
device named in the alert; cleared once every battery is back to ``clear_at``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from homevitals.rules.kinds.base import RuleModel
from homevitals.vocab import wire

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import State
    from homevitals.vocab.readings import AlertDecision

__all__ = ["MODEL", "BatteryRuleConfig"]


class BatteryRuleConfig(RuleModel):
    """A device battery (heartbeat or battery readings) below ``below`` %."""

    rank = 5

    kind: Literal["battery"]
    below: float = Field(gt=0, le=100)
    clear_at: float | None = Field(None, le=100)

    def on_batteries(
        self, engine: RuleEngine, st: State, s: Subject, at: datetime
    ) -> AlertDecision | None:
        levels = st.batteries(s.patient.id)
        low = {d: p for d, p in levels.items() if p < self.below}
        current = st.open_alert(s.patient.id, self.id)
        clear_at = self.clear_at if self.clear_at is not None else self.below
        if current is None and low:
            device, percent = min(low.items(), key=lambda kv: kv[1])
            return engine.fire(
                st, s, self, f"battery-{device}-{wire.format_time(at)}", at, time=at,
                measurement="battery", field=f"{device} battery", value=percent, unit="%",
                observed_at=at,
            )
        if current is not None and all(p >= clear_at for p in levels.values()):
            return engine.resolve(
                st, s, self, current, "batteries charged", time=at, measurement="battery",
                observed_at=at,
            )
        return None


MODEL = BatteryRuleConfig
