"""A scenario patient's generator ``profile`` (docs/scenarios.md): glucose curve, meter and CGM
sampling, blood pressure, oximeter, or a UVA/Padova virtual patient and its therapy."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from homevitals.vocab.config import _Model

__all__ = ["DAY_AT", "At", "ClockTime", "Duration", "ProfileSpec", "TherapySpec", "UvaPadovaSpec",
           "parse_duration"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)([dhms]))+\Z")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# "day 2 02:30", "day 2 02:30:15", "day 2 02:30+01:00" (an explicit UTC offset names which of a
# repeated hour's two occurrences is meant, on the night the clocks go back).
DAY_AT = re.compile(r"^day (\d+) (\d{1,2}:\d{2}(?::\d{2})?)(Z|[+-]\d{2}:\d{2})?\Z")


def parse_duration(v: object) -> timedelta:
    """"90m", "1h30m", "7d", "45s" -> timedelta."""
    if isinstance(v, timedelta):
        return v
    text = str(v).strip().replace(" ", "")
    if not _DURATION.match(text):
        raise ValueError(f"{v!r} is not a duration such as 30s, 90m, 1h30m or 7d")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


def _check_at(v: str) -> str:
    if DAY_AT.match(v):
        return v
    try:
        datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(
            f"{v!r} is not a local time: use 'day N HH:MM' (day 1 is the start date) or"
            " 'YYYY-MM-DD HH:MM', in the home's own time zone, optionally with its UTC offset"
            " ('2026-10-25 02:30+01:00')"
        ) from None
    return v


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
At = Annotated[str, AfterValidator(_check_at)]
ClockTime = Annotated[time, BeforeValidator(lambda v: time.fromisoformat(str(v)))]


class MealSpec(_Model):
    at: ClockTime
    rise: float = Field(gt=0, le=15, description="peak rise in mmol/L about an hour after")


class LowSpec(_Model):
    at: At
    nadir: float = Field(gt=0.5, lt=10)
    hold: Duration = timedelta(minutes=40)


class GlucoseSpec(_Model):
    fasting: float = Field(6.5, gt=2, lt=25)
    dawn_rise: float = Field(1.0, ge=0, le=5)
    day_sd: float = Field(0.4, ge=0, le=3)
    meals: list[MealSpec] | None = None
    lows: list[LowSpec] = []


class MeterSpec(_Model):
    device: str
    checks: list[ClockTime] = [time(7, 0), time(12, 0), time(18, 30), time(22, 0)]


class GapSpec(_Model):
    at: At
    for_: Duration = Field(alias="for")


class CgmSpec(_Model):
    device: str
    interval: Duration = timedelta(minutes=5)
    gaps: list[GapSpec] = []
    random_gaps_per_day: float = Field(0.0, ge=0, le=24)


class BloodPressureSpec(_Model):
    device: str
    systolic: float = Field(135, gt=60, lt=260)
    diastolic: float = Field(84, gt=30, lt=160)
    pulse: float = Field(72, gt=25, lt=220)
    times: list[ClockTime] = [time(7, 30), time(19, 30)]
    morning_surge: float = Field(10, ge=0, le=60)
    white_coat: list[At] = []
    irregular_pulse_rate: float = Field(0.03, ge=0, le=1)
    body_movement_rate: float = Field(0.05, ge=0, le=1)


class OximeterSpec(_Model):
    device: str
    heart_rate: float = Field(72, gt=25, lt=220)
    spo2: float = Field(97, gt=50, le=100)
    interval: Duration = timedelta(minutes=10)
    sleep: tuple[ClockTime, ClockTime] = (time(22, 30), time(6, 30))


class TherapySpec(_Model):
    """Pump therapy of a UVA/Padova virtual patient (``uva_padova.Therapy``)."""

    overbolus_days: float = Field(0.3, ge=0, le=1, description="share of days, a meal overdosed")
    exercise_days: float = Field(0.3, ge=0, le=1, description="share of days with exercise")
    missed_snack_days: float = Field(0.2, ge=0, le=1, description="snack bolused, not eaten")
    basal: float = Field(1.0, gt=0, le=3, description="times the steady-state basal rate")
    treat_lows: bool = True


def _virtual_patient(v: str) -> str:
    if not re.fullmatch(r"(adolescent|adult|child)#(00[1-9]|010)", v):
        raise ValueError(f"unknown virtual patient {v!r}: adolescent#001 .. #010, adult#001 .."
                         " #010 or child#001 .. #010 (the UVA/Padova population of simglucose)")
    return v


class UvaPadovaSpec(_Model):
    """Issue 19: the CGM of a published virtual patient (PyPI simglucose), instead of the
    ``glucose`` curve: physiology nobody here wrote."""

    patient: Annotated[str, AfterValidator(_virtual_patient)]
    device: str
    therapy: TherapySpec = TherapySpec()


class ProfileSpec(_Model):
    glucose: GlucoseSpec = GlucoseSpec()
    meter: MeterSpec | None = None
    cgm: CgmSpec | None = None
    uva_padova: UvaPadovaSpec | None = None
    blood_pressure: BloodPressureSpec | None = None
    oximeter: OximeterSpec | None = None
