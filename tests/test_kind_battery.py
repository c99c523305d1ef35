"""The ``battery`` kind (rules/kinds/battery.py): a device battery below a level, from gateway
heartbeats or battery readings, the device named; cleared with hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rules_helpers import arrive, config, engine, reading, states


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


def test_battery_low_from_a_devices_own_battery_readings(tmp_path: Path) -> None:
    rule = {"id": "device-battery-low", "kind": "battery", "below": 15, "severity": "low",
            "reason": "A device battery is low"}
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, config([rule]), now=t0)
    assert arrive(e, reading(t0, "battery", battery=(30, "%"))) == []
    [d] = arrive(e, reading(t0 + timedelta(hours=1), "battery", battery=(9, "%")))
    assert (d.state, d.field, d.value, d.reason) == (
        "firing", "cgm-1 battery", 9, "A device battery is low")
    [back] = arrive(e, reading(t0 + timedelta(hours=2), "battery", battery=(100, "%")))
    assert (back.state, back.reason) == ("resolved", "A device battery is low: batteries charged")
