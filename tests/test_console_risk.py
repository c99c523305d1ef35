"""Risk tiers on the patient list and page, the same from the embedded store and from a real
influxd; the tier sets how soon a follow-up is due; the inbox shows the value now and the trend.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from console_site import Client, Site

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import AlertDecision, FieldValue, Reading
from homevitals.vocab.units import Unit

ZONE = ZoneInfo("Europe/Ljubljana")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
LOW_AT = NOW - timedelta(hours=3)


def _glucose(i: int, at: datetime, value: float) -> Reading:
    return Reading(f"g{i}", "home-a", "ana", "cgm-1", "glucose",  # type: ignore[arg-type]
                   {"glucose": FieldValue(value, Unit.MMOL_PER_L)}, at, at)


def _bp(i: int, at: datetime) -> Reading:
    return Reading(f"bp{i}", "home-a", "eva", "bp-2", "blood_pressure",  # type: ignore[arg-type]
                   {"systolic": FieldValue(140, Unit.MMHG), "diastolic": FieldValue(88, Unit.MMHG),
                    "pulse": FieldValue(70, Unit.BPM)}, at, at)


def readings() -> list[Reading]:
    """Ana: a day of CGM at 6.0 with one 2.8 three hours ago. Eva: home BP 140/88 morning and
    evening, twice each, on 5 days (day 1 is discarded: 16 readings on 4 days count)."""
    out = [_glucose(i, NOW - timedelta(minutes=5 * i), 2.8 if NOW - timedelta(
        minutes=5 * i) == LOW_AT else 6.0) for i in range(288)]
    today = NOW.astimezone(ZONE).date()
    for d in range(1, 6):
        for hhmm in ("07:00", "07:02", "19:00", "19:02"):
            at = datetime.combine(today - timedelta(days=d), datetime.strptime(
                hhmm, "%H:%M").time(), ZONE).astimezone(UTC)
            out.append(_bp(len(out), at))
    return out


@pytest.fixture(scope="module", params=["sqlite", "influx_v1"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    """One console per store for the module: a test adds alerts, which set no risk tier."""
    s = Site(tmp_path_factory.mktemp("risk"))
    if request.param == "influx_v1":
        influxd = request.getfixturevalue("influxd")
        db = f"console_risk_{secrets.token_hex(4)}"
        influxd.create_database(db)
        s.data["store"] = {"kind": "influx_v1", "url": influxd.url, "database": db}
        s.config.write_text(json.dumps(s.data), encoding="utf-8")  # JSON is YAML
        store: Any = InfluxV1Store(influxd.url, db)
    else:
        store = SqliteStore(s.data["store"]["path"])
    store.write(readings())
    store.close()
    yield s.start()
    s.stop()


def _local(t: datetime) -> str:
    return t.astimezone(ZONE).strftime("%Y-%m-%d %H:%M")


def test_the_tier_names_the_readings_that_set_it(site: Site) -> None:
    c = Client(site.port)
    c.sign_in("doca")
    rows = {p["id"]: p for p in json.loads(c.get("/api/patients")[2])["patients"]}
    assert rows["ana"]["risk_tier"] == "high"
    assert rows["ana"]["risk_reasons"] == [
        f"level-2-low (high): 1 readings below 3.0 mmol/L (> 0); lowest 2.8 mmol/L at"
        f" {_local(LOW_AT)}"]  # 1 of 288 below 3.9 is 0.3 %: time below range holds not
    assert rows["eva"]["risk_tier"] == "medium"
    systolic, diastolic = rows["eva"]["risk_reasons"]
    assert systolic.startswith("home-bp-systolic (medium): home systolic mean 140 mmHg (>= 135)"
                               " from 16 readings on 4 days (ESH protocol); highest 140/88 at")
    assert diastolic.startswith("home-bp-diastolic (medium): home diastolic mean 88 mmHg (>= 85)")
    listed = c.get("/patients")[2]
    assert '<span class="tier tier-high"' in listed and "high risk</span>" in listed
    page = c.get("/patients/ana")[2]
    assert 'Risk tier: <span class="tier tier-high">high</span>' in page
    assert f"lowest 2.8 mmol/L at {_local(LOW_AT)}" in page
    docb = Client(site.port)
    docb.sign_in("docb")
    bor = json.loads(docb.get("/api/patients/bor")[2])
    assert (bor["risk_tier"], bor["risk_reasons"]) == ("low", [])


def _fire(site: Site, patient: str, observed: datetime, value: float,
          trend: float | None = None) -> str:
    d = AlertDecision(
        alert_id="a" + secrets.token_hex(15), state="firing", home="home-a",  # type: ignore[arg-type]
        patient=patient, rule="night-low-glucose", severity="high",  # type: ignore[arg-type]
        reason="Low glucose", time=datetime.now(UTC), measurement="glucose", field="glucose",
        value=value, unit="mmol/L", observed_at=observed, trend=trend)
    ledger = Ledger(site.cfg.alerts.outbox_path)
    try:
        Escalator(site.cfg, ledger, SystemClock()).on_decision(d)
    finally:
        ledger.close()
    return d.alert_id


def test_a_high_tier_patient_is_followed_up_sooner(site: Site) -> None:
    ana = _fire(site, "ana", NOW - timedelta(minutes=10), 2.9)
    eva = _fire(site, "eva", NOW, 3.2)
    c = Client(site.port)
    c.sign_in("doca")
    opened = {a["alert_id"]: datetime.fromisoformat(a["opened_at"])
              for a in json.loads(c.get("/api/inbox")[2])["alerts"]}
    due = {f["alert_id"]: datetime.fromisoformat(f["due_at"])
           for f in json.loads(c.get("/api/followups")[2])["followups"]}
    # console.risk.follow_up_hours: high 24 h (less than the high severity's 48 h); medium 48 h
    assert due[ana] - opened[ana] == timedelta(hours=24)
    assert due[eva] - opened[eva] == timedelta(hours=48)

    # The inbox: ana's newest reading (6.0, now) is newer than the alert's (2.9, 10 min ago):
    # rising by 3.1 mmol/L in 10 min.
    inbox = c.get("/inbox/list")[2]
    assert "now <b>6 mmol/L</b>" in inbox
    assert 'data-trend="rising">\u2197 rising (+0.31 mmol/L/min)' in inbox


@pytest.mark.parametrize(("rule", "message"), [
    ({"id": "x", "metric": "bp_systolic_mean", "above": 1, "below": 2, "tier": "high"},
     "risk rule x: give exactly one of above, at_least, below"),
    ({"id": "x", "metric": "bp_pulse", "above": 1, "tier": "high"},
     "metric 'bp_pulse' is not one of glucose_below_3_0_count"),
    ({"id": "x", "metric": "bp_systolic_mean", "above": 1, "tier": "low"},
     "a rule raises the tier to medium or high"),
])
def test_a_bad_risk_rule_is_refused_naming_it(rule: dict[str, Any], message: str) -> None:
    text = json.dumps({"console": {"risk": {"rules": [rule]}}})
    with pytest.raises(ConfigError) as err:
        parse_config(text, "homevitals.yaml")
    assert "homevitals.yaml" in str(err.value) and "console.risk.rules" in str(err.value)
    assert message in str(err.value)
