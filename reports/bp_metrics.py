"""Home blood pressure by morning and evening, with and without device-flagged readings, and
simple summaries of heart rate and SpO2. Pure computation on DataFrames, like ``metrics``.

Sources:
[ESC/ESH] Williams B, et al. 2018 ESC/ESH Guidelines for the management of arterial hypertension.
          Eur Heart J 2018;39:3021-3104 (Table 4: home BP mean >= 135 and/or >= 85 mmHg is high).
[ISH]     Unger T, et al. 2020 International Society of Hypertension global hypertension practice
          guidelines. Hypertension 2020;75:1334-1357 (home BP >= 135/85 mmHg).
[HBPM]    Parati G, et al. Home blood pressure monitoring: methodology, clinical relevance and
          practical application: a 2021 position paper of the ESH Working Group. J Hypertens
          2021;39:1742-1767. Morning and evening sessions are defined by activity (morning before
          breakfast and drugs, evening before dinner), which the readings do not carry, so clock
          windows stand in for them. The protocol: 3-7 days (7 preferred) of duplicate
          readings morning and evening; the first day is discarded; the mean of the remaining
          morning and evening readings is the home BP, from at least 3 days and 12 readings.
          A morning-minus-evening difference is not the "morning surge" (that compares the
          morning with the night's lowest pressure, which home readings do not measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

import pandas as pd

from homevitals.reports.metrics import deduplicate

__all__ = [
    "EVENING",
    "FLAG_CODES",
    "HIGH_DIASTOLIC",
    "HIGH_SYSTOLIC",
    "MIN_DAYS",
    "MIN_READINGS",
    "MORNING",
    "BpStats",
    "BpSummary",
    "VitalStats",
    "bp_summary",
    "esh_rows",
    "is_flagged",
    "prepare_bp",
    "vital_stats",
]

HIGH_SYSTOLIC = 135.0  # [ESC/ESH], [ISH]
HIGH_DIASTOLIC = 85.0
MORNING = (time(6, 0), time(12, 0))  # [start, end) local, see [HBPM]
EVENING = (time(18, 0), time(0, 0))  # 18:00 to midnight; readings outside both are not counted
MIN_DAYS = 3  # [HBPM]: at least 3 days after the first, and 12 readings
MIN_READINGS = 12
# Status bits that make a reading doubtful (Bluetooth GSS, Blood Pressure Measurement, Measurement
# Status; names as gateway/profiles/blood_pressure.py gives them). Pulse-range bits are not here:
# they describe the pulse, not the pressure measurement.
FLAG_CODES = frozenset({"body_movement", "irregular_pulse", "cuff_too_loose", "improper_position"})


@dataclass(frozen=True, slots=True)
class BpStats:
    label: str
    readings: int
    systolic: float | None
    diastolic: float | None
    high_percent: float | None  # share of readings >= 135 systolic or >= 85 diastolic

    def __post_init__(self) -> None:
        if self.readings < 0:
            raise ValueError("a reading count cannot be negative")
        if (self.readings == 0) != (self.systolic is None):
            raise ValueError("means exist exactly when there are readings")

    @property
    def mean_is_high(self) -> bool | None:
        if self.systolic is None or self.diastolic is None:
            return None
        # Compared as shown (one decimal): a page reading "135.0 mmHg ... no" would be wrong.
        shown = round(self.systolic, 1), round(self.diastolic, 1)
        return shown[0] >= HIGH_SYSTOLIC or shown[1] >= HIGH_DIASTOLIC


@dataclass(frozen=True, slots=True)
class BpSummary:
    """Each tuple holds morning and evening together, morning, evening, from the readings the
    ESH protocol counts: day 1 discarded, morning and evening windows only.
    ``difference`` = morning - evening mean systolic (not a "morning surge", see [HBPM])."""

    all_readings: tuple[BpStats, ...]
    unflagged: tuple[BpStats, ...]
    flagged: int
    duplicates: int
    difference_all: float | None
    difference_unflagged: float | None
    first_day_dropped: int = 0  # readings of day 1, not counted
    outside_windows: int = 0  # readings from 00:00-06:00 and 12:00-18:00, not counted
    days: int = 0  # days with counted (unflagged) readings
    caveats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.all_readings) != 3 or len(self.unflagged) != 3:
            raise ValueError("BP stats come as (all sessions, morning, evening)")


@dataclass(frozen=True, slots=True)
class VitalStats:
    readings: int
    mean: float
    low: float
    high: float


def is_flagged(flags: object) -> bool:
    """``flags`` is the store's comma-joined string (absent or empty when the device set none)."""
    if not isinstance(flags, str) or not flags:
        return False
    return bool(FLAG_CODES.intersection(f.strip() for f in flags.split(",")))


def _session(t: time) -> str:
    if MORNING[0] <= t < MORNING[1]:
        return "morning"
    if t >= EVENING[0]:
        return "evening"
    return "other"


def prepare_bp(df: pd.DataFrame, zone: ZoneInfo) -> tuple[pd.DataFrame, int]:
    """Deduplicated readings with ``local`` time, ``session`` and ``flagged`` columns added."""
    unique, duplicates = deduplicate(df)
    unique = unique.copy()
    unique["local"] = pd.DatetimeIndex(unique["time"]).tz_convert(zone)
    unique["session"] = [_session(t.time()) for t in unique["local"]]
    unique["flagged"] = [is_flagged(f) for f in unique.get("flags", [""] * len(unique))]
    return unique, duplicates


def _stats(label: str, rows: pd.DataFrame) -> BpStats:
    if rows.empty:
        return BpStats(label, 0, None, None, None)
    high = (rows["systolic"] >= HIGH_SYSTOLIC) | (rows["diastolic"] >= HIGH_DIASTOLIC)
    return BpStats(label, len(rows), float(rows["systolic"].mean()),
                   float(rows["diastolic"].mean()), float(100.0 * high.mean()))


def _by_session(rows: pd.DataFrame) -> tuple[BpStats, BpStats, BpStats]:
    return (_stats("morning and evening", rows),
            _stats("morning", rows[rows["session"] == "morning"]),
            _stats("evening", rows[rows["session"] == "evening"]))


def _difference(stats: tuple[BpStats, ...]) -> float | None:
    morning, evening = stats[1].systolic, stats[2].systolic
    return None if morning is None or evening is None else morning - evening


def esh_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The readings [HBPM] counts, from ``prepare_bp``'s rows: not of the first day with
    readings, and in the morning or evening window."""
    if rows.empty:
        return rows
    first = rows["local"].min().date()
    later = pd.Series([t.date() != first for t in rows["local"]], index=rows.index, dtype=bool)
    return rows[later & (rows["session"] != "other")]


def bp_summary(df: pd.DataFrame, zone: ZoneInfo) -> BpSummary:
    rows, duplicates = prepare_bp(df, zone)
    counted = esh_rows(rows)
    first_day = 0 if rows.empty else int(
        sum(t.date() == rows["local"].min().date() for t in rows["local"]))
    clean = counted[~counted["flagged"]]
    days = len({t.date() for t in clean["local"]})
    caveats = []
    if days < MIN_DAYS or len(clean) < MIN_READINGS:
        caveats.append(f"Too few readings for a home BP by the ESH protocol: {len(clean)} readings"
                       f" on {days} days after the first; it asks for at least {MIN_READINGS}"
                       f" readings on {MIN_DAYS} days (Parati 2021). The means are uncertain.")
    every, unflagged = _by_session(counted), _by_session(clean)
    return BpSummary(every, unflagged, int(rows["flagged"].sum()), duplicates,
                     _difference(every), _difference(unflagged), first_day,
                     int(len(rows) - first_day - len(counted)), days, tuple(caveats))


def vital_stats(df: pd.DataFrame, field: str) -> VitalStats | None:
    """None when the store holds no such readings for the period."""
    if df.empty or field not in df:
        return None
    unique, _ = deduplicate(df)
    values = unique[field].dropna()
    if values.empty:
        return None
    return VitalStats(len(values), float(values.mean()), float(values.min()), float(values.max()))
