"""What each device measures -> the bytes it sends, and when (part of ``timeline``).

A glucose meter's record reaches the gateway a minute after the finger-stick, a blood-pressure
record 40 s after the cuff deflates, a BTHome button's advertisement three times 300 ms apart, a
CGM's session start time first and then one record every 5 minutes. Every addition of a
``timedelta`` is done on UTC datetimes; local time only for what a device shows on its own clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from homevitals.simulators import patients as pt
from homevitals.simulators.ble_values import (
    Number,
    SfloatSpecial,
    encode_bp_measurement,
    encode_bthome_button,
    encode_glucose_measurement,
)
from homevitals.simulators.ble_values_ext import (
    CgmRecord,
    encode_cgm_measurement,
    encode_cgm_session_start,
    encode_heart_rate,
    encode_plx_spot_check,
)
from homevitals.simulators.devices.scripted import ScheduledValue
from homevitals.simulators.scenario import ScenarioHome
from homevitals.vocab.config import DeviceConfig, DeviceKind

__all__ = ["Item", "encode_items"]

_METER_SYNC = timedelta(minutes=1)  # the meter's record reaches the gateway a minute later
_BP_SYNC = timedelta(seconds=40)
_CGM_SESSION = timedelta(days=10)  # a Dexcom G6-style sensor session
_ADVERT_REPEATS = (0, 300, 600)  # ms: a BTHome button repeats its advertisement


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a device measured (or a call-button press) at a moment."""

    at: datetime  # measured
    device: DeviceConfig
    sample: pt.Sample | None  # None: a call-button press
    specials: Mapping[str, SfloatSpecial] = field(default_factory=dict)  # sent instead

    def values(self) -> dict[str, Number]:
        assert self.sample is not None
        return {**self.sample.values, **self.specials}


def encode_items(home: ScenarioHome, items: list[Item]) -> list[ScheduledValue]:
    """Each item as the bytes its device sends, when it sends them."""
    out: list[ScheduledValue] = []
    seq: dict[str, int] = {}
    cgm_session: dict[str, datetime] = {}
    for it in sorted(items, key=lambda i: (i.at, i.device.id)):
        at = it.at.astimezone(UTC)
        d, smp, naive = it.device, it.sample, at.astimezone(home.zone).replace(tzinfo=None)
        n = seq[d.id] = seq.get(d.id, 0) + 1
        if smp is None:  # a call-button press
            advert = encode_bthome_button(n % 256, "press")
            out += [ScheduledValue(at + timedelta(milliseconds=ms), d.id, "bthome", advert)
                    for ms in _ADVERT_REPEATS]
            continue
        v = it.values()
        if d.kind == DeviceKind.GLUCOSE_METER:
            data = encode_glucose_measurement(n, naive, v["glucose"], unit="mol/L")
            out.append(ScheduledValue(at + _METER_SYNC, d.id, "2A18", data))
        elif d.kind == DeviceKind.BLOOD_PRESSURE:
            data = encode_bp_measurement(v["systolic"], v["diastolic"], v["mean_arterial"],
                                         timestamp=naive, pulse=v.get("pulse"),
                                         status_flags=smp.flags)
            out.append(ScheduledValue(at + _BP_SYNC, d.id, "2A35", data))
        elif d.kind == DeviceKind.CGM:
            out += _cgm(home, d, at, v["glucose"], cgm_session)
        elif d.kind == DeviceKind.HEART_RATE:
            hr = round(smp.values["heart_rate"])
            out.append(ScheduledValue(at, d.id, "2A37", encode_heart_rate(hr, contact=True)))
        elif d.kind == DeviceKind.PULSE_OXIMETER:
            pulse = v.get("pulse", v.get("heart_rate", 0.0))
            data = encode_plx_spot_check(v["spo2"], pulse, timestamp=naive)
            out.append(ScheduledValue(at, d.id, "2A5E", data))
    return out


# CGMS 1.0.1 section 3.3 (Session Start Time): Time Zone in 15-minute steps (standard time) and
# DST Offset as a code: 0 standard, 2 half an hour, 4 one hour, 8 two hours.
_DST_CODES = {0: 0, 30: 2, 60: 4, 120: 8}


def _cgm(home: ScenarioHome, d: DeviceConfig, at: datetime, glucose: Number,
         sessions: dict[str, datetime]) -> list[ScheduledValue]:
    out = []
    start = sessions.get(d.id)
    if start is None or at - start >= _CGM_SESSION:
        # CGMS 3.2.x: the session start time (0x2AAA) is read first; records carry minutes
        # since it (elapsed minutes, UTC arithmetic: the night the clocks go back has 25 hours
        # of them). A new sensor every 10 days keeps the uint16 offset small.
        start = sessions[d.id] = at.replace(second=0, microsecond=0)
        local = start.astimezone(home.zone)
        dst = local.dst() or timedelta(0)
        standard = (local.utcoffset() or timedelta(0)) - dst
        data = encode_cgm_session_start(local.replace(tzinfo=None),
                                        tz_quarters=int(standard / timedelta(minutes=15)),
                                        dst_code=_DST_CODES[int(dst / timedelta(minutes=1))])
        out.append(ScheduledValue(at, d.id, "2AAA", data))  # read first, same moment
    minutes = round((at - start) / timedelta(minutes=1))
    data = encode_cgm_measurement([CgmRecord(glucose, minutes)])
    out.append(ScheduledValue(at, d.id, "2AA7", data))
    return out
