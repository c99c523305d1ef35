"""The demo household's day, as byte-exact values from its three devices.

Ana Novak (Europe/Ljubljana) measures her glucose a few times a day, her blood pressure morning
and evening, and presses her call button once in the evening. Her glucose is 3.6 mmol/L at
15:00 (low, but in the day: no night-time alert) and falls to 3.4 mmol/L at 03:10 (a night-time
low: one alert), and is back to 5.8 mmol/L at 07:30 (all clear).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from homevitals.simulators.ble_values import (
    encode_bp_measurement,
    encode_bthome_button,
    encode_glucose_measurement,
)
from homevitals.simulators.devices.scripted import ScheduledValue
from homevitals.vocab.config import Config, parse_config

__all__ = ["DEMO_START", "ExpectedReading", "demo_config", "demo_script"]

DEMO_START = date(2026, 11, 20)


@dataclass(frozen=True, slots=True)
class ExpectedReading:
    """What the store must hold after the demo: for tests and the demo's own summary."""

    measurement: str
    field: str
    value: float
    local_time: datetime


def demo_config() -> Config:
    text = (
        resources.files("homevitals.simulators").joinpath("households/demo.yaml").read_text("utf-8")
    )
    return parse_config(text, "homevitals/simulators/households/demo.yaml")


def _at(day: date, hhmm: str, zone: ZoneInfo, plus_days: int = 0) -> datetime:
    return datetime.combine(day + timedelta(days=plus_days), time.fromisoformat(hhmm), tzinfo=zone)


_GLUCOSE = [  # (day offset, local time, mmol/L)
    (0, "12:00", 7.2),
    (0, "15:00", 3.6),
    (0, "18:30", 8.4),
    (0, "22:30", 6.1),
    (1, "03:10", 3.4),
    (1, "07:30", 5.8),
]
_BP = [  # (day offset, local time, systolic, diastolic, MAP, pulse)
    (0, "20:00", 138, 86, 103, 74),
    (1, "08:00", 142, 88, 106, 78),
]
_PRESS = (0, "19:45")


def demo_script(
    zone: ZoneInfo, start: date = DEMO_START
) -> tuple[list[ScheduledValue], list[ExpectedReading]]:
    script: list[ScheduledValue] = []
    expected: list[ExpectedReading] = []
    for seq, (day, hhmm, mmol) in enumerate(_GLUCOSE, start=1):
        t = _at(start, hhmm, zone, day)
        data = encode_glucose_measurement(seq, t.replace(tzinfo=None), mmol, unit="mol/L")
        # The meter's record reaches the gateway a minute after the measurement (UTC arithmetic:
        # a timedelta added to a local datetime is wall-clock time, wrong across DST).
        script.append(ScheduledValue(t.astimezone(UTC) + timedelta(minutes=1), "glucometer-1",
                                     "2A18", data))
        expected.append(ExpectedReading("glucose", "glucose", mmol, t))
    for day, hhmm, sys_, dia, mean, pulse in _BP:
        t = _at(start, hhmm, zone, day)
        data = encode_bp_measurement(sys_, dia, mean, timestamp=t.replace(tzinfo=None), pulse=pulse)
        script.append(ScheduledValue(t.astimezone(UTC) + timedelta(seconds=40), "bp-1", "2A35",
                                     data))
        expected += [
            ExpectedReading("blood_pressure", "systolic", sys_, t),
            ExpectedReading("blood_pressure", "diastolic", dia, t),
        ]
    press = _at(start, _PRESS[1], zone, _PRESS[0]).astimezone(UTC)
    advert = encode_bthome_button(17, "press")
    # A BTHome button repeats the same advertisement; the gateway folds repeats by packet id.
    script += [
        ScheduledValue(press + timedelta(milliseconds=ms), "button-1", "bthome", advert)
        for ms in (0, 300, 600)
    ]
    return script, expected
