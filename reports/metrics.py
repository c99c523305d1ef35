"""Glucose metrics of the international consensus on time in range, and the AGP curves.

Pure computation: DataFrames in (columns ``time`` as aware UTC timestamps, ``device``,
``glucose`` in mmol/L), frozen dataclasses out; no I/O and no plotting.

Sources:
[TIR] Battelino T, et al. Clinical targets for continuous glucose monitoring data interpretation:
      recommendations from the International Consensus on Time in Range. Diabetes Care
      2019;42:1593-1603. Ranges, targets, >= 70 % of 14 days of CGM data, CV target <= 36 %.
[GMI] Bergenstal RM, et al. Glucose Management Indicator (GMI): a new term for estimating A1C from
      continuous glucose monitoring. Diabetes Care 2018;41:2275-2280. GMI is defined on CGM data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from homevitals.vocab.units import MGDL_PER_MMOLL, glucose_limit

__all__ = [
    "AGP_MIN_DAYS",
    "AGP_PERCENTILES",
    "CGM_GAP",
    "CGM_INTERVAL",
    "MIN_CV_READINGS",
    "Agp",
    "Gap",
    "GlucoseMetrics",
    "agp",
    "cgm_devices",
    "deduplicate",
    "empty_days",
    "find_gaps",
    "glucose_metrics",
]

# A CGM reads every 5 minutes (Dexcom G6/G7, Medtronic Guardian): expected = period / 5 min.
CGM_INTERVAL = timedelta(minutes=5)
# A device whose readings are at most 15 min apart (median) is a CGM; Libre stores every 15 min,
# while a meter is used a few times a day, hours apart.
CGM_MAX_SPACING = timedelta(minutes=15)
# Our choice, not a standard: a CGM silence of over 30 min (6 missed readings) is listed as a gap;
# shorter drop-outs are counted by the coverage figure only.
CGM_GAP = timedelta(minutes=30)
# Our choice, not a standard (no consensus minimum exists for meter data): an SD from fewer
# readings moves a lot with one more reading, so the CV is shown but marked unreliable.
MIN_CV_READINGS = 30
MIN_COVERAGE_PERCENT = 70.0  # [TIR]
RECOMMENDED_DAYS = 14  # [TIR]
AGP_PERCENTILES = (5, 25, 50, 75, 95)
AGP_STEP_MINUTES = 15
AGP_HALF_WINDOW_MINUTES = 30  # each 15-min point uses the readings within +-30 min: smoothing
# Our choice: a percentile across days needs several days; fewer leave that time of day blank.
AGP_MIN_DAYS = 5


@dataclass(frozen=True, slots=True)
class Gap:
    """No reading from ``start`` to ``end`` (aware UTC)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError(f"a gap needs aware start < end, got {self.start} .. {self.end}")


@dataclass(frozen=True, slots=True)
class GlucoseMetrics:
    """Percentages are shares of readings, as the consensus computes them from CGM data."""

    readings: int
    duplicates: int
    cgm: bool
    mean_mmol: float | None = None
    sd_mmol: float | None = None
    cv_percent: float | None = None
    cv_reliable: bool = False
    gmi_percent: float | None = None
    below_3_0: float | None = None
    below_3_9: float | None = None
    in_range: float | None = None
    above_10_0: float | None = None
    above_13_9: float | None = None
    coverage_percent: float | None = None
    gaps: tuple[Gap, ...] = ()
    caveats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.readings < 0 or self.duplicates < 0:
            raise ValueError("reading and duplicate counts cannot be negative")
        for name in ("below_3_0", "below_3_9", "in_range", "above_10_0", "above_13_9",
                     "coverage_percent"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 100.0:
                raise ValueError(f"{name} must be a percentage, got {value}")

    @property
    def mean_mgdl(self) -> float | None:
        return None if self.mean_mmol is None else self.mean_mmol * MGDL_PER_MMOLL


@dataclass(frozen=True, slots=True)
class Agp:
    """Percentiles by local time of day (``minutes`` after midnight), or why there are none."""

    minutes: tuple[int, ...] = ()
    curves: tuple[tuple[float, ...], ...] = ()  # one per AGP_PERCENTILES; NaN = too few days
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.curves and not self.reason:
            raise ValueError("an AGP without curves must say why")
        if any(len(c) != len(self.minutes) for c in self.curves):
            raise ValueError("every AGP curve needs one value per time of day")


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per (device, time), oldest first, and how many rows were dropped."""
    unique = df.drop_duplicates(subset=["device", "time"], keep="last")
    unique = unique.sort_values("time", kind="stable").reset_index(drop=True)
    return unique, len(df) - len(unique)


def cgm_devices(df: pd.DataFrame) -> set[str]:
    """Devices whose median spacing between readings is CGM-like (at least 3 readings)."""
    found = set()
    for device, rows in df.groupby("device"):
        spacing = rows["time"].sort_values().diff().dropna()
        if len(spacing) >= 2 and spacing.median() <= pd.Timedelta(CGM_MAX_SPACING):
            found.add(str(device))
    return found


def find_gaps(times: pd.Series, start: datetime, end: datetime, longest: timedelta) -> list[Gap]:
    """Silences longer than ``longest``, including before the first and after the last reading."""
    points = [pd.Timestamp(start), *sorted(times), pd.Timestamp(end)]
    return [Gap(a.to_pydatetime(), b.to_pydatetime())
            for a, b in zip(points, points[1:], strict=False) if b - a > pd.Timedelta(longest)]


def empty_days(times: pd.Series, zone: ZoneInfo, start: datetime, end: datetime) -> list[Gap]:
    """Runs of whole local days without a reading (meters and cuffs are used a few times a day)."""
    first = start.astimezone(zone).date()
    days = [first + timedelta(days=i)
            for i in range((end.astimezone(zone).date() - first).days)]
    seen = {t.date() for t in pd.DatetimeIndex(times).tz_convert(zone)}
    gaps: list[Gap] = []
    for day in days:
        if day in seen:
            continue
        day_start = datetime.combine(day, datetime.min.time(), zone)
        day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
        if gaps and gaps[-1].end == day_start:
            gaps[-1] = Gap(gaps[-1].start, day_end)
        else:
            gaps.append(Gap(day_start, day_end))
    return gaps


# [TIR] states each limit twice, in mg/dL and in mmol/L: a value is low only when it is below
# the limit in both units as the device showed it, high only when above it in both
# (homevitals.vocab.units.glucose_limit), so 70 mg/dL and 3.9 mmol/L are in range, 54 mg/dL and
# 3.0 mmol/L are not "very low", 180 mg/dL and 10.0 mmol/L are in range.
LOW_2 = glucose_limit(3.0, below=True)
LOW_1 = glucose_limit(3.9, below=True)
HIGH_1 = glucose_limit(10.0, below=False)
HIGH_2 = glucose_limit(13.9, below=False)


def _ranges(values: np.ndarray) -> dict[str, float]:
    share = {
        "below_3_0": values < LOW_2, "below_3_9": values < LOW_1,
        "in_range": (values >= LOW_1) & (values <= HIGH_1),
        "above_10_0": values > HIGH_1, "above_13_9": values > HIGH_2,
    }
    return {name: float(100.0 * mask.mean()) for name, mask in share.items()}


def glucose_metrics(
    df: pd.DataFrame, start: datetime, end: datetime, zone: ZoneInfo
) -> GlucoseMetrics:
    unique, duplicates = deduplicate(df)
    cgm = cgm_devices(unique)
    source = unique[unique["device"].isin(cgm)] if cgm else unique
    caveats = []
    if cgm and len(source) < len(unique):
        caveats.append(f"{len(unique) - len(source)} meter readings are shown in the daily traces"
                       " but not counted in the CGM metrics.")
    if source.empty:
        return GlucoseMetrics(0, duplicates, False, caveats=("No glucose readings in the period.",))
    values = source["glucose"].to_numpy(dtype=float)
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if len(values) >= 2 else None  # sample SD, as R's sd()
    cv = None if sd is None else 100.0 * sd / mean
    if len(values) < MIN_CV_READINGS:
        caveats.append(f"CV from {len(values)} readings (fewer than {MIN_CV_READINGS}) is"
                       " unreliable.")
    if cgm:
        expected = (end - start) / CGM_INTERVAL
        coverage = min(100.0, 100.0 * len(values) / expected)
        caveats += _cgm_caveats(coverage, end - start)
        return GlucoseMetrics(
            len(values), duplicates, True, mean, sd, cv, len(values) >= MIN_CV_READINGS,
            3.31 + 0.02392 * mean * MGDL_PER_MMOLL,  # [GMI], mean in mg/dL
            **_ranges(values), coverage_percent=coverage,
            gaps=tuple(find_gaps(source["time"], start, end, CGM_GAP)), caveats=tuple(caveats))
    caveats += _meter_caveats(source)
    return GlucoseMetrics(
        len(values), duplicates, False, mean, sd, cv, len(values) >= MIN_CV_READINGS, None,
        **_ranges(values), gaps=tuple(empty_days(source["time"], zone, start, end)),
        caveats=tuple(caveats))


def _cgm_caveats(coverage: float, period: timedelta) -> list[str]:
    out = []
    if coverage < MIN_COVERAGE_PERCENT:
        out.append(f"Only {coverage:.0f} % of the expected CGM readings are present; the consensus"
                   f" asks for at least {MIN_COVERAGE_PERCENT:.0f} % (Battelino 2019).")
    if period < timedelta(days=RECOMMENDED_DAYS):
        out.append(f"The period is shorter than the {RECOMMENDED_DAYS} days the consensus"
                   " recommends for CGM metrics (Battelino 2019).")
    return out


def _meter_caveats(source: pd.DataFrame) -> list[str]:
    spacing = source["time"].diff().dropna()
    typical = f" (median {spacing.median() / pd.Timedelta(hours=1):.1f} h between readings)" \
        if len(spacing) else ""
    return [
        f"These are glucose meter readings, not CGM data{typical}. Range shares are shares of"
        " readings taken at chosen moments, not of the time of day.",
        "Coverage is not computed: a meter has no expected reading rate.",
        "GMI is not computed: it is defined on the mean of CGM data (Bergenstal 2018).",
    ]


def agp(df: pd.DataFrame, zone: ZoneInfo) -> Agp:
    """AGP percentiles every 15 min of the local day, each from readings within +-30 min."""
    unique, _ = deduplicate(df)
    cgm = cgm_devices(unique)
    if not cgm:
        return Agp(reason="No AGP: these are not CGM data (readings are hours apart), so there"
                          " are too few readings per time-of-day bin for percentiles.")
    local = pd.DatetimeIndex(unique.loc[unique["device"].isin(cgm), "time"]).tz_convert(zone)
    values = unique.loc[unique["device"].isin(cgm), "glucose"].to_numpy(dtype=float)
    minute_of_day = (local.hour * 60 + local.minute).to_numpy()
    day = np.asarray(local.date)
    centres = tuple(range(0, 24 * 60, AGP_STEP_MINUTES))
    rows = [_percentiles(values, minute_of_day, day, c) for c in centres]
    curves = tuple(tuple(r[i] for r in rows) for i in range(len(AGP_PERCENTILES)))
    if all(np.isnan(v) for v in curves[2]):
        return Agp(reason=f"No AGP: no time of day has CGM readings from {AGP_MIN_DAYS} or more"
                          " days.")
    return Agp(centres, curves)


def _percentiles(
    values: np.ndarray, minute: np.ndarray, day: np.ndarray, centre: int
) -> list[float]:
    distance = np.abs(minute - centre)
    near = np.minimum(distance, 24 * 60 - distance) <= AGP_HALF_WINDOW_MINUTES  # midnight wraps
    if len(set(day[near])) < AGP_MIN_DAYS:
        return [float("nan")] * len(AGP_PERCENTILES)
    return [float(v) for v in np.percentile(values[near], AGP_PERCENTILES)]
