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
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from homevitals.config import Config
from homevitals.ingest.influx_v1 import InfluxV1Store, quote_identifier, rows_from_series
from homevitals.ingest.points import rows_in_span, span_ns
from homevitals.reports.data import ReadingSource, readings_frame
from homevitals.reports.metrics import HIGH_1, HIGH_2, LOW_1, LOW_2
from homevitals.reports.risk import RiskInputs, risk_inputs

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
        where = self._where(patients, start, end)
        found = self._run([f"SELECT * FROM {self._source(m)} WHERE {where}"
                           " GROUP BY \"patient\", \"device\" ORDER BY time DESC LIMIT 1"
                           for m in _LAST])
        out: Last = {p: {} for p in patients}
        for m, series in zip(_LAST, found, strict=True):
            for s in series:
                tags = s.get("tags", {})
                for row in rows_in_span(rows_from_series(s), start, end):
                    out[tags["patient"]][(m, tags["device"])] = row
        return out

    def risk_inputs(self, patients: Sequence[str], start: datetime, end: datetime
                    ) -> dict[str, RiskInputs]:
        where, g = self._where(patients, start, end), self._source("glucose")
        limits = ("", f" AND glucose < {LOW_2!r}", f" AND glucose < {LOW_1!r}",
                  f" AND glucose > {HIGH_2!r}",
                  f" AND glucose >= {LOW_1!r} AND glucose <= {HIGH_1!r}")
        found = self._run(
            [f"SELECT COUNT(glucose) FROM {g} WHERE {where}{x} GROUP BY \"patient\""
             for x in limits]
            + [f"SELECT MIN(glucose) FROM {g} WHERE {where} GROUP BY \"patient\"",
               f"SELECT * FROM {self._source('blood_pressure')} WHERE {where}"])
        counts = [{s["tags"]["patient"]: int(s["values"][0][1]) for s in series}
                  for series in found[:5]]
        lowest = {s["tags"]["patient"]: (float(s["values"][0][1]),
                                         pd.Timestamp(s["values"][0][0], tz="UTC").to_pydatetime())
                  for s in found[5]}
        bp_rows = [r for s in found[6] for r in rows_in_span(rows_from_series(s), start, end)]
        out = {}
        for p in patients:
            home, _ = self.cfg.patient(p)
            bp = readings_frame([r for r in bp_rows if r.get("patient") == p], _BP)
            x = risk_inputs(readings_frame([], ("glucose",)), bp, home.zone)
            out[p] = RiskInputs(
                counts[0].get(p, 0), counts[1].get(p, 0), counts[2].get(p, 0),
                counts[3].get(p, 0), counts[4].get(p, 0), lowest.get(p), x.bp_readings,
                x.bp_days, x.systolic_mean, x.diastolic_mean, x.highest_bp)
        return out


def build_summaries(cfg: Config, store: Any) -> Summaries:
    if isinstance(store, InfluxV1Store):
        return InfluxSummaries(cfg, store)
    return RowSummaries(cfg, store)
