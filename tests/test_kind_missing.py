"""The ``missing`` kind (rules/kinds/missing.py): no reading for a while, judged by the receive
clock on ticks and arrivals; cleared only once readings flow again."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rules_helpers import DEFAULTS, GLUCOSE, T0, arrive, cgm, config, engine, glucose

from homevitals.vocab.readings import AlertDecision

SIGNAL_LOST = next(r for r in DEFAULTS if r["id"] == "cgm-signal-lost-night")


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

def test_missing_data_does_not_flap_when_the_device_clock_lags(tmp_path: Path) -> None:
    """Readings stamped an hour early (a clock change done on wall-clock time) but arriving on
    time: no missing-data alert all night; the device is flagged and judged at receipt."""
    e = engine(tmp_path, config([SIGNAL_LOST, *GLUCOSE]), now=T0 - timedelta(hours=4))
    out: list[AlertDecision] = []
    for i in range(12 * 5):  # 22:30 .. 03:25, a value every 5 minutes, ticks in between
        t = T0 - timedelta(hours=4) + timedelta(minutes=5 * i)
        out += arrive(e, cgm(t, 6.5, stamped=t - timedelta(hours=1)))
        out += e.tick(t + timedelta(minutes=2, seconds=30))
    assert out == []
    assert e.counts["device_clock_suspect"] > 0
    # The lagging CGM then falls to 3.5 (fast: no wait): judged at its receive time, it is a
    # low now, with the flag, not a reading from an hour ago.
    t = T0 + timedelta(hours=1)
    story_out = [d for i, v in enumerate([3.5, 3.5, 3.5, 3.5])
                 for d in arrive(e, cgm(t + timedelta(minutes=5 * i), v,
                                        stamped=t + timedelta(minutes=5 * i - 60)))]
    [d] = story_out
    assert d.rule == "hypo-level-1" and "device_clock_suspect" in d.flags
    assert d.observed_at == t

def test_a_real_gap_is_one_alert_and_clears_after_flow_resumes(tmp_path: Path) -> None:
    e = engine(tmp_path, config([SIGNAL_LOST]), now=T0)
    arrive(e, cgm(T0, 6.0))
    fired = e.tick(T0 + timedelta(minutes=31))
    assert [str(d.state) for d in fired] == ["firing"]
    # One stray value does not clear it; nor does one after which it goes silent again.
    assert arrive(e, cgm(T0 + timedelta(minutes=40), 6.0)) == []
    assert e.tick(T0 + timedelta(minutes=55)) == []  # 15 minutes after a stray value: open
    assert e.tick(T0 + timedelta(minutes=75)) == []  # silent again (35 minutes)
    assert arrive(e, cgm(T0 + timedelta(minutes=80), 6.0)) == []
    for m in (85, 90):
        assert arrive(e, cgm(T0 + timedelta(minutes=m), 6.0)) == []
    [clear] = arrive(e, cgm(T0 + timedelta(minutes=95), 6.0))  # 15 minutes of flow
    assert (str(clear.state), clear.alert_id) == ("resolved", fired[0].alert_id)
    assert "for 15 minutes" in clear.reason
