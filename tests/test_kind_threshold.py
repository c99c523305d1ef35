"""The ``threshold`` kind (rules/kinds/threshold.py): bounds in the patient's time window and
zone, hysteresis, sustained and confirmed conditions, per-patient overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from rules_helpers import (
    GLUCOSE,
    NIGHT_LOW,
    ROOT,
    T0,
    arrive,
    cgm,
    config,
    engine,
    glucose,
    reading,
    states,
    story,
)

from homevitals.vocab.config import parse_config
from homevitals.vocab.errors import ConfigError


def test_night_window_crosses_midnight_in_the_patients_zone(tmp_path: Path) -> None:
    e = engine(tmp_path, config([NIGHT_LOW]))
    zone = ZoneInfo("Europe/Ljubljana")
    # 15:00 local is not night: no alert. 23:30 and 03:10 local are.
    assert e.on_reading(glucose(datetime(2026, 11, 20, 15, 0, tzinfo=zone), 3.6)) == []
    [d] = e.on_reading(glucose(datetime(2026, 11, 21, 3, 10, tzinfo=zone), 3.4))
    assert (d.state, d.value, d.observed_at) == (
        "firing", 3.4, datetime(2026, 11, 21, 2, 10, tzinfo=UTC))
    [clear] = e.on_reading(glucose(datetime(2026, 11, 21, 7, 30, tzinfo=zone), 5.8))
    assert (clear.state, clear.alert_id) == ("resolved", d.alert_id)
    assert e.on_reading(glucose(datetime(2026, 11, 21, 23, 30, tzinfo=zone), 3.5))[0].state == (
        "firing")

@pytest.mark.parametrize(
    ("utc", "fires"),
    [
        # America/New_York, 2026-11-01: clocks fall back at 02:00 EDT -> 01:00 EST.
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), True),  # 01:30 EDT, first pass
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), True),  # 01:30 EST, the repeated hour
        (datetime(2026, 11, 1, 11, 59, tzinfo=UTC), True),  # 06:59 EST: still night
        (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), False),  # 07:00 EST: morning
        # 2026-03-08: clocks spring forward 02:00 EST -> 03:00 EDT; 07:00 EDT is 11:00 UTC.
        (datetime(2026, 3, 8, 10, 59, tzinfo=UTC), True),  # 06:59 EDT
        (datetime(2026, 3, 8, 11, 0, tzinfo=UTC), False),  # 07:00 EDT (would be 06:00 EST)
        (datetime(2026, 3, 8, 2, 59, tzinfo=UTC), False),  # 21:59 EST on the 7th
    ],
)
def test_window_follows_daylight_saving_changes(tmp_path: Path, utc: datetime, fires: bool) -> None:
    e = engine(tmp_path, config([NIGHT_LOW], tz="America/New_York"))
    assert bool(e.on_reading(glucose(utc, 3.2))) is fires

def test_flapping_value_gives_one_alert_not_ten(tmp_path: Path) -> None:
    e = engine(tmp_path, config([{**NIGHT_LOW, "window": None}]))
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    values = [3.8, 4.0, 3.85, 4.1, 3.7, 4.2, 3.88, 4.05, 3.9, 3.6, 4.3, 3.8]
    out = []
    for i, v in enumerate(values):
        out += e.on_reading(glucose(t0 + timedelta(minutes=5 * i), v))
    assert states(out) == [("firing", "night-low")]
    out = e.on_reading(glucose(t0 + timedelta(hours=2), 4.6))  # past clear_at 4.4
    assert states(out) == [("resolved", "night-low")]

def test_redelivered_reading_is_judged_once(tmp_path: Path) -> None:
    rule = {**NIGHT_LOW, "window": None, "n_of_m": {"n": 2, "m": 3}}
    e = engine(tmp_path, config([rule]))
    r = glucose(datetime(2026, 11, 21, 1, 0, tzinfo=UTC), 3.5)
    assert e.on_reading(r) == [] and e.on_reading(r) == []  # 1 of 3, twice, is still 1 of 3
    assert states(e.on_reading(glucose(r.time + timedelta(minutes=5), 3.4))) == [
        ("firing", "night-low")]

def test_sustained_for_a_duration(tmp_path: Path) -> None:
    rule = {"id": "hr-high", "kind": "threshold", "measurement": "heart_rate",
            "field": "heart_rate", "above": 130, "clear_at": 120, "unit": "bpm",
            "for_minutes": 5, "severity": "high", "reason": "Resting heart rate above 130"}
    e = engine(tmp_path, config([rule]))
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)

    def hr(minute: int, v: float) -> list[Any]:
        return e.on_reading(reading(t0 + timedelta(minutes=minute), "heart_rate",
                                    heart_rate=(v, "bpm")))

    assert hr(0, 140) == [] and hr(2, 150) == [] and hr(3, 110) == []  # broken streak
    assert hr(4, 140) == [] and hr(8, 141) == []
    assert states(hr(9, 142)) == [("firing", "hr-high")]  # 5 minutes since 04:00

def test_hypertensive_crisis_confirmed_by_a_second_reading(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
    crisis = [r for r in defaults if r["id"].startswith("hypertensive-crisis")]
    e = engine(tmp_path, config(crisis))
    t0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

    def bp(minute: int, sys: float, dia: float) -> list[Any]:
        return e.on_reading(reading(t0 + timedelta(minutes=minute), "blood_pressure",
                                    systolic=(sys, "mmHg"), diastolic=(dia, "mmHg")))

    assert bp(0, 185, 100) == []  # one reading is not a crisis yet
    assert bp(20, 182, 95) == []  # too long after the first to confirm it
    assert states(bp(24, 181, 96)) == [("firing", "hypertensive-crisis-systolic")]

def test_unconfirmed_crisis_fires_at_once_when_configured(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
    [rule] = [r for r in defaults if r["id"] == "hypertensive-crisis-diastolic"]
    del rule["confirm_within_minutes"]
    e = engine(tmp_path, config([rule]))
    r = reading(datetime(2026, 11, 21, 9, 0, tzinfo=UTC), "blood_pressure",
                systolic=(150, "mmHg"), diastolic=(120, "mmHg"))
    assert states(e.on_reading(r)) == [("firing", "hypertensive-crisis-diastolic")]

def test_per_patient_override_lowers_a_copd_patients_spo2_floor(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
    spo2 = [r for r in defaults if r["id"] == "spo2-low"]
    cfg = config(spo2, rule_overrides={"spo2-low": {"below": 88, "clear_at": 90}})
    e = engine(tmp_path, cfg)
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    out = []
    for i, v in enumerate([89, 89, 89, 89]):  # low for most people, her usual for COPD
        out += e.on_reading(reading(t0 + timedelta(minutes=i), "spo2", spo2=(v, "%")))
    assert out == []
    for i, v in enumerate([87, 86, 89, 87]):
        out += e.on_reading(reading(t0 + timedelta(minutes=10 + i), "spo2", spo2=(v, "%")))
    assert states(out) == [("firing", "spo2-low")]

def test_override_naming_an_unknown_rule_or_breaking_a_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rule_overrides names unknown rule 'nope'"):
        config([NIGHT_LOW], rule_overrides={"nope": {"below": 3}})
    with pytest.raises(ConfigError, match="clear_at must be >= below"):
        config([NIGHT_LOW], rule_overrides={"night-low": {"below": 5.0}})

def test_level_1_sensor_noise_is_not_an_alert_but_a_sustained_low_is(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    # Single CGM dips below 3.9 in a flat night: noise, not an event (< 15 minutes).
    assert story(e, [4.3, 3.8, 4.2, 4.1, 3.7, 3.8, 4.2, 4.3]) == []
    # 15 minutes below 3.9 on a slow drift is a level-1 event.
    got = story(e, [4.1, 3.8, 3.7, 3.7, 3.6], start=T0 + timedelta(hours=2))
    assert [(m, str(d.state), d.rule) for m, d in got] == [(20, "firing", "hypo-level-1")]

def test_a_finger_stick_is_judged_alone(tmp_path: Path) -> None:
    e = engine(tmp_path, config(GLUCOSE))
    [d] = arrive(e, cgm(T0, 3.6, device="meter-1"))
    assert (str(d.state), d.rule, d.value) == ("firing", "hypo-level-1", 3.6)

def test_a_rule_on_a_measurement_no_device_produces_is_refused() -> None:
    text = (ROOT / "configs" / "homevitals.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "measurement: glucose\n      field: glucose\n      below: 3.9\n      unit: mmol/L",
        "measurement: spo2\n      field: spo2\n      below: 90\n      unit: '%'",
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "x.yaml")
    assert "rule night-low-glucose watches spo2, which no device produces" in str(err.value)
