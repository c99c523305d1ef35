"""From a scenario to a timeline: byte-exact values per home, outages, replies, expectations.

Each device turns what the virtual patient's body does (``patients``) into exactly the bytes the
real device would send, delivered when the real one would deliver them (``on_air``); the
household's scripted radio serves them to the gateway over GATT. Link drops and corrupted values
are applied here; outages (gateway offline or crashed, broker down or duplicating) are carried
out by the replay driver.

Every instant is UTC and every addition of a ``timedelta`` is done on UTC datetimes; local time
only for what a device shows on its own clock (the naive time stamps it sends).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from homevitals.simulators import patients as pt
from homevitals.simulators import uva_padova
from homevitals.simulators.ble_values import (
    BP_STATUS_BITS,
    SFLOAT_NAN,
    SFLOAT_NEG_INF,
    SFLOAT_NRES,
    SFLOAT_POS_INF,
    SfloatSpecial,
)
from homevitals.simulators.devices.scripted import ScheduledValue
from homevitals.simulators.on_air import Item, encode_items
from homevitals.simulators.scenario import (
    LoadedScenario,
    ReadingSpec,
    ScenarioError,
    ScenarioHome,
    ScenarioPatient,
)
from homevitals.simulators.scenario_profiles import UvaPadovaSpec
from homevitals.vocab.config import DeviceConfig, DeviceKind

__all__ = ["Expected", "ExpectedReadings", "Outage", "ScriptedReply", "Timeline", "TimedValue",
           "build_timeline"]

_SPECIALS: dict[str, SfloatSpecial] = {"NaN": SFLOAT_NAN, "NRes": SFLOAT_NRES,
                                       "+INFINITY": SFLOAT_POS_INF, "-INFINITY": SFLOAT_NEG_INF}


@dataclass(frozen=True, slots=True)
class TimedValue:
    home: str
    value: ScheduledValue


@dataclass(frozen=True, slots=True)
class Outage:
    kind: str  # "gateway_offline" | "broker_down" | "gateway_crash" | "duplicate_delivery"
    home: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    at: datetime
    phone: str
    name: str
    role: str
    text: str


@dataclass(frozen=True, slots=True)
class Expected:
    to: str
    rule: str
    kind: str
    at: datetime
    within: timedelta


@dataclass(frozen=True, slots=True)
class ExpectedReadings:
    home: str
    device: str
    count: int
    every: timedelta | None


@dataclass
class Timeline:
    start: datetime
    end: datetime
    tick: timedelta
    values: list[TimedValue] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    replies: list[ScriptedReply] = field(default_factory=list)
    expected: list[Expected] | None = None
    expected_readings: list[ExpectedReadings] = field(default_factory=list)


def build_timeline(s: LoadedScenario) -> Timeline:
    problems: list[str] = []
    tl = Timeline(s.start, s.end, s.model.tick)
    for hi, home in enumerate(s.model.homes):
        items: list[Item] = []
        for pi, patient in enumerate(home.patients):
            items += _patient_items(s, hi, home, pi, patient, problems)
        tl.values += [TimedValue(home.id, v) for v in encode_items(home, items)]
    _faults(s, tl, problems)
    _replies(s, tl, problems)
    if problems:
        raise ScenarioError(problems)
    tl.values.sort(key=lambda tv: tv.value.at)  # stable: same-time values keep their order
    tl.values = [tv for tv in tl.values if tl.start <= tv.value.at < tl.end]
    return tl


# --- patients -> what each device measures ------------------------------------------------------


def _device(home: ScenarioHome, patient: ScenarioPatient, dev_id: str, kinds: set[DeviceKind],
            loc: tuple[Any, ...], s: LoadedScenario, problems: list[str]) -> DeviceConfig | None:
    dev = next((d for d in home.devices if d.id == dev_id), None)
    if dev is None or dev.patient != patient.id:
        problems.append(s.problem(loc, f"device {dev_id!r} is not one of {patient.id}'s devices"
                                  f" in home {home.id}"))
        return None
    if dev.kind not in kinds:
        want = " or ".join(sorted(str(k) for k in kinds))
        problems.append(s.problem(loc, f"device {dev_id} is a {dev.kind}, not a {want}"))
        return None
    return dev


def _patient_items(s: LoadedScenario, hi: int, home: ScenarioHome, pi: int,
                   patient: ScenarioPatient, problems: list[str]) -> list[Item]:
    base: tuple[Any, ...] = ("homes", hi, "patients", pi)
    items = list(_profile_items(s, home, patient, base, problems))
    for ri, r in enumerate(patient.readings):
        loc = (*base, "readings", ri)
        dev = _device(home, patient, r.device, set(_READING_FIELDS), (*loc, "device"), s, problems)
        if dev is not None:
            found = _explicit(r, dev, s.resolve(r.at, home.zone), loc, s, problems)
            if found is not None:
                items.append(Item(found[0].at, dev, *found))
    for bi, press in enumerate(patient.presses):
        loc = (*base, "presses", bi, "device")
        dev = _device(home, patient, press.device, {DeviceKind.CALL_BUTTON}, loc, s, problems)
        if dev is not None:
            items.append(Item(s.resolve(press.at, home.zone), dev, None))
    return items


def _profile_items(s: LoadedScenario, home: ScenarioHome, patient: ScenarioPatient,
                   base: tuple[Any, ...], problems: list[str]) -> Iterator[Item]:
    prof = patient.profile
    if prof is None:
        return
    loc = (*base, "profile")
    zone, seed, start, end = home.zone, s.model.seed, s.start, s.end
    g = prof.glucose
    gp = pt.GlucoseProfile(
        fasting=g.fasting, dawn_rise=g.dawn_rise, day_sd=g.day_sd,
        meals=tuple((m.at, m.rise) for m in g.meals) if g.meals is not None
        else pt.GlucoseProfile().meals,
        lows=tuple(pt.Low(s.resolve(lo.at, zone), lo.nadir, lo.hold) for lo in g.lows),
    )
    curve = pt.GlucoseCurve(gp, zone, start, end, seed, patient.id)
    if prof.meter is not None:
        dev = _device(home, patient, prof.meter.device, {DeviceKind.GLUCOSE_METER},
                      (*loc, "meter", "device"), s, problems)
        mp = pt.MeterProfile(checks=tuple(prof.meter.checks))
        for smp in pt.meter_samples(curve, mp, start, end, seed, patient.id):
            if dev is not None:
                yield Item(smp.at, dev, smp)
    if prof.cgm is not None:
        c = prof.cgm
        dev = _device(home, patient, c.device, {DeviceKind.CGM}, (*loc, "cgm", "device"), s,
                      problems)
        cp = pt.CgmProfile(
            interval_minutes=c.interval.total_seconds() / 60,
            gaps=tuple((s.resolve(gap.at, zone), gap.for_) for gap in c.gaps),
            random_gaps_per_day=c.random_gaps_per_day,
        )
        for smp in pt.cgm_samples(curve, cp, start, end, seed, patient.id):
            if dev is not None:
                yield Item(smp.at, dev, smp)
    if prof.uva_padova is not None:
        yield from _uva_items(s, home, patient, prof.uva_padova, (*loc, "uva_padova"), problems)
    if prof.blood_pressure is not None:
        b = prof.blood_pressure
        dev = _device(home, patient, b.device, {DeviceKind.BLOOD_PRESSURE},
                      (*loc, "blood_pressure", "device"), s, problems)
        bp = pt.BloodPressureProfile(
            systolic=b.systolic, diastolic=b.diastolic, pulse=b.pulse, times=tuple(b.times),
            morning_surge=b.morning_surge,
            white_coat=tuple(s.resolve(w, zone) for w in b.white_coat),
            irregular_pulse_rate=b.irregular_pulse_rate, body_movement_rate=b.body_movement_rate,
        )
        for smp in pt.bp_samples(bp, zone, start, end, seed, patient.id):
            if dev is not None:
                yield Item(smp.at, dev, smp)
    if prof.oximeter is not None:
        o = prof.oximeter
        dev = _device(home, patient, o.device, {DeviceKind.PULSE_OXIMETER, DeviceKind.HEART_RATE},
                      (*loc, "oximeter", "device"), s, problems)
        op = pt.OximeterProfile(heart_rate=o.heart_rate, spo2=o.spo2, sleep=o.sleep,
                                interval_minutes=o.interval.total_seconds() / 60)
        for smp in pt.oximeter_samples(op, zone, start, end, seed, patient.id):
            if dev is not None:
                yield Item(smp.at, dev, smp)


def _uva_items(s: LoadedScenario, home: ScenarioHome, patient: ScenarioPatient,
               spec: UvaPadovaSpec, loc: tuple[Any, ...], problems: list[str]) -> Iterator[Item]:
    """The CGM of a UVA/Padova virtual patient under the scenario's therapy (issue 19)."""
    dev = _device(home, patient, spec.device, {DeviceKind.CGM}, (*loc, "device"), s, problems)
    if dev is None:
        return
    t = spec.therapy
    therapy = uva_padova.Therapy(t.overbolus_days, t.exercise_days, t.missed_snack_days,
                                 t.basal, t.treat_lows)
    try:
        cgm = uva_padova.samples(spec.patient, s.start, s.end, s.model.seed, home.timezone,
                                 therapy)
    except uva_padova.SimulatorError as exc:
        problems.append(s.problem((*loc, "patient"), str(exc)))
        return
    for at, glucose in cgm:
        yield Item(at, dev, pt.Sample(at, {"glucose": glucose}))


_READING_FIELDS: dict[DeviceKind, tuple[set[str], set[str]]] = {  # required, optional
    DeviceKind.GLUCOSE_METER: ({"glucose"}, set()),
    DeviceKind.CGM: ({"glucose"}, set()),
    DeviceKind.BLOOD_PRESSURE: ({"systolic", "diastolic"}, {"mean_arterial", "pulse", "flags"}),
    DeviceKind.HEART_RATE: ({"heart_rate"}, set()),
    DeviceKind.PULSE_OXIMETER: ({"spo2", "pulse"}, set()),
}


def _explicit(r: ReadingSpec, dev: DeviceConfig, at: datetime, loc: tuple[Any, ...],
              s: LoadedScenario, problems: list[str]
              ) -> tuple[pt.Sample, dict[str, SfloatSpecial]] | None:
    required, optional = _READING_FIELDS[dev.kind]
    given = {k for k in ("glucose", "systolic", "diastolic", "mean_arterial", "pulse",
                         "heart_rate", "spo2") if getattr(r, k) is not None}
    given |= {"flags"} if r.flags else set()
    bad = len(problems)
    for k in sorted(required - given):
        problems.append(s.problem((*loc, k), f"a {dev.kind} reading needs '{k}'"))
    for k in sorted(given - required - optional):
        problems.append(s.problem((*loc, k), f"a {dev.kind} does not measure '{k}'"))
    unknown = sorted(set(r.flags) - set(BP_STATUS_BITS))
    if unknown:
        problems.append(s.problem((*loc, "flags"), f"unknown flags {unknown}; known:"
                                  f" {sorted(BP_STATUS_BITS)}"))
    if len(problems) > bad:
        return None
    given -= {"flags"}
    specials = {k: _SPECIALS[v] for k in given if isinstance(v := getattr(r, k), str)}
    values = {k: float(getattr(r, k)) for k in given - set(specials)}
    if dev.kind == DeviceKind.BLOOD_PRESSURE and "mean_arterial" not in given:
        if specials.keys() & {"systolic", "diastolic"}:
            specials["mean_arterial"] = SFLOAT_NAN  # a monitor cannot derive it either
        else:
            values["mean_arterial"] = float(round(
                values["diastolic"] + (values["systolic"] - values["diastolic"]) / 3))
    return pt.Sample(at, values, tuple(r.flags)), specials


# --- faults, replies, expectations ------------------------------------------------------------


def _find_device(s: LoadedScenario, dev_id: str, home_id: str | None) -> list[str]:
    return [h.id for h in s.model.homes if (home_id in (None, h.id))
            and any(d.id == dev_id for d in h.devices)]


def _faults(s: LoadedScenario, tl: Timeline, problems: list[str]) -> None:
    homes = {h.id: h for h in s.model.homes}
    for fi, f in enumerate(s.model.faults):
        loc = ("faults", fi)
        if f.home is not None and f.home not in homes:
            problems.append(s.problem((*loc, "home"), f"no home {f.home!r} in this scenario"))
            continue
        zone = homes[f.home].zone if f.home else s.zone
        if f.device is not None:
            found = _find_device(s, f.device, f.home)
            if len(found) != 1:
                why = "is in several homes: name the home" if found else "is not in any home"
                problems.append(s.problem((*loc, "device"), f"device {f.device!r} {why}"))
                continue
            zone = homes[found[0]].zone
            at = s.resolve(f.at, zone)
            _device_fault(tl, found[0], f.device, f.kind, at, f.for_, f.backfill, f.mode,
                          f.count)
            continue
        at = s.resolve(f.at, zone)
        if f.kind == "gateway_crash":
            for home in [f.home] if f.home else list(homes):
                tl.outages.append(_crash(tl, home, at, f.for_ or timedelta(0)))
            continue
        assert f.for_ is not None  # the model requires it for outages
        tl.outages.append(Outage(f.kind, f.home, at, at + f.for_))
    tl.outages.sort(key=lambda o: o.start)


def _crash(tl: Timeline, home: str, at: datetime, down: timedelta) -> Outage:
    """The gateway is killed right after it has queued the first value that reaches it at or
    after ``at`` (so the crash leaves something on disk to replay), and restarted ``down``
    later. Meanwhile the devices keep their records and the new gateway receives them at once;
    a button's advertisements go unheard."""
    crash = min((tv.value.at for tv in tl.values if tv.home == home and tv.value.at >= at),
                default=at)
    back = crash + down
    out: list[TimedValue] = []
    for tv in tl.values:
        v = tv.value
        if tv.home != home or not crash < v.at < back:
            out.append(tv)
        elif v.characteristic != "bthome":
            out.append(TimedValue(home, ScheduledValue(back, v.device, v.characteristic,
                                                       v.data, "backfill")))
    tl.values[:] = out
    return Outage("gateway_crash", home, crash, back)


def _device_fault(tl: Timeline, home: str, device: str, kind: str, at: datetime,
                  length: timedelta | None, backfill: bool, mode: str, count: int) -> None:
    out: list[TimedValue] = []
    for tv in tl.values:
        v = tv.value
        if tv.home != home or v.device != device or v.at < at:
            out.append(tv)
        elif kind == "corrupt" and count > 0:
            count -= 1
            out.append(TimedValue(home, ScheduledValue(v.at, v.device, v.characteristic,
                                                       _corrupt(v.data, mode), "corrupt")))
        elif kind == "link_drop" and length is not None and v.at < at + length:
            if backfill:  # the device kept it and sends it when the link is back
                out.append(TimedValue(home, ScheduledValue(at + length, v.device,
                                                           v.characteristic, v.data, "backfill")))
        else:
            out.append(tv)
    tl.values[:] = out


def _corrupt(data: bytes, mode: str) -> bytes:
    if mode == "truncate":  # the link dropped mid-value: the flags promise more than arrives
        return data[: max(1, len(data) - 3)]
    return data[:1] + bytes(b ^ 0xFF for b in data[1:])  # "garbage": every payload bit flipped


def _phone(s: LoadedScenario, phone: str) -> tuple[str, str, ScenarioHome] | None:
    for h in s.model.homes:
        for p in h.patients:
            if p.phone == phone:  # the patient's own phone (issue 20)
                return p.name, "patient", h
            for m in p.care_team:
                if m.phone == phone:
                    return m.name, str(m.role), h
    return None


def _replies(s: LoadedScenario, tl: Timeline, problems: list[str]) -> None:
    for ri, r in enumerate(s.model.replies):
        who = _phone(s, r.from_)
        if who is None:
            problems.append(s.problem(("replies", ri, "from"),
                                      f"{r.from_} is no patient's phone and on no care team"))
            continue
        name, role, home = who
        tl.replies.append(ScriptedReply(s.resolve(r.at, home.zone), r.from_, name, role, r.text))
    tl.replies.sort(key=lambda r: r.at)
    if s.model.expect is None:
        return
    tl.expected = []
    for ei, e in enumerate(s.model.expect):
        if e.device is not None and e.readings is not None:
            found = _find_device(s, e.device, None)
            if len(found) != 1:
                problems.append(s.problem(("expect", ei, "device"),
                                          f"device {e.device!r} is not in exactly one home"))
                continue
            tl.expected_readings.append(ExpectedReadings(found[0], e.device, e.readings, e.every))
            continue
        assert e.to is not None and e.rule is not None and e.at is not None  # the model checks
        who = _phone(s, e.to)
        if who is None:
            problems.append(s.problem(("expect", ei, "to"),
                                      f"{e.to} is not in any patient's care team"))
            continue
        tl.expected.append(Expected(e.to, e.rule, e.kind, s.resolve(e.at, who[2].zone), e.within))
