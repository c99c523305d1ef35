"""The ``rate`` kind (rules/kinds/rate.py): a fall or rise of more than an amount within a time,
and the trend its window gives the SMS of other rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rules_helpers import config, engine, glucose


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


def test_rate_of_rise_and_the_trend_it_gives_a_threshold_alert(tmp_path: Path) -> None:
    rise = {"id": "rising", "kind": "rate", "measurement": "glucose", "field": "glucose",
            "unit": "mmol/L", "rise": 3.0, "within_minutes": 30, "severity": "low",
            "reason": "Glucose rising fast"}
    high = {"id": "high", "kind": "threshold", "measurement": "glucose", "field": "glucose",
            "above": 13.9, "unit": "mmol/L", "severity": "medium", "reason": "High glucose"}
    e = engine(tmp_path, config([rise, high]))
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    out = []
    for i, v in enumerate([10.0, 11.0, 12.0, 13.0, 14.2]):  # +0.2 mmol/L per minute
        out += e.on_reading(glucose(t0 + timedelta(minutes=5 * i), v))
    assert sorted((str(d.state), d.rule) for d in out) == [("firing", "high"), ("firing", "rising")]
    by_rule = {d.rule: d for d in out}
    assert by_rule["high"].trend == pytest.approx(0.2, abs=0.02)  # from the rate rule's window
    [calm] = e.on_reading(glucose(t0 + timedelta(minutes=60), 14.0))  # nothing gained in 30 min
    assert (calm.state, calm.rule) == ("resolved", "rising")
