"""A patient's risk tier from the configured rules (``homevitals.vocab.risk_config``), with reasons
that name the readings. Pure computation, like ``metrics``.

The glucose figures count every glucose reading of the period (CGM and meter alike, duplicates
once), compared exactly at the consensus limits as ``metrics`` does; the BP means follow the
ESH protocol of ``bp_metrics`` (first day discarded, morning and evening only, unflagged).
``RiskInputs`` can come from DataFrames (``risk_inputs``) or from a store's aggregates, and
``assess`` gives the same answer for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from homevitals.reports.bp_metrics import esh_rows, prepare_bp
from homevitals.reports.metrics import HIGH_1, HIGH_2, LOW_1, LOW_2, deduplicate
from homevitals.vocab.risk_config import RiskConfig, RiskRule, Tier

__all__ = ["Risk", "RiskInputs", "assess", "risk_inputs"]


@dataclass(frozen=True, slots=True)
class RiskInputs:
    glucose_readings: int = 0
    below_3_0: int = 0
    below_3_9: int = 0
    above_13_9: int = 0
    in_range: int = 0
    lowest: tuple[float, datetime] | None = None
    bp_readings: int = 0
    bp_days: int = 0
    systolic_mean: float | None = None
    diastolic_mean: float | None = None
    highest_bp: tuple[float, float, datetime] | None = None

    def __post_init__(self) -> None:
        if self.below_3_0 > self.below_3_9 or self.below_3_9 > self.glucose_readings:
            raise ValueError("glucose counts must nest: below 3.0 <= below 3.9 <= all")


@dataclass(frozen=True, slots=True)
class Risk:
    tier: Tier
    reasons: tuple[str, ...]  # one per rule that holds, naming its readings


def risk_inputs(glucose: pd.DataFrame, bp: pd.DataFrame, zone: ZoneInfo) -> RiskInputs:
    """From ``reports.data`` frames of the period."""
    g, _ = deduplicate(glucose)
    g = g.dropna(subset=["glucose"])
    values = g["glucose"].to_numpy(dtype=float)
    lowest = None  # named only when it is a low (below 3.9), as the store's aggregates do
    if len(values) and values.min() < LOW_1:
        i = int(values.argmin())
        lowest = (float(values[i]), g["time"].iloc[i].to_pydatetime())
    rows, _ = prepare_bp(bp, zone)
    counted = esh_rows(rows)
    counted = counted[~counted["flagged"]] if len(counted) else counted
    highest = None
    if len(counted):
        top = counted.sort_values(["systolic", "diastolic"], kind="stable").iloc[-1]
        highest = (float(top["systolic"]), float(top["diastolic"]), top["time"].to_pydatetime())
    return RiskInputs(
        len(values), int((values < LOW_2).sum()), int((values < LOW_1).sum()),
        int((values > HIGH_2).sum()), int(((values >= LOW_1) & (values <= HIGH_1)).sum()),
        lowest, len(counted), len({t.date() for t in counted["local"]}) if len(counted) else 0,
        float(counted["systolic"].mean()) if len(counted) else None,
        float(counted["diastolic"].mean()) if len(counted) else None, highest)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _value(metric: str, x: RiskInputs) -> float | None:
    return {
        "glucose_below_3_0_count": float(x.below_3_0) if x.glucose_readings else None,
        "glucose_below_3_9_percent": _pct(x.below_3_9, x.glucose_readings),
        "glucose_above_13_9_percent": _pct(x.above_13_9, x.glucose_readings),
        "glucose_in_range_percent": _pct(x.in_range, x.glucose_readings),
        "bp_systolic_mean": x.systolic_mean,
        "bp_diastolic_mean": x.diastolic_mean,
    }[metric]


def _at(t: datetime, zone: ZoneInfo) -> str:
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _reason(rule: RiskRule, value: float, x: RiskInputs, zone: ZoneInfo) -> str:
    head = f"{rule.id} ({rule.tier}): "
    if rule.metric.startswith("glucose"):
        low = "" if x.lowest is None else \
            f"; lowest {x.lowest[0]:.1f} mmol/L at {_at(x.lowest[1], zone)}"
        if rule.metric == "glucose_below_3_0_count":
            return f"{head}{x.below_3_0} readings below 3.0 mmol/L ({rule.limit_text}){low}"
        what = rule.metric.removeprefix("glucose_").removesuffix("_percent").replace("_", " ")
        part = {"below 3 9": x.below_3_9, "above 13 9": x.above_13_9,
                "in range": x.in_range}[what]
        what = what.replace("3 9", "3.9").replace("13 9", "13.9")
        return (f"{head}{value:.1f} % of glucose readings {what} ({rule.limit_text} %):"
                f" {part} of {x.glucose_readings}{low}")
    side = "systolic" if rule.metric == "bp_systolic_mean" else "diastolic"
    top = "" if x.highest_bp is None else \
        f"; highest {x.highest_bp[0]:.0f}/{x.highest_bp[1]:.0f} at {_at(x.highest_bp[2], zone)}"
    return (f"{head}home {side} mean {value:.0f} mmHg ({rule.limit_text}) from {x.bp_readings}"
            f" readings on {x.bp_days} days (ESH protocol){top}")


def assess(x: RiskInputs, cfg: RiskConfig, zone: ZoneInfo) -> Risk:
    tier, reasons = Tier.LOW, []
    for rule in cfg.rules:
        value = _value(rule.metric, x)
        if value is not None and rule.holds(value):
            reasons.append(_reason(rule, value, x, zone))
            tier = max(tier, rule.tier, key=lambda t: t.rank)
    return Risk(tier, tuple(reasons))
