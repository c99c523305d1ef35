"""The rule engine's judgement, through its public entry points, with its real SQLite state.

Each test feeds readings (as the daemon decodes them from MQTT) and asserts the alert decisions a
doctor's phone would hear about; the daemon-level stories with Mosquitto are in
tests/test_alerts_stories.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from homevitals.config import Config, RulesConfig, parse_config
from homevitals.errors import ConfigError
from homevitals.outbox import DurableQueue
from homevitals.readings import FieldValue, GatewayState, GatewayStatus, Reading
from homevitals.rules.engine import RuleEngine
from homevitals.topics import Topics
from homevitals.units import Unit

ROOT = Path(__file__).parent.parent
_ids = itertools.count(1)


def config(rules: list[dict[str, Any]], tz: str = "Europe/Ljubljana", **patient: Any) -> Config:
    data = {
        "homes": [{
            "id": "home-1", "timezone": tz,
            "patients": [{
                "id": "ana", "name": "Ana Novak",
                "care_team": [{"name": "Dr. K", "role": "family_doctor", "phone": "+15550100001"}],
                **patient,
            }],
            "devices": [
                {"id": "cgm-1", "kind": "cgm", "patient": "ana"},
                {"id": "bp-1", "kind": "blood_pressure", "patient": "ana"},
                {"id": "ox-1", "kind": "pulse_oximeter", "patient": "ana"},
                {"id": "hr-1", "kind": "heart_rate", "patient": "ana"},
                {"id": "meter-1", "kind": "glucose_meter", "patient": "ana"},
            ],
        }],
        "rules": {"definitions": rules},
    }
    return parse_config(yaml.safe_dump(data))


class Clock:
    """The rules daemon's clock: what a message's arrival is judged by (``e.clock.t = ...``)."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def engine(tmp: Path, cfg: Config, now: datetime | None = None) -> RuleEngine:
    q = DurableQueue(tmp / "rules.sqlite")
    clock = Clock(now or datetime(2026, 11, 21, tzinfo=UTC))
    return RuleEngine(list(cfg.rules.definitions), cfg.homes, q, Topics(), clock)


def arrive(e: RuleEngine, r: Reading, at: datetime | None = None) -> list[Any]:
    """``r`` arrives at the rules at ``at`` (default: its gateway receive time)."""
    e.clock.t = at or r.received_at  # type: ignore[attr-defined]
    return e.on_reading(r)


def reading(t: datetime, measurement: str = "glucose", **fields: tuple[float, str]) -> Reading:
    return Reading(
        reading_id=f"r{next(_ids)}", home="home-1", patient="ana", device="cgm-1",
        measurement=measurement,  # type: ignore[arg-type]
        fields={k: FieldValue(v, Unit(u)) for k, (v, u) in fields.items()},
        time=t, received_at=t,
    )


def glucose(t: datetime, v: float) -> Reading:
    return reading(t, glucose=(v, "mmol/L"))


NIGHT_LOW = {
    "id": "night-low", "kind": "threshold", "measurement": "glucose", "field": "glucose",
    "below": 3.9, "clear_at": 4.4, "unit": "mmol/L", "window": {"start": "22:00", "end": "07:00"},
    "severity": "high", "reason": "Night-time low glucose",
}


def states(decisions: list[Any]) -> list[tuple[str, str]]:
    return [(str(d.state), d.rule) for d in decisions]


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


def test_rate_of_fall(tmp_path: Path) -> None:
    rule = {"id": "falling", "kind": "rate", "measurement": "glucose", "field": "glucose",
            "unit": "mmol/L", "fall": 2.0, "within_minutes": 30, "severity": "medium",
            "reason": "Glucose falling fast"}
    e = engine(tmp_path, config([rule]))
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    assert e.on_reading(glucose(t0, 8.0)) == []
    assert e.on_reading(glucose(t0 + timedelta(minutes=40), 5.5)) == []  # slow: 40 min
    assert e.on_reading(glucose(t0 + timedelta(minutes=50), 4.5)) == []  # 1.0 in 10 min
    [d] = e.on_reading(glucose(t0 + timedelta(minutes=65), 3.2))  # 2.3 in 25 min
    assert (d.state, d.value) == ("firing", 3.2)


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


def test_call_button_is_always_critical() -> None:
    with pytest.raises(ConfigError, match="the call button is always severity critical"):
        config([{"id": "cb", "kind": "event", "event": "call_button", "severity": "high",
                 "reason": "help"}])


def test_missing_cgm_data_at_night_and_its_recovery(tmp_path: Path) -> None:
    rule = {"id": "cgm-lost", "kind": "missing", "measurement": "glucose", "after_minutes": 30,
            "window": {"start": "22:00", "end": "07:00"}, "severity": "medium",
            "reason": "No glucose reading for 30 minutes at night"}
    e = engine(tmp_path, config([rule]))
    zone = ZoneInfo("Europe/Ljubljana")
    last = datetime(2026, 11, 21, 2, 0, tzinfo=zone)
    arrive(e, glucose(last, 6.0))
    assert e.tick(last + timedelta(minutes=29)) == []
    [d] = e.tick(last + timedelta(minutes=31))
    assert (d.state, d.measurement, d.observed_at) == ("firing", "glucose", last)
    assert e.tick(last + timedelta(minutes=45)) == []  # one open alert, not one per tick
    # Back at 02:50: one reading is not yet "flowing again" (clear_after_minutes, default 10).
    assert arrive(e, glucose(last + timedelta(minutes=50), 6.1)) == []
    assert arrive(e, glucose(last + timedelta(minutes=55), 6.1)) == []
    [back] = arrive(e, glucose(last + timedelta(minutes=60), 6.2))
    assert (back.state, back.alert_id) == ("resolved", d.alert_id)
    assert back.reason.endswith("readings have been arriving again for 10 minutes")
    # By day the same gap is not news.
    day = datetime(2026, 11, 21, 12, 0, tzinfo=zone)
    arrive(e, glucose(day, 6.0))
    assert e.tick(day + timedelta(hours=2)) == []


def test_gateway_offline_by_last_will_and_by_silence(tmp_path: Path) -> None:
    rule = {"id": "gateway-offline", "kind": "gateway", "offline_grace_minutes": 5,
            "heartbeat_missed_minutes": 10, "severity": "medium", "reason": "Gateway offline"}
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, config([rule]), now=t0)
    clock: Any = e.clock
    e.on_heartbeat("home-1", t0, {})
    e.on_status(GatewayStatus("home-1", GatewayState.OFFLINE, t0 - timedelta(days=2)))
    assert e.tick(t0 + timedelta(minutes=4)) == []  # a reboot is not news
    [d] = e.tick(t0 + timedelta(minutes=6))
    assert (d.state, d.measurement, d.observed_at) == ("firing", "gateway", t0)
    clock.t = t0 + timedelta(minutes=20)
    assert e.on_status(GatewayStatus("home-1", GatewayState.ONLINE, clock.t)) == []
    clock.t += timedelta(minutes=5)
    assert e.on_heartbeat("home-1", clock.t, {}) == []  # back 5 minutes: not yet all clear
    assert e.tick(t0 + timedelta(minutes=30)) == []  # the all clear needs a message, not a tick
    clock.t += timedelta(minutes=5)
    [back] = e.on_heartbeat("home-1", clock.t, {})  # heard from for 10 minutes
    assert back.state == "resolved"
    # Silence: heartbeats stop without a will (the broker has not noticed yet).
    clock.t = t0 + timedelta(minutes=31)
    e.on_heartbeat("home-1", clock.t, {})
    assert e.tick(t0 + timedelta(minutes=40)) == []
    assert states(e.tick(t0 + timedelta(minutes=42))) == [("firing", "gateway-offline")]


def test_battery_low_from_heartbeat_with_the_device_named(tmp_path: Path) -> None:
    rule = {"id": "device-battery-low", "kind": "battery", "below": 15, "clear_at": 30,
            "severity": "low", "reason": "A device battery is low"}
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, config([rule]), now=t0)
    assert e.on_heartbeat("home-1", t0, {"cgm-1": 40, "bp-1": 80}) == []
    [d] = e.on_heartbeat("home-1", t0 + timedelta(hours=1), {"cgm-1": 12, "bp-1": 80})
    assert (d.field, d.value, d.unit) == ("cgm-1 battery", 12, "%")
    assert e.on_heartbeat("home-1", t0 + timedelta(hours=2), {"cgm-1": 20}) == []  # hysteresis
    assert states(e.on_heartbeat("home-1", t0 + timedelta(hours=3), {"cgm-1": 100})) == [
        ("resolved", "device-battery-low")]


def test_state_survives_a_restart_without_realerting_or_forgetting(tmp_path: Path) -> None:
    rule = {**NIGHT_LOW, "window": None, "n_of_m": {"n": 2, "m": 3}}
    cfg = config([rule])
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, cfg)
    assert e.on_reading(glucose(t0, 3.5)) == []
    e.outbox.close()
    e = engine(tmp_path, cfg)  # restarted: remembers the first low of the window
    [d] = e.on_reading(glucose(t0 + timedelta(minutes=5), 3.4))
    e.outbox.close()
    e = engine(tmp_path, cfg)  # restarted again: the alert is still open, not raised again
    assert e.on_reading(glucose(t0 + timedelta(minutes=10), 3.3)) == []
    assert e.open_alert("ana", "night-low") is not None
    assert states(e.on_reading(glucose(t0 + timedelta(minutes=15), 5.0))) == [
        ("resolved", "night-low")]
    assert len(e.outbox) == 2  # exactly the firing and the resolved decision, once each


def test_shipped_defaults_are_valid_config() -> None:
    data = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())
    rules = RulesConfig.model_validate(data).definitions
    ids = {r.id for r in rules}
    assert {"hypo-level-1", "hypo-level-2", "hypertensive-crisis-systolic", "spo2-low",
            "heart-rate-low", "heart-rate-high", "cgm-signal-lost-night", "gateway-offline",
            "device-battery-low", "call-button"} <= ids
    by_id = {r.id: r for r in rules}
    assert by_id["hypo-level-1"].below == 3.9 and by_id["hypo-level-2"].below == 3.0  # type: ignore[union-attr]
    assert by_id["spo2-low"].below == 90  # type: ignore[union-attr]
    text = (ROOT / "configs/rules-defaults.yaml").read_text()
    for source in ("ADA Standards of Care", "ACC/AHA", "BTS guideline", "NEWS2"):
        assert source in text
