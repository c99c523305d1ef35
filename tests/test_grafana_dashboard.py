"""The Grafana dashboard in configs/grafana/ references only measurements and fields that ingest
really writes: one reading of every kind goes through the real decoders and the real store into a
real influxd, and then every query of the dashboard runs there and returns data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homevitals.gateway.profiles import decode
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators import ble_values as v1
from homevitals.simulators import ble_values_ext as v2
from homevitals.vocab.readings import AlertDecision, AlertState, Event, EventKind, Reading, Severity

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "configs" / "grafana" / "homevitals-dashboard.json"
)
T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _values() -> list[tuple[str, bytes]]:
    return [
        ("2A18", v1.encode_glucose_measurement(1, T.replace(tzinfo=None), 5.6, unit="mol/L")),
        ("2A35", v1.encode_bp_measurement(132, 84, 100, pulse=71)),
        ("2A37", v2.encode_heart_rate(64)),
        ("2A5E", v2.encode_plx_spot_check(96, 70)),
    ]


def _store_one_of_each(store: InfluxV1Store) -> None:
    items: list[Any] = []
    for i, (char, data) in enumerate(_values()):
        d = decode(char, data)
        assert d.measurement is not None
        t = T + timedelta(minutes=i)
        items.append(
            Reading(
                f"r{i}",
                "home-1",
                "ana",
                f"dev-{i}",
                d.measurement,
                d.fields,
                t,
                t,
                characteristic=char,
                raw=data.hex(),
                flags=d.flags,
            )
        )
    items.append(Event("e1", "home-1", "ana", "button-1", EventKind.CALL_BUTTON, T, T, "", "press"))
    for state in (AlertState.FIRING, AlertState.RESOLVED):
        items.append(
            AlertDecision(
                "a1",
                state,
                "home-1",
                "ana",
                "night-low",
                Severity.HIGH,
                "why",
                T,
                "glucose",
                "glucose",
                3.4,
                "mmol/L",
                T + timedelta(hours=1),
            )
        )
    store.write(items)


def _rows(store: InfluxV1Store, q: str) -> list[dict[str, Any]]:
    out = []
    for series in store.query(q)[0].get("series", []):
        for values in series["values"]:
            out.append(
                {"measurement": series["name"], **dict(zip(series["columns"], values, strict=True))}
            )
    return out


def _queries(dash: dict[str, Any]) -> list[str]:
    qs = [t["query"] for p in dash["panels"] for t in p["targets"]]
    qs += [a["query"] for a in dash["annotations"]["list"]]
    return qs


def test_every_dashboard_query_runs_on_what_ingest_writes(influxd: Any, influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    _store_one_of_each(store)
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    fields: dict[str, set[str]] = {}  # field and tag keys: what a query can select
    for series in _rows(store, "SHOW FIELD KEYS"):
        fields.setdefault(series["measurement"], set()).add(series["fieldKey"])
    for series in _rows(store, "SHOW TAG KEYS"):
        fields.setdefault(series["measurement"], set()).add(series["tagKey"])
    for q in _queries(dash):
        measurement = re.search(r'FROM "([^"]+)"', q)
        assert measurement, q
        selected = re.findall(r'"([^"]+)"', q.split(" FROM ")[0])
        assert set(selected) <= fields[measurement.group(1)], (q, fields.get(measurement.group(1)))
        concrete = q.replace("$timeFilter", "time >= '2026-01-01T00:00:00Z'").replace(
            "$patient", "ana"
        )
        rows = _rows(store, concrete)
        assert rows, f"no data for {q}"
    variable = dash["templating"]["list"][0]["query"]
    assert {r["value"] for r in _rows(store, variable)} == {"ana"}
    assert {p["fieldConfig"]["defaults"]["unit"] for p in dash["panels"]} == {
        "conmmolL",  # Grafana's own "millimoles per litre (mmol/L)"
        "suffix: mmHg",
        "suffix: bpm",
        "percent",
    }


def test_annotation_tags_are_selected(influxd: Any, influx_db: str) -> None:
    store = InfluxV1Store(influxd.url, influx_db)
    _store_one_of_each(store)
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for annotation in dash["annotations"]["list"]:
        rows = _rows(store, annotation["query"].replace("$timeFilter", "time > 0")
                     .replace("$patient", "ana"))
        for column in ("textColumn", "tagsColumn"):
            if column in annotation:
                assert all(row.get(annotation[column]) for row in rows), (annotation, rows)
    alerts = next(a for a in dash["annotations"]["list"] if a["name"] == "Alerts")
    assert alerts["tagsColumn"] == "severity"


def test_panels_show_gaps_and_both_blood_pressure_thresholds() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = {p["title"]: p["fieldConfig"]["defaults"] for p in dash["panels"]}
    # A CGM sends every 5 min: a gap over 15 min is drawn as a gap, not a straight line.
    assert panels["Glucose"]["custom"]["insertNulls"] == 900000
    assert panels["Glucose"]["custom"]["spanNulls"] is False
    steps = [s["value"] for s in panels["Blood pressure"]["thresholds"]["steps"]]
    assert steps == [None, 85, 135, 180]  # diastolic 85, systolic 135 (home), crisis 180
    requires = {(r["type"], r["id"]) for r in dash["__requires"]}
    assert requires == {("grafana", "grafana"), ("datasource", "influxdb"),
                        ("panel", "timeseries")}
    assert {p["type"] for p in dash["panels"]} == {"timeseries"}
