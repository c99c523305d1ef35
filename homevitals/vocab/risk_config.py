"""The console's risk tiers (issue 15): transparent rules over a patient's last days of data.

Kept apart from ``homevitals/vocab/config.py`` (which adds it as ``console.risk``) so the tier rules
sit beside the console that shows them; the arithmetic is in ``reports/risk.py``. A patient's
tier is the highest tier of any rule that holds, ``low`` when none does, and every rule that
holds is shown with the readings that made it hold. The tier sets how soon a follow-up is due.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from homevitals.vocab.readings import check_id

__all__ = ["RISK_METRICS", "RiskConfig", "RiskRule", "Tier"]


class Tier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return (Tier.LOW, Tier.MEDIUM, Tier.HIGH).index(self)


# What a rule may test, over the console's period (``console.lookback_days``): shares of every
# glucose reading (%), counts of readings, and the home BP means by the ESH protocol (mmHg).
RISK_METRICS = {
    "glucose_below_3_0_count": "readings below 3.0 mmol/L (level 2 lows)",
    "glucose_below_3_9_percent": "% of glucose readings below 3.9 mmol/L",
    "glucose_above_13_9_percent": "% of glucose readings above 13.9 mmol/L",
    "glucose_in_range_percent": "% of glucose readings in 3.9-10.0 mmol/L",
    "bp_systolic_mean": "home systolic mean (ESH protocol), mmHg",
    "bp_diastolic_mean": "home diastolic mean (ESH protocol), mmHg",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskRule(_Model):
    """Holds when ``metric`` is above ``above``, at or above ``at_least``, or below ``below``
    (exactly one of them)."""

    id: str
    metric: str
    tier: Tier
    above: float | None = None
    at_least: float | None = None
    below: float | None = None

    _id = field_validator("id")(lambda v: check_id("risk rule", v))

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in RISK_METRICS:
            raise ValueError(f"metric {v!r} is not one of {', '.join(RISK_METRICS)}")
        return v

    @model_validator(mode="after")
    def _one_limit(self) -> RiskRule:
        if sum(x is not None for x in (self.above, self.at_least, self.below)) != 1:
            raise ValueError(f"risk rule {self.id}: give exactly one of above, at_least, below")
        if self.tier == Tier.LOW:
            raise ValueError(f"risk rule {self.id}: a rule raises the tier to medium or high")
        return self

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.above is not None:
            return value > self.above
        if self.at_least is not None:
            return value >= self.at_least
        return self.below is not None and value < self.below

    @property
    def limit_text(self) -> str:
        if self.above is not None:
            return f"> {self.above:g}"
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        return f"< {self.below:g}"


def _default_rules() -> list[RiskRule]:
    # Battelino 2019 (any level 2 low; time below 3.9 over 4 %) and ESC/ESH 2018 (home BP mean
    # >= 135/85 is uncontrolled).
    return [
        RiskRule(id="level-2-low", metric="glucose_below_3_0_count", above=0, tier=Tier.HIGH),
        RiskRule(id="time-below-range", metric="glucose_below_3_9_percent", above=4,
                 tier=Tier.HIGH),
        RiskRule(id="home-bp-systolic", metric="bp_systolic_mean", at_least=135,
                 tier=Tier.MEDIUM),
        RiskRule(id="home-bp-diastolic", metric="bp_diastolic_mean", at_least=85,
                 tier=Tier.MEDIUM),
    ]


class RiskConfig(_Model):
    rules: list[RiskRule] = Field(default_factory=_default_rules)
    refresh_minutes: float = Field(
        15.0, gt=0, le=24 * 60,
        description="tiers are over days of data: the console recomputes them this often in the"
        " background, and the patient list shows the last result",
    )
    follow_up_hours: dict[Tier, float] = Field(
        default_factory=lambda: {Tier.LOW: 48.0, Tier.MEDIUM: 48.0, Tier.HIGH: 24.0},
        description="a follow-up is due within the lesser of this (by the patient's tier) and"
        " console.follow_up_hours (by the alert's severity)",
    )

    @field_validator("follow_up_hours")
    @classmethod
    def _positive(cls, v: dict[Tier, float]) -> dict[Tier, float]:
        bad = [f"{k}: {h}" for k, h in v.items() if h <= 0]
        if bad:
            raise ValueError(f"follow-up hours must be positive ({', '.join(bad)})")
        return v
