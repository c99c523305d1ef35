"""Virtual patients: physiologically plausible signals with seeded randomness.

This module produces numbers only (what the body does and what a device would measure). The
devices that turn them into byte-exact characteristic values live in ``ble_values`` and
``timeline``. Every random choice comes from a ``random.Random`` seeded with the scenario seed and
the patient's id, so the same seed gives the same week, reading for reading.

Time: every instant here is an aware datetime in UTC and all arithmetic is done in UTC (a
``timedelta`` added to a local ``ZoneInfo`` datetime is wall-clock arithmetic, an hour wrong across
a DST change). Local time is used only to place daily events (meals, checks, sleep) and is
converted to UTC at once (``_local``).

The shapes are deliberately simple and each follows a published description (they are plausible
stand-ins for training and testing, not fitted physiological models):

- Meal response: glucose peaks about an hour after the start of a meal and returns towards the
  pre-meal level within two to three hours (American Diabetes Association, "Postprandial Blood
  Glucose", Diabetes Care 2001;24(4):775-778). Modelled as a gamma-shaped bump peaking at 60 min.
- Dawn phenomenon: a rise of about 1 mmol/L (20 mg/dL) between roughly 04:00 and breakfast in
  type 2 diabetes (Monnier L. et al., "Magnitude of the dawn phenomenon and its impact on the
  overall glucose exposure in type 2 diabetes", Diabetes Care 2013;36(12):4057-4062).
- Night-time lows: nocturnal hypoglycaemia is common and mostly between midnight and 06:00
  (Juvenile Diabetes Research Foundation CGM Study Group, "Prolonged nocturnal hypoglycemia is
  common during 12 months of continuous glucose monitoring in children and adults with type 1
  diabetes", Diabetes Care 2010;33(5):1004-1008). A scripted low falls over ~90 min to its nadir,
  stays there, and recovers over ~45 min (treated or counter-regulated). Levels: ADA Standards of
  Care 2024, section 6 (level 1 < 3.9 mmol/L, level 2 < 3.0 mmol/L).
- Meter accuracy: ISO 15197:2013 requires 95 % of results within +/-0.83 mmol/L below
  5.55 mmol/L and +/-15 % above; we draw errors with a standard deviation of about half that.
- CGM: a value every 5 minutes (Dexcom G6 and similar), error of a modern sensor (MARD about 9 %:
  Shah V.N. et al., "Performance of a factory-calibrated real-time continuous glucose monitoring
  system ...", Diabetes Technol Ther 2018;20(6):428-433) as slowly drifting plus white noise, range
  2.2-22.2 mmol/L (40-400 mg/dL), and signal gaps (scripted, plus short random ones).
- Blood pressure at home: measured morning and evening (Parati G. et al., "European Society of
  Hypertension practice guidelines for home blood pressure monitoring", J Hum Hypertens
  2010;24:779-785); the morning surge raises the first readings after waking (Kario K. et al.,
  "Morning surge in blood pressure as a predictor of silent and clinical cerebrovascular disease
  in elderly hypertensives", Circulation 2003;107:1401-1406); a white-coat effect adds 20-30 mmHg
  systolic when a visitor measures (Pickering T.G. et al., "How common is white coat
  hypertension?", JAMA 1988;259:225-228). Mean arterial pressure ~ diastolic + pulse pressure / 3.
- Heart rate and SpO2: heart rate falls by roughly a tenth during sleep (Burgess H.J. et al.,
  "Sleep and circadian influences on cardiac autonomic nervous system activity", Am J Physiol
  1997;273:H1761-H1768); SpO2 in healthy adults averages about 96-97 % asleep and rarely falls below
  90 % (Gries R.E., Brooks L.J., "Normal oxyhemoglobin saturation during sleep. How low does it
  go?", Chest 1996;110(6):1489-1492).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

__all__ = [
    "BloodPressureProfile",
    "CgmProfile",
    "GlucoseCurve",
    "GlucoseProfile",
    "Low",
    "MeterProfile",
    "OximeterProfile",
    "Sample",
    "bp_samples",
    "cgm_samples",
    "meter_samples",
    "oximeter_samples",
]

_MEAL_PEAK_MIN = 60.0  # ADA 2001: postprandial peak about an hour after the start of a meal
_LOW_FALL = timedelta(minutes=90)
_LOW_RECOVER = timedelta(minutes=45)


@dataclass(frozen=True, slots=True)
class Sample:
    """What one device measured at one moment: field name -> value in wire units, and flags."""

    at: datetime
    values: Mapping[str, float]
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("a sample's time must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(UTC))
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


@dataclass(frozen=True, slots=True)
class Low:
    """A scripted night-time low: the level reaches ``nadir`` at ``at`` and stays ``hold``."""

    at: datetime
    nadir: float
    hold: timedelta = timedelta(minutes=40)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", self.at.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class GlucoseProfile:
    fasting: float = 6.5  # mmol/L, the night-time baseline of a treated type 2 patient
    meals: tuple[tuple[time, float], ...] = (
        (time(7, 30), 3.0),
        (time(12, 30), 2.5),
        (time(19, 0), 3.0),
    )
    dawn_rise: float = 1.0  # mmol/L between 04:00 and breakfast (Monnier 2013)
    day_sd: float = 0.4  # day-to-day variation of the baseline
    lows: tuple[Low, ...] = ()


@dataclass(frozen=True, slots=True)
class MeterProfile:
    checks: tuple[time, ...] = (time(7, 0), time(12, 0), time(18, 30), time(22, 0))
    jitter_minutes: float = 15.0


@dataclass(frozen=True, slots=True)
class CgmProfile:
    interval_minutes: float = 5.0
    gaps: tuple[tuple[datetime, timedelta], ...] = ()
    random_gaps_per_day: float = 0.0
    relative_sd: float = 0.06


@dataclass(frozen=True, slots=True)
class BloodPressureProfile:
    systolic: float = 135.0
    diastolic: float = 84.0
    pulse: float = 72.0
    times: tuple[time, ...] = (time(7, 30), time(19, 30))
    morning_surge: float = 10.0  # mmHg systolic on the first reading after waking (Kario 2003)
    white_coat: tuple[datetime, ...] = ()  # a visitor measures: +20-30 mmHg (Pickering 1988)
    irregular_pulse_rate: float = 0.03
    body_movement_rate: float = 0.05
    jitter_minutes: float = 10.0


@dataclass(frozen=True, slots=True)
class OximeterProfile:
    heart_rate: float = 72.0
    spo2: float = 97.0
    sleep: tuple[time, time] = (time(22, 30), time(6, 30))
    interval_minutes: float = 10.0
    desaturations: tuple[tuple[datetime, float, timedelta], ...] = field(default=())


def _rng(seed: int, *parts: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.seed (version 2): stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random("\x1f".join([str(seed), *parts]))


def _days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _local(d: date, t: time, zone: ZoneInfo) -> datetime:
    """Local wall time ``t`` on ``d`` as a UTC instant: the first occurrence of a repeated time
    (fold 0), and a time in a spring-forward gap read with the offset before the change."""
    return datetime.combine(d, t, tzinfo=zone).astimezone(UTC)


class GlucoseCurve:
    """The patient's true glucose level at any moment (mmol/L); meters and CGMs sample it."""

    def __init__(
        self,
        profile: GlucoseProfile,
        zone: ZoneInfo,
        start: datetime,
        end: datetime,
        seed: int,
        patient: str,
    ) -> None:
        self.profile = profile
        self.zone = zone
        rng = _rng(seed, patient, "glucose")
        self._offset: dict[date, float] = {}
        self._meals: list[tuple[datetime, float]] = []
        for d in _days(start, end, zone):
            self._offset[d] = rng.gauss(0.0, profile.day_sd)
            for at, rise in profile.meals:
                t = _local(d, at, zone) + timedelta(minutes=rng.uniform(-20, 20))
                self._meals.append((t, rise * rng.uniform(0.7, 1.3)))

    def at(self, t: datetime) -> float:
        local = t.astimezone(self.zone)
        p = self.profile
        level = p.fasting + self._offset.get(local.date(), 0.0) + self._dawn(local)
        for meal_at, rise in self._meals:
            minutes = (t - meal_at).total_seconds() / 60
            if 0 <= minutes < 360:
                x = minutes / _MEAL_PEAK_MIN
                level += rise * x * math.exp(1 - x)  # gamma-shaped, peak ``rise`` at 60 min
        for low in p.lows:
            w = _low_weight(t, low)
            if w > 0:
                level = level * (1 - w) + low.nadir * w
        return level

    def _dawn(self, local: datetime) -> float:
        hours = local.hour + local.minute / 60
        if 4 <= hours < 8:
            return self.profile.dawn_rise * (hours - 4) / 4
        if 8 <= hours < 11:
            return self.profile.dawn_rise * (11 - hours) / 3
        return 0.0


def _low_weight(t: datetime, low: Low) -> float:
    if low.at - _LOW_FALL <= t < low.at:
        return 1 - (low.at - t) / _LOW_FALL
    if low.at <= t <= low.at + low.hold:
        return 1.0
    end = low.at + low.hold
    if end < t < end + _LOW_RECOVER:
        return 1 - (t - end) / _LOW_RECOVER
    return 0.0


def meter_samples(
    curve: GlucoseCurve,
    profile: MeterProfile,
    start: datetime,
    end: datetime,
    seed: int,
    patient: str,
) -> list[Sample]:
    """Finger-stick checks a few times a day, with ISO 15197-sized errors, to 0.1 mmol/L."""
    rng = _rng(seed, patient, "meter")
    out: list[Sample] = []
    for d in _days(start, end, curve.zone):
        for check in profile.checks:
            minutes = rng.uniform(-profile.jitter_minutes, profile.jitter_minutes)
            t = _local(d, check, curve.zone) + timedelta(minutes=minutes)
            t = t.replace(second=0, microsecond=0)  # a meter's clock has whole seconds
            true = curve.at(t)
            sd = max(0.2, 0.04 * true)
            value = min(33.3, max(1.1, true + rng.gauss(0.0, sd)))
            if start <= t < end:
                out.append(Sample(t, {"glucose": round(value, 1)}))
    return out


def cgm_samples(
    curve: GlucoseCurve,
    profile: CgmProfile,
    start: datetime,
    end: datetime,
    seed: int,
    patient: str,
) -> list[Sample]:
    """A value every few minutes, with drifting sensor error and gaps in the signal."""
    rng = _rng(seed, patient, "cgm")
    step = timedelta(minutes=profile.interval_minutes)
    gaps = [(g.astimezone(UTC), length) for g, length in profile.gaps]
    per_step = profile.random_gaps_per_day * profile.interval_minutes / 1440
    drift, out, t = 0.0, [], start.astimezone(UTC)
    while t < end:
        if rng.random() < per_step:
            gaps.append((t, timedelta(minutes=rng.uniform(10, 40))))
        # AR(1) drift (phi 0.9 per step) carries most of the error, as a real sensor's lag and
        # calibration drift do; a little white noise on top.
        drift = 0.9 * drift + rng.gauss(0.0, profile.relative_sd * math.sqrt(1 - 0.81))
        if not any(g <= t < g + length for g, length in gaps):
            value = curve.at(t) * (1 + drift + rng.gauss(0.0, profile.relative_sd / 3))
            out.append(Sample(t, {"glucose": round(min(22.2, max(2.2, value)), 1)}))
        t += step
    return out


def bp_samples(
    profile: BloodPressureProfile,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    seed: int,
    patient: str,
    extra: Sequence[datetime] = (),
) -> list[Sample]:
    """Home measurements at the profile's times, plus white-coat visits and ``extra`` times."""
    rng = _rng(seed, patient, "bp")
    times: list[tuple[datetime, bool]] = []
    for d in _days(start, end, zone):
        for i, at in enumerate(profile.times):
            minutes = rng.uniform(-profile.jitter_minutes, profile.jitter_minutes)
            t = (_local(d, at, zone) + timedelta(minutes=minutes)).replace(microsecond=0)
            times.append((t.replace(second=0), i == 0))
    times += [(t.astimezone(UTC), False) for t in extra]
    out: list[Sample] = []
    for t, first_of_day in sorted(times):
        sys_ = profile.systolic + rng.gauss(0.0, 6.0)
        dia = profile.diastolic + rng.gauss(0.0, 4.0)
        pulse = profile.pulse + rng.gauss(0.0, 4.0)
        if first_of_day:
            sys_ += profile.morning_surge
            dia += profile.morning_surge / 2
        flags = []
        if rng.random() < profile.irregular_pulse_rate:
            flags.append("irregular_pulse")
        if rng.random() < profile.body_movement_rate:
            flags.append("body_movement")
        if start <= t < end:
            out.append(_bp(t, sys_, dia, pulse, tuple(flags)))
    for t in (w.astimezone(UTC) for w in profile.white_coat):
        if start <= t < end:
            bump = rng.uniform(20, 30)
            sys_, dia = profile.systolic + bump, profile.diastolic + bump / 3
            out.append(_bp(t, sys_, dia, profile.pulse + 8, ()))
    return sorted(out, key=lambda s: s.at)


def _bp(t: datetime, sys_: float, dia: float, pulse: float, flags: tuple[str, ...]) -> Sample:
    s, d = round(sys_), round(dia)
    values = {"systolic": s, "diastolic": d, "mean_arterial": round(d + (s - d) / 3),
              "pulse": round(pulse)}
    return Sample(t, {k: float(v) for k, v in values.items()}, flags)


def _asleep(local: datetime, sleep: tuple[time, time]) -> bool:
    t, (a, b) = local.time(), sleep
    return (t >= a or t < b) if a > b else a <= t < b


def oximeter_samples(
    profile: OximeterProfile,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    seed: int,
    patient: str,
) -> list[Sample]:
    """Heart rate (bpm) and SpO2 (%) at a fixed interval, lower while asleep."""
    rng = _rng(seed, patient, "oximeter")
    step = timedelta(minutes=profile.interval_minutes)
    out: list[Sample] = []
    t = start.astimezone(UTC)
    while t < end:
        asleep = _asleep(t.astimezone(zone), profile.sleep)
        hr = profile.heart_rate * (0.88 if asleep else 1.0) + rng.gauss(0.0, 3.0)
        spo2 = profile.spo2 - (1.0 if asleep else 0.0) + rng.gauss(0.0, 0.7)
        for at, nadir, length in profile.desaturations:
            if at <= t < at + length:
                spo2 = nadir + rng.gauss(0.0, 0.5)
        values = {"heart_rate": float(round(hr)), "spo2": float(round(min(100.0, spo2)))}
        out.append(Sample(t, values))
        t += step
    return out
