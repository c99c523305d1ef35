"""What the patient list needs from the store for many patients at once: each device's newest
row per measurement, and the inputs of the risk tier (``reports.risk.RiskInputs``).

Two implementations of ``Summaries``, chosen by ``build_summaries`` from the store kind, as the
composition root chooses backends: ``InfluxSummaries`` asks InfluxDB 1.x in one request for all
the patients of a page (``GROUP BY patient, device`` with ``LIMIT 1`` per series, ``COUNT`` with
the consensus limits in ``WHERE``, ``MIN`` as a selector naming the lowest reading), and
``RowSummaries`` reads rows per patient through ``query_readings`` (the embedded store, v2).
Both give the same figures: the tests run the same data through both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from homevitals.ingest.influx_v1 import InfluxV1Store, quote_identifier, rows_from_series
from homevitals.ingest.points import from_ns, rows_in_span, span_ns
from homevitals.reports.data import ReadingSource, readings_frame
from homevitals.reports.metrics import HIGH_1, HIGH_2, LOW_1, LOW_2
from homevitals.reports.risk import RiskInputs, risk_inputs
from homevitals.vocab.config import DEVICE_MEASUREMENTS, Config
from homevitals.vocab.units import FIELD_UNITS

__all__ = ["SHOWN", "InfluxSummaries", "RowSummaries", "Summaries", "build_summaries"]

SHOWN = ("glucose", "blood_pressure", "heart_rate", "spo2", "temperature", "weight")
_LAST = (*SHOWN, "battery")
_BP = ("systolic", "diastolic", "pulse")

Last = dict[str, dict[tuple[str, str], dict[str, Any]]]  # patient -> (measurement, device) -> row


class Summaries(Protocol):
    def last(self, patients: Sequence[str], start: datetime, end: datetime) -> Last: ...

    def risk_inputs(self, patients: Sequence[str], start: datetime, end: datetime
                    ) -> dict[str, RiskInputs]: ...


class RowSummaries:
    def __init__(self, cfg: Config, store: ReadingSource) -> None:
        self.cfg, self.store = cfg, store

    def last(self, patients: Sequence[str], start: datetime, end: datetime) -> Last:
        out: Last = {p: {} for p in patients}
        for p in patients:
            for m in _LAST:
                for row in self.store.query_readings(m, p, start, end):
                    out[p][(m, str(row.get("device")))] = row  # oldest first: the last wins
        return out

    def risk_inputs(self, patients: Sequence[str], start: datetime, end: datetime
                    ) -> dict[str, RiskInputs]:
        out = {}
        for p in patients:
            home, _ = self.cfg.patient(p)
            g = readings_frame(self.store.query_readings("glucose", p, start, end), ("glucose",))
            bp = readings_frame(self.store.query_readings("blood_pressure", p, start, end), _BP)
            out[p] = risk_inputs(g, bp, home.zone)
        return out


class InfluxSummaries:
    def __init__(self, cfg: Config, store: InfluxV1Store) -> None:
        self.cfg, self.store = cfg, store

    def _source(self, measurement: str) -> str:
        source = quote_identifier(measurement)
        rp = self.store.retention_policy
        return f"{quote_identifier(rp)}.{source}" if rp else source

    @staticmethod
    def _where(patients: Sequence[str], start: datetime, end: datetime) -> str:
        lo, hi = span_ns(start, end)
        ids = "|".join(re.escape(p) for p in patients)  # ids are [A-Za-z0-9_.-]: check_id
        return f"time >= {lo} AND time < {hi} AND \"patient\" =~ /^({ids})$/"

    def _run(self, statements: list[str]) -> list[list[dict[str, Any]]]:
        """Each statement's series (``name``, ``tags``, ``columns``, ``values``)."""
        results = self.store.query(";".join(statements))
        return [r.get("series", []) for r in results]

    def last(self, patients: Sequence[str], start: datetime, end: datetime) -> Last:
        # The last day first (a CGM's 288 points per patient, not 14 days of them); further
        # back only for the patients with a device that sent nothing in it.
        recent = max(start, end - timedelta(days=1))
        out = self._last(patients, recent, end)
        quiet = [p for p in patients if self._devices(p) - {d for _, d in out[p]}]
        if quiet and recent > start:
            for p, older in self._last(quiet, start, recent).items():
                out[p] = {**older, **out[p]}
        return out

    def _devices(self, patient: str) -> set[str]:
        home, _ = self.cfg.patient(patient)
        return {d.id for d in home.devices if d.patient == patient and DEVICE_MEASUREMENTS[d.kind]}

    def _last(self, patients: Sequence[str], start: datetime, end: datetime) -> Last:
        where = self._where(patients, start, end)
        statements = []
        for m in _LAST:
            first, *rest = FIELD_UNITS.get(m, {m: None})
            more = "".join(f", {quote_identifier(f)}" for f in rest)
            statements.append(f"SELECT LAST({quote_identifier(first)}){more}, reading_id FROM"
                              f" {self._source(m)} WHERE {where} GROUP BY \"patient\", \"device\"")
        out: Last = {p: {} for p in patients}
        for m, series in zip(_LAST, self._run(statements), strict=True):
            for s in series:
                first = next(iter(FIELD_UNITS.get(m, {m: None})))
                s = {**s, "name": m, "columns": [first if c == "last" else c
                                                 for c in s["columns"]]}
                tags = s.get("tags", {})
                for row in rows_from_series(s):
                    out[tags["patient"]][(m, tags["device"])] = row
        return out

    def risk_inputs(self, patients: Sequence[str], start: datetime, end: datetime
                    ) -> dict[str, RiskInputs]:
        # Two scans of the glucose: the count of every reading, and the rare readings outside
        # 3.9-13.9 themselves (they are few, and the reasons name them). A count in range is
        # asked for only when a configured rule uses it.
        where, g = self._where(patients, start, end), self._source("glucose")
        in_range = any(r.metric == "glucose_in_range_percent" for r in self.cfg.console.risk.rules)
        statements = [
            f"SELECT COUNT(glucose) FROM {g} WHERE {where} GROUP BY \"patient\"",
            f"SELECT glucose FROM {g} WHERE {where} AND (glucose < {LOW_1!r}"
            f" OR glucose > {HIGH_2!r}) GROUP BY \"patient\"",
            f"SELECT * FROM {self._source('blood_pressure')} WHERE {where}"]
        if in_range:
            statements.append(f"SELECT COUNT(glucose) FROM {g} WHERE {where} AND glucose >="
                              f" {LOW_1!r} AND glucose <= {HIGH_1!r} GROUP BY \"patient\"")
        found = self._run(statements)
        total = {s["tags"]["patient"]: int(s["values"][0][1]) for s in found[0]}
        inside = {s["tags"]["patient"]: int(s["values"][0][1]) for s in found[3]} \
            if in_range else {}
        rare = {s["tags"]["patient"]: [(float(v), from_ns(int(t))) for t, v in s["values"]]
                for s in found[1]}
        bp_rows = [r for s in found[2] for r in rows_in_span(rows_from_series(s), start, end)]
        out = {}
        for p in patients:
            home, _ = self.cfg.patient(p)
            mine = [r for r in bp_rows if r.get("patient") == p]
            x = risk_inputs(readings_frame([], ("glucose",)), readings_frame(mine, _BP),
                            home.zone) if mine else RiskInputs()  # pandas costs ms per call
            odd = rare.get(p, [])
            lows = [v for v, _ in odd if v < LOW_1]
            out[p] = RiskInputs(
                total.get(p, 0), sum(v < LOW_2 for v in lows), len(lows),
                sum(v > HIGH_2 for v, _ in odd), inside.get(p, 0),
                min(odd) if lows else None, x.bp_readings, x.bp_days, x.systolic_mean,
                x.diastolic_mean, x.highest_bp)
        return out


def build_summaries(cfg: Config, store: Any) -> Summaries:
    if isinstance(store, InfluxV1Store):
        return InfluxSummaries(cfg, store)
    return RowSummaries(cfg, store)
