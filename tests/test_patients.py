"""Virtual patients: the shapes the docs promise (meals, dawn rise, night lows, morning surge,
white coat, sleep), the same numbers for the same seed, and bytes the real gateway parsers read
back to the same numbers."""

from __future__ import annotations

import statistics
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from homevitals.gateway.profiles import decode
from homevitals.simulators import patients as pt
from homevitals.simulators.scenario import load_scenario
from homevitals.simulators.timeline import build_timeline

ZONE = ZoneInfo("Europe/Ljubljana")
START = datetime(2026, 11, 16, tzinfo=ZONE)
END = START + timedelta(days=7)


def _curve(seed: int = 1, **kw: object) -> pt.GlucoseCurve:
    return pt.GlucoseCurve(pt.GlucoseProfile(**kw), ZONE, START, END, seed, "ana")  # type: ignore[arg-type]


def _at(day: int, hhmm: str) -> datetime:
    return datetime.combine(START.date() + timedelta(days=day), time.fromisoformat(hhmm), ZONE)


def test_meal_peaks_about_an_hour_after_and_dawn_rises_before_breakfast() -> None:
    c = _curve(day_sd=0.0, meals=((time(12, 30), 3.0),), dawn_rise=1.0)
    lunch = [c.at(_at(2, "12:30") + timedelta(minutes=m)) for m in range(0, 241, 5)]
    peak_minutes = lunch.index(max(lunch)) * 5
    # Meal times are jittered by up to 20 minutes and sizes by 0.7-1.3 (seeded).
    assert 40 <= peak_minutes <= 80 and max(lunch) - c.at(_at(2, "11:45")) > 2.0
    assert c.at(_at(2, "07:55")) - c.at(_at(2, "03:00")) > 0.9


def test_a_scripted_night_low_reaches_its_nadir_and_recovers() -> None:
    low = pt.Low(_at(3, "03:00"), 3.1, timedelta(minutes=30))
    c = _curve(lows=(low,))
    assert abs(c.at(_at(3, "03:15")) - 3.1) < 1e-9
    assert c.at(_at(3, "01:00")) > 5.0 and c.at(_at(3, "05:00")) > 5.0


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    def meter(seed: int) -> list[pt.Sample]:
        return pt.meter_samples(_curve(seed), pt.MeterProfile(), START, END, seed, "ana")

    a, b, c = meter(1), meter(1), meter(2)
    assert a == b and a != c
    assert len(a) == 28 and all(1.1 <= s.values["glucose"] <= 33.3 for s in a)


def test_cgm_every_five_minutes_with_a_gap() -> None:
    gap = (_at(1, "01:00"), timedelta(minutes=50))
    s = pt.cgm_samples(_curve(), pt.CgmProfile(gaps=(gap,)), START, START + timedelta(days=2), 1,
                       "ana")
    times = [x.at for x in s]
    assert len(s) == 2 * 288 - 10
    assert not any(gap[0] <= t < gap[0] + gap[1] for t in times)
    assert all(2.2 <= x.values["glucose"] <= 22.2 for x in s)


def test_blood_pressure_morning_surge_white_coat_and_flags() -> None:
    visit = _at(3, "10:30")
    prof = pt.BloodPressureProfile(white_coat=(visit,), irregular_pulse_rate=0.5)
    s = pt.bp_samples(prof, ZONE, START, END + timedelta(days=21), 3, "ana")
    morning = [x.values["systolic"] for x in s if x.at.astimezone(ZONE).hour < 9]
    evening = [x.values["systolic"] for x in s if x.at.astimezone(ZONE).hour >= 18]
    assert statistics.mean(morning) - statistics.mean(evening) > 5
    (coat,) = [x for x in s if x.at == visit]
    assert coat.values["systolic"] >= prof.systolic + 20
    assert 0.3 < sum("irregular_pulse" in x.flags for x in s) / len(s) < 0.7


def test_heart_rate_lower_asleep() -> None:
    s = pt.oximeter_samples(pt.OximeterProfile(), ZONE, START, END, 1, "ana")
    night = [x.values["heart_rate"] for x in s if x.at.astimezone(ZONE).hour in (2, 3, 4)]
    day = [x.values["heart_rate"] for x in s if x.at.astimezone(ZONE).hour in (14, 15, 16)]
    assert statistics.mean(day) - statistics.mean(night) > 5
    assert all(85 <= x.values["spo2"] <= 100 for x in s)


def test_simulated_devices_send_bytes_the_gateway_reads_back() -> None:
    tl = build_timeline(load_scenario("hypertensive-crisis"))
    crisis = [tv.value for tv in tl.values if tv.value.characteristic == "2A35"
              and decode("2A35", tv.value.data).fields["systolic"].value == 186]
    (value,) = crisis
    d = decode("2A35", value.data)
    assert d.fields["diastolic"].value == 112 and d.fields["pulse"].value == 96
    assert "irregular_pulse" in d.flags
    cgm = build_timeline(load_scenario("cgm-signal-loss"))
    kinds = [tv.value.characteristic for tv in cgm.values]
    assert kinds[0] == "2AAA" and kinds.count("2AA7") == len(kinds) - 1
