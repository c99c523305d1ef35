"""Reading one patient's period into pandas DataFrames: from any store, and the alert history.

The store and the alert history are passed in (``ReadingSource``, ``AlertHistory``); only
``reports.main`` knows which implementations the configuration names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from homevitals.reports.errors import ReportError
from homevitals.vocab.errors import HomevitalsError
from homevitals.vocab.readings import Measurement

__all__ = [
    "MAX_DAYS",
    "AlertHistory",
    "PatientData",
    "Period",
    "ReadingSource",
    "alerts_frame",
    "load",
    "readings_frame",
]

MAX_DAYS = 366  # a year per page: longer periods make unreadable figures, not better reports

# The fields each measurement carries (ingest/points.py). No device produces heart_rate or spo2
# yet: their field is assumed to be named like the measurement, the store's pattern for one-field
# readings (glucose/glucose).
_FIELDS: dict[Measurement, tuple[str, ...]] = {
    Measurement.GLUCOSE: ("glucose",),
    Measurement.BLOOD_PRESSURE: ("systolic", "diastolic", "pulse"),
    Measurement.HEART_RATE: ("heart_rate",),
    Measurement.SPO2: ("spo2",),
}


class ReadingSource(Protocol):
    """The part of ``homevitals.ingest.store.Store`` a report uses."""

    def query_readings(
        self, measurement: str, patient: str | None, start: datetime, end: datetime
    ) -> list[dict[str, Any]]: ...


# Rows of ``Ledger.history(patient)``, each with the alert's reading (``observed_at``, ``value``,
# ``unit``) when the composition root adds them; None when there is no ledger to read.
AlertHistory = Callable[[str], list[dict[str, object]] | None]


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``first`` to ``last`` inclusive, in the home's time zone."""

    first: date
    last: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ReportError(f"bad dates: --to {self.last} is before --from {self.first}")
        if self.days > MAX_DAYS:
            raise ReportError(f"bad dates: {self.days} days from {self.first} to {self.last};"
                              f" a report covers at most {MAX_DAYS}")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), self.zone)

    @property
    def end(self) -> datetime:
        """Local midnight after ``last``: days of 23 or 25 hours (DST) count as they were."""
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), self.zone)


@dataclass(frozen=True, slots=True)
class PatientData:
    glucose: pd.DataFrame
    bp: pd.DataFrame
    heart_rate: pd.DataFrame
    spo2: pd.DataFrame
    alerts: pd.DataFrame | None  # None: no alert ledger to read


def readings_frame(rows: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> pd.DataFrame:
    """Store rows -> DataFrame with ``time`` (UTC), ``device``, ``flags`` ("" if none), fields."""
    columns = ["time", "device", "reading_id", "flags", *fields]
    df = pd.DataFrame(list(rows))
    for name in columns:
        if name not in df:
            df[name] = pd.Series(dtype=object if name in ("device", "reading_id", "flags")
                                 else float)
    df = df[columns].copy()
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["flags"] = df["flags"].fillna("").astype(str)
    for name in fields:
        df[name] = pd.to_numeric(df[name], errors="coerce")
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def alerts_frame(rows: list[dict[str, object]], period: Period) -> pd.DataFrame:
    """Ledger rows of alerts raised by a reading within the period, placed by ``reading_at``:
    the reading's time (``observed_at``) when the row carries it, else when the alert opened.
    A reading that arrived late (a gateway offline overnight) belongs to the night it was
    taken, not to the morning its alert opened."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["reading_at", "value", "unit", "opened_at", "rule",
                                     "severity", "alert_state", "name"])
    for name in ("opened_at", "resolved_at", "sent_at", "observed_at"):
        if name in df:
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
    df["reading_at"] = df["observed_at"].fillna(df["opened_at"]) if "observed_at" in df \
        else df["opened_at"]
    for name in ("value", "unit"):
        if name not in df:
            df[name] = None
    inside = (df["reading_at"] >= period.start) & (df["reading_at"] < period.end)
    return df[inside].sort_values("reading_at", kind="stable").reset_index(drop=True)


def _query(source: ReadingSource, m: Measurement, patient: str, period: Period) -> pd.DataFrame:
    try:
        rows = source.query_readings(str(m), patient, period.start, period.end)
    except HomevitalsError as exc:  # StoreError: server down, bad credentials, locked file
        raise ReportError(f"store unreachable while reading {m} for {patient}: {exc}") from exc
    return readings_frame(rows, _FIELDS[m])


def load(source: ReadingSource, history: AlertHistory, patient: str, period: Period) -> PatientData:
    frames = {m: _query(source, m, patient, period) for m in _FIELDS}
    try:
        alert_rows = history(patient)
    except HomevitalsError as exc:
        raise ReportError(f"alert ledger unreadable for {patient}: {exc}") from exc
    alerts = None if alert_rows is None else alerts_frame(alert_rows, period)
    return PatientData(frames[Measurement.GLUCOSE], frames[Measurement.BLOOD_PRESSURE],
                       frames[Measurement.HEART_RATE], frames[Measurement.SPO2], alerts)
