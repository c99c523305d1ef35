"""Glucose targets of the consensus on time in range, standard and for older or high-risk people,
and which metrics miss them.

[TIR] Battelino T, et al. Diabetes Care 2019;42:1593-1603, Figure 3: most adults with type 1 or
      type 2 diabetes: in range > 70 %, below 3.9 < 4 %, below 3.0 < 1 %, above 10.0 < 25 %,
      above 13.9 < 5 %. Older or high-risk people: in range > 50 %, below 3.9 < 1 %, above 13.9
      < 10 % (no separate limit for below 3.0 or above 10.0). CV <= 36 % for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from homevitals.reports.metrics import GlucoseMetrics

__all__ = ["OLDER_HIGH_RISK", "STANDARD", "TARGETS", "GlucoseTargets", "Target", "missed"]


@dataclass(frozen=True, slots=True)
class Target:
    """``metric`` (a GlucoseMetrics field, a percentage) must be ``above`` or below ``limit``."""

    metric: str
    limit: float
    above: bool  # True: the value must be > limit (time in range); False: < limit (CV: <=)
    inclusive: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.limit <= 100.0:
            raise ValueError(f"a target is a percentage, got {self.limit}")

    @property
    def text(self) -> str:
        sign = (">=" if self.inclusive else ">") if self.above else (
            "<=" if self.inclusive else "<")
        return f"target {sign} {self.limit:g} %"

    def met(self, value: float) -> bool:
        if self.above:
            return value >= self.limit if self.inclusive else value > self.limit
        return value <= self.limit if self.inclusive else value < self.limit


@dataclass(frozen=True, slots=True)
class GlucoseTargets:
    key: str
    label: str
    targets: tuple[Target, ...]

    def of(self, metric: str) -> Target | None:
        return next((t for t in self.targets if t.metric == metric), None)


_CV = Target("cv_percent", 36.0, above=False, inclusive=True)
STANDARD = GlucoseTargets("standard", "standard consensus targets (most adults)", (
    Target("in_range", 70.0, above=True), Target("below_3_9", 4.0, above=False),
    Target("below_3_0", 1.0, above=False), Target("above_10_0", 25.0, above=False),
    Target("above_13_9", 5.0, above=False), _CV))
OLDER_HIGH_RISK = GlucoseTargets("older_high_risk", "consensus targets for older or high-risk"
                                 " people", (
    Target("in_range", 50.0, above=True), Target("below_3_9", 1.0, above=False),
    Target("above_13_9", 10.0, above=False), _CV))
TARGETS = {t.key: t for t in (STANDARD, OLDER_HIGH_RISK)}


def missed(m: GlucoseMetrics, targets: GlucoseTargets) -> set[str]:
    """The metrics of ``m`` that miss their target (a metric not computed misses nothing)."""
    out = set()
    for t in targets.targets:
        value = getattr(m, t.metric)
        if value is not None and not t.met(float(value)):
            out.add(t.metric)
    return out
