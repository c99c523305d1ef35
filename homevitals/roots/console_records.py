"""The console's ``Records``: last readings, device health, risk tiers and the dynamic health
record, from the store and the report code (``homevitals.reports``), so the page and the printed
report agree. Composition-root code: it may import stages, the console may not.

Speed (issue 15: a list of 1 000 patients under 300 ms, a page under 1 s): the patient list asks
the store about all the patients of a page at once (``Summaries``: one InfluxQL request for
InfluxDB 1.x, computed from rows otherwise), and the patient page draws no figure: each PNG is
drawn when the browser asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any

from homevitals.console.ports import (
    DeviceStatus,
    LastReading,
    PatientStatus,
    Record,
    RecordRow,
    RecordSection,
    RiskView,
)
from homevitals.reports import figures
from homevitals.reports.bp_metrics import bp_summary, prepare_bp, vital_stats
from homevitals.reports.data import PatientData, Period, ReadingSource, load
from homevitals.reports.metrics import agp, cgm_devices, deduplicate, glucose_metrics
from homevitals.reports.risk import assess
from homevitals.reports.targets import TARGETS, GlucoseTargets, missed
from homevitals.roots.console_summaries import SHOWN, Summaries
from homevitals.vocab.config import DEVICE_MEASUREMENTS, Config
from homevitals.vocab.units import FIELD_UNITS

__all__ = ["StoreRecords"]


def _text(measurement: str, row: dict[str, Any]) -> str:
    if measurement == "blood_pressure":
        return f"{row.get('systolic', 0):.0f}/{row.get('diastolic', 0):.0f} mmHg"
    units = FIELD_UNITS.get(measurement, {})
    field = measurement if measurement in units else next(iter(units), measurement)
    value = row.get(field)
    return f"{value:g} {units.get(field, '')}".strip() if isinstance(value, int | float) else "?"


class StoreRecords:
    """``Records`` from the store; results are kept ``cache_seconds`` (0: read every time)."""

    def __init__(self, cfg: Config, store: ReadingSource, history: Callable[[str], Any],
                 clock: Any, summaries: Summaries, cache_seconds: float = 15.0) -> None:
        self.cfg, self.store, self.history, self.clock = cfg, store, history, clock
        self.summaries = summaries
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._risks: dict[str, tuple[float, RiskView]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str], make: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        value = make()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def _span(self) -> tuple[datetime, datetime]:
        now = self.clock.now()
        return now - timedelta(days=self.cfg.console.lookback_days), now + timedelta(minutes=5)

    # --- the list -----------------------------------------------------------------------------
    def status(self, patients: list[str]) -> dict[str, PatientStatus]:
        start, end = self._span()
        missing = [p for p in patients if not self._fresh(("status", p))]
        if missing:
            last = self.summaries.last(missing, start, end)
            now = time.monotonic()
            with self._lock:
                for p in missing:
                    self._cache[("status", p)] = (now, self._status(p, last.get(p, {})))
        with self._lock:
            return {p: self._cache[("status", p)][1] for p in patients}

    def _fresh(self, key: tuple[str, str]) -> bool:
        with self._lock:
            hit = self._cache.get(key)
        return hit is not None and time.monotonic() - hit[0] < self.cache_seconds

    def _status(self, patient: str, last: dict[tuple[str, str], dict[str, Any]]
                ) -> PatientStatus:
        """``last``: (measurement, device) -> that device's newest row of the measurement."""
        c = self.cfg.console
        now = self.clock.now()
        home, _ = self.cfg.patient(patient)
        seen: dict[str, datetime] = {}
        newest: dict[str, dict[str, Any]] = {}
        for (m, device), row in last.items():
            seen[device] = max(seen.get(device, row["time"]), row["time"])
            if m != "battery" and (m not in newest or row["time"] > newest[m]["time"]):
                newest[m] = row
        readings = tuple(LastReading(m, _text(m, newest[m]), newest[m]["time"])
                         for m in SHOWN if m in newest)
        devices = []
        for d in home.devices:
            if d.patient != patient or not DEVICE_MEASUREMENTS[d.kind]:
                continue  # buttons send nothing until pressed: silence is their normal state
            at = seen.get(d.id)
            level = last.get(("battery", d.id), {}).get("battery")
            devices.append(DeviceStatus(
                d.id, str(d.kind), at, level,
                at is None or now - at > timedelta(hours=c.silent_hours),
                isinstance(level, int | float) and level < c.low_battery_percent))
        return PatientStatus(patient, readings, tuple(devices))

    def risk(self, patients: list[str]) -> dict[str, RiskView]:
        """The last computed tiers (``refresh_risk``); patients without one are computed now."""
        ttl = self.cfg.console.risk.refresh_minutes * 60
        with self._lock:
            missing = [p for p in patients
                       if time.monotonic() - self._risks.get(p, (-ttl, None))[0] >= ttl]
        if missing:
            self.refresh_risk(missing)
        with self._lock:
            return {p: self._risks[p][1] for p in patients}

    def refresh_risk(self, patients: list[str] | None = None, batch: int = 100) -> int:
        """Recompute the tiers of these patients (default: all), ``batch`` per store request;
        how many. Run in the background every ``console.risk.refresh_minutes``."""
        every = patients if patients is not None else \
            [p.id for h in self.cfg.homes for p in h.patients]
        start, end = self._span()
        for i in range(0, len(every), batch):
            chunk = every[i:i + batch]
            inputs = self.summaries.risk_inputs(chunk, start, end)
            views = {}
            for p in chunk:
                home, _ = self.cfg.patient(p)
                r = assess(inputs[p], self.cfg.console.risk, home.zone)
                views[p] = RiskView(str(r.tier), r.reasons)
            now = time.monotonic()
            with self._lock:
                self._risks.update({p: (now, v) for p, v in views.items()})
        return len(every)

    # --- the page -----------------------------------------------------------------------------
    def _data(self, patient: str) -> tuple[Period, PatientData]:
        home, _ = self.cfg.patient(patient)
        today = self.clock.now().astimezone(home.zone).date()
        period = Period(today - timedelta(days=self.cfg.console.lookback_days - 1), today,
                        home.zone)
        return period, load(self.store, self.history, patient, period)

    def record(self, patient: str) -> Record:
        period, data = self._cached(("data", patient), partial(self._data, patient))
        home, person = self.cfg.patient(patient)
        targets = TARGETS[person.glucose_targets]
        sections = (_glucose(data.glucose, period, targets), _bp(data.bp, period),
                    _vitals(data.heart_rate, data.spo2))
        text = f"{period.first} to {period.last} ({period.days} days, {home.timezone})"
        return Record(text, sections)

    def figure(self, patient: str, key: str) -> bytes | None:
        if key not in _CAPTIONS:
            return None
        return self._cached(("figure:" + key, patient),  # type: ignore[no-any-return]
                            partial(self._draw, patient, key))

    def _draw(self, patient: str, key: str) -> bytes | None:
        period, data = self._cached(("data", patient), partial(self._data, patient))
        out = BytesIO()

        def png(fn: Callable[[Path], Path]) -> bytes:
            fn(out)  # type: ignore[arg-type]  # savefig takes a file object as well as a path
            return out.getvalue()

        if key == "agp":
            profile = agp(data.glucose, period.zone)
            if not profile.curves:
                return None
            m = glucose_metrics(data.glucose, period.start, period.end, period.zone)
            return png(lambda p: figures.agp_figure(profile, m, p))
        if key == "daily":
            unique, _ = deduplicate(data.glucose)
            return None if unique.empty else png(
                lambda p: figures.daily_figure(unique, cgm_devices(unique), period, p))
        if key == "bp":
            rows, _ = prepare_bp(data.bp, period.zone)
            return None if rows.empty else png(lambda p: figures.bp_figure(rows, p))
        if data.heart_rate.empty and data.spo2.empty:
            return None
        return png(lambda p: figures.vitals_figure(data.heart_rate, data.spo2, p))


_CAPTIONS = {"agp": "Ambulatory glucose profile", "daily": "Daily glucose",
             "bp": "Home blood pressure", "vitals": "Heart rate and SpO2"}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def _glucose(df: Any, period: Period, targets: GlucoseTargets) -> RecordSection:
    m = glucose_metrics(df, period.start, period.end, period.zone)
    if not m.readings:
        return RecordSection("Glucose", (), notes=m.caveats)
    miss = missed(m, targets)

    def row(label: str, key: str) -> RecordRow:
        t = targets.of(key)
        value = _pct(getattr(m, key)) + ("" if t is None else f" ({t.text})")
        return RecordRow(label, value, key in miss)

    rows = [RecordRow("readings", f"{m.readings} ({'CGM' if m.cgm else 'meter'})"),
            RecordRow("targets", targets.label),
            RecordRow("mean", f"{m.mean_mmol:.1f} mmol/L" if m.mean_mmol else "-"),
            row("time in range 3.9-10.0", "in_range"), row("below 3.9", "below_3_9"),
            row("below 3.0", "below_3_0"), row("above 10.0", "above_10_0"),
            row("above 13.9", "above_13_9"), row("CV", "cv_percent")]
    if m.gmi_percent is not None:
        rows.append(RecordRow("GMI", f"{m.gmi_percent:.1f} %"))
    figs = [("agp", _CAPTIONS["agp"])] if m.cgm else []
    figs.append(("daily", _CAPTIONS["daily"]))
    notes = m.caveats + (() if m.cgm else ("No AGP: these are not CGM data.",))
    return RecordSection("Glucose", tuple(rows), tuple(figs), notes)


def _bp(df: Any, period: Period) -> RecordSection:
    rows_df, _ = prepare_bp(df, period.zone)
    if rows_df.empty:
        return RecordSection("Blood pressure", (), notes=("No blood pressure readings.",))
    s = bp_summary(df, period.zone)
    rows = tuple(
        RecordRow(f"mean, {st.label}", "-" if st.systolic is None else
                  f"{st.systolic:.0f}/{st.diastolic:.0f} mmHg ({st.readings} readings)",
                  bool(st.mean_is_high))
        for st in s.unflagged)
    notes = [f"ESH protocol: the first day's {s.first_day_dropped} readings and"
             f" {s.outside_windows} outside 06-12 h and 18-24 h are not counted.", *s.caveats]
    if s.flagged:
        notes.append(f"{s.flagged} readings flagged by the device are left out.")
    return RecordSection("Blood pressure", rows, (("bp", _CAPTIONS["bp"]),), tuple(notes))


def _vitals(hr: Any, spo2: Any) -> RecordSection:
    rows = []
    for name, df, field, unit in (("heart rate", hr, "heart_rate", "bpm"),
                                  ("SpO2", spo2, "spo2", "%")):
        st = vital_stats(df, field)
        if st is not None:
            rows.append(RecordRow(name, f"mean {st.mean:.0f} {unit} ({st.low:.0f}-{st.high:.0f},"
                                        f" {st.readings} readings)"))
    if not rows:
        return RecordSection("Heart rate and SpO2", (), notes=("No readings.",))
    return RecordSection("Heart rate and SpO2", tuple(rows), (("vitals", _CAPTIONS["vitals"]),))
