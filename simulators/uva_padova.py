"""UVA/Padova virtual patients (PyPI ``simglucose``) as homevitals scenarios, with their true BG.

``simglucose`` (Xie 2018, https://github.com/jxx123/simglucose) implements the UVA/Padova type 1
diabetes simulator (Dalla Man et al., J Diabetes Sci Technol 2014;8(1):26-34) with its published
in-silico population: 10 adolescents, 10 adults and 10 children. This module runs one of them for
some days under ordinary pump therapy (the patient's steady-state basal rate and a bolus per meal
from the carbohydrate ratio and correction factor, as simglucose's own ``BBController``) with the
mistakes that cause real lows, and writes:

- ``NAME.yaml``: a scenario (docs/scenarios.md) whose CGM (simglucose's sensor noise model
  (Breton & Kovatchev 2008) with a reading every 5 minutes) goes through the real gateway path as
  explicit readings of a ``cgm`` device, with the shipped default rules and routes;
- ``NAME.truth.csv``: one line per CGM reading: the time, the true (plasma) glucose and the CGM
  value sent, both in mmol/L, for scoring (``bench/alarm_burden.py``).

"True BG" is the plasma glucose of the model (Gp/Vg). simglucose's own ``BG`` column is the
subcutaneous glucose the sensor sees, which lags it by some minutes; the CGM here is that plus the
sensor's noise, as in simglucose.

The mistakes, drawn per day from the seed (see ``_day``):
- an overestimated meal bolus: insulin for 1.5-2.5 times the carbohydrate eaten, on 3 days in 10
  (a badly misjudged meal, or a bolus given twice; carbohydrate counting errors are common:
  Brazeau et al., Diabetes Res Clin Pract 2013;99:19-23);
- afternoon exercise: insulin-dependent glucose use (the model's Vmx) raised during it and, less,
  for 7-11 hours after (the biphasic rise in glucose need after afternoon exercise, McMahon et al.,
  J Clin Endocrinol Metab 2007;92:963-968; nocturnal lows after it, DirecNet, J Pediatr
  2005;147:528-534);
- a missed snack: the afternoon snack's bolus given, the snack not eaten.

A low the patient notices is treated with fast carbohydrate (``_Treatment``); one asleep goes on
until the CGM has been below 3.0 mmol/L for 30 minutes. Everything is drawn from the seed: the
same patient, days and seed give the same files, byte for byte.

Run: ``python -m homevitals.simulators.uva_padova --cohort child --days 7 --out DIR``. Needs the
``sim`` extra (``pip install homevitals[sim]``).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from homevitals.vocab.errors import HomevitalsError
from homevitals.vocab.units import MGDL_PER_MMOLL

__all__ = [
    "COHORTS",
    "SimulatorError",
    "Therapy",
    "Trace",
    "local_minute",
    "patient_names",
    "samples",
    "simulate",
]

COHORTS = ("adolescent", "child", "adult")  # adolescent and child tune; adult is held out
ZONE = "Europe/Ljubljana"
START = "2027-01-11 00:00"  # a Monday in winter: no clock change in the following weeks
CGM_MINUTES = 5
TARGET_MG_DL = 140.0  # simglucose BBController's default correction target
DEFAULT_RULES = Path(__file__).resolve().parent.parent / "configs" / "rules-defaults.yaml"


class SimulatorError(HomevitalsError):
    """simglucose is missing, or a run cannot be made."""


def patient_names(cohort: str) -> list[str]:
    if cohort not in COHORTS:
        raise SimulatorError(f"unknown cohort {cohort!r}; one of {', '.join(COHORTS)}")
    return [f"{cohort}#{i:03d}" for i in range(1, 11)]


@dataclass(frozen=True, slots=True)
class Meal:
    minute: int  # since the start
    eaten: float  # g carbohydrate
    counted: float  # g the bolus is computed for
    label: str


@dataclass(frozen=True, slots=True)
class Exercise:
    minute: int
    minutes: int
    factor: float  # Vmx multiplier during
    after_minutes: int
    after_factor: float  # Vmx multiplier for after_minutes once it ends

    def vmx_factor(self, m: int) -> float:
        end = self.minute + self.minutes
        if self.minute <= m < end:
            return self.factor
        if end <= m < end + self.after_minutes:
            return self.after_factor
        return 1.0


@dataclass(frozen=True, slots=True)
class Therapy:
    """Pump therapy and how often it goes wrong (issue 19: a scenario names a patient and a
    therapy). The defaults are the runs the benches score: each is the share of days with that
    mistake (see the module docstring); ``basal`` scales the steady-state basal rate (above 1:
    too much basal, the classic cause of night lows); ``treat_lows`` off: nobody treats a low."""

    overbolus_days: float = 0.3
    exercise_days: float = 0.3
    missed_snack_days: float = 0.2
    basal: float = 1.0
    treat_lows: bool = True


@dataclass
class Plan:
    meals: list[Meal] = field(default_factory=list)
    exercise: list[Exercise] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the mistakes, for people


@dataclass
class Trace:
    """A finished run: one row per CGM reading."""

    name: str
    start: datetime  # aware, local
    times: list[datetime]
    bg: list[float]  # mmol/L, plasma
    cgm: list[float]  # mmol/L, as sent (whole mg/dL, like the device)
    plan: Plan


def _day(rng: random.Random, day: int, bw: float, offset: int, total: int, plan: Plan,
         therapy: Therapy) -> None:
    """One day's meals and mistakes: day 0 is the start date, ``offset`` the start's minute of
    the day; times are minutes since the start (anything outside [0, total) is dropped). The
    draws are the same whatever the therapy's rates: only what they decide changes."""
    base = day * 1440 - offset

    def grams(per_kg: float) -> float:
        return round(min(max(per_kg * bw * rng.uniform(0.8, 1.2), 10.0), 100.0))

    slots = [("breakfast", 7 * 60, 0.8), ("lunch", 12 * 60 + 30, 1.0),
             ("snack", 16 * 60, 0.3), ("dinner", 19 * 60, 1.0)]
    over = rng.choice([0, 1, 3]) if rng.random() < therapy.overbolus_days else None
    missed_snack = rng.random() < therapy.missed_snack_days
    for i, (label, at, per_kg) in enumerate(slots):
        minute = base + at + round(rng.uniform(-20, 20))
        eaten = grams(per_kg)
        counted = eaten * rng.gauss(1.0, 0.1)  # ordinary counting error
        if not 0 <= minute < total:
            continue
        if i == over:
            counted = eaten * rng.uniform(1.5, 2.5)
            plan.notes.append(f"day {day + 1} {label}: bolus for {counted:.0f} g,"
                              f" ate {eaten:.0f} g")
        if label == "snack" and missed_snack:
            plan.notes.append(f"day {day + 1} snack: bolus for {eaten:.0f} g, snack not eaten")
            plan.meals.append(Meal(minute, 0.0, eaten, label))
            continue
        plan.meals.append(Meal(minute, eaten, max(counted, 0.0), label))
    if rng.random() < therapy.exercise_days:
        at = 16 * 60 + 30 + round(rng.uniform(0, 60))
        ex = Exercise(base + at, rng.choice([45, 60, 75]), rng.uniform(2.0, 3.0),
                      rng.randint(7, 11) * 60, rng.uniform(1.4, 1.8))
        if 0 <= ex.minute < total:
            plan.exercise.append(ex)
            plan.notes.append(f"day {day + 1} exercise: {ex.minutes} min from"
                              f" {at // 60:02d}:{at % 60:02d}")


def _simglucose() -> Any:
    try:
        from simglucose.patient import t1dpatient
        from simglucose.sensor import cgm
    except ImportError as exc:
        raise SimulatorError("simglucose is not installed: pip install 'homevitals[sim]'"
                             f" ({exc})") from exc
    return SimpleNamespace(T1DPatient=t1dpatient.T1DPatient, Action=t1dpatient.Action,
                           CGMSensor=cgm.CGMSensor)


def _quest(name: str) -> tuple[float, float]:
    """The patient's carbohydrate ratio (g/U) and correction factor (mg/dL per U)."""
    from importlib import resources

    import pandas as pd

    quest = pd.read_csv(resources.files("simglucose").joinpath("params/Quest.csv"))
    row = quest.loc[quest.Name == name]
    return float(row.CR.iloc[0]), float(row.CF.iloc[0])


def simulate(name: str, days: int, seed: int, start: str = START, zone: str = ZONE,
             therapy: Therapy = Therapy()) -> Trace:
    """Run virtual patient ``name`` (``adolescent#003``) for ``days``; deterministic per seed."""
    if name.split("#")[0] not in COHORTS or name not in patient_names(name.split("#")[0]):
        raise SimulatorError(f"unknown virtual patient {name!r}: adolescent#001 .. #010,"
                             " adult#001 .. #010 or child#001 .. #010")
    sg = _simglucose()
    z = ZoneInfo(zone)
    t0 = datetime.fromisoformat(start).replace(tzinfo=z)
    end = t0 + timedelta(days=days)
    if t0.utcoffset() != end.utcoffset():
        raise SimulatorError(f"{start} + {days} days crosses a clock change in {zone}: pick"
                             " other dates (scenario times are local wall-clock times)")
    rng = random.Random(f"uva-padova\x1f{seed}\x1f{name}")
    patient = sg.T1DPatient.withName(name)
    sensor = sg.CGMSensor.withName("GuardianRT", seed=rng.randrange(2**31))  # 5-minute sampling
    # The model reads ~40 parameters per ODE evaluation; from a pandas Series that is 12x slower
    # than from plain attributes (10 s against 0.9 s per simulated day), with identical results.
    params = SimpleNamespace(**patient._params.to_dict())  # noqa: SLF001 - simglucose's only
    patient._params = params  # noqa: SLF001 - T1DPatient has no public setter for its parameters
    cr, cf = _quest(name)
    plan = Plan()
    offset = t0.hour * 60 + t0.minute
    for day in range(days + (1 if offset else 0)):
        _day(rng, day, float(params.BW), offset, days * 1440, plan, therapy)
    return _run(sg, name, patient, sensor, plan, t0, days, cr, cf, therapy)


class _Treatment:
    """The patient treats a low they notice with fast carbohydrate: 15 g (0.3 g/kg for smaller
    children), again after 15 minutes while still low (ADA Standards of Care 2024, section 6;
    ISPAD 2022 guideline on hypoglycaemia). Awake (07:00-22:00) once the CGM has been below
    3.9 mmol/L for 15 minutes (symptoms, or a look at the reader); asleep only once it has been
    below 3.0 for 30 minutes: children slept through most nocturnal CGM alarms (DirecNet,
    Diabetes Technol Ther 2005;7:440-447)."""

    def __init__(self, bw: float, t0: datetime) -> None:
        self.grams = float(min(15, round(0.3 * bw)))
        self.offset = t0.hour * 60 + t0.minute
        self.below = {70: -1, 54: -1}  # mg/dL -> minute the CGM went below, -1: not below
        self.last = -10**6
        self.count = 0

    def carbs(self, minute: int, cgm_mg_dl: float) -> float:
        for level in self.below:
            if cgm_mg_dl >= level:
                self.below[level] = -1
            elif self.below[level] < 0:
                self.below[level] = minute
        awake = 7 * 60 <= (self.offset + minute) % 1440 < 22 * 60
        level, delay = (70, 15) if awake else (54, 30)
        noticed = self.below[level] >= 0 and minute - self.below[level] >= delay
        if not noticed or minute - self.last < 15:
            return 0.0
        self.last, self.count = minute, self.count + 1
        return self.grams


def _run(sg: Any, name: str, patient: Any, sensor: Any, plan: Plan, t0: datetime, days: int,
         cr: float, cf: float, therapy: Therapy) -> Trace:
    params = patient._params  # noqa: SLF001 - simglucose keeps them only there
    vmx = float(params.Vmx)
    basal = therapy.basal * float(params.u2ss) * float(params.BW) / 6000  # U/min
    meals = {m.minute: m for m in plan.meals}
    trace = Trace(name, t0, [], [], [], plan)
    treat = _Treatment(float(params.BW), t0)
    last_cgm = float(sensor.measure(patient))
    for minute in range(days * 1440):
        rescue = 0.0
        if minute % CGM_MINUTES == 0:
            if minute:
                last_cgm = float(sensor.measure(patient))
            mg_dl = round(last_cgm)
            trace.times.append(t0 + timedelta(minutes=minute))
            trace.bg.append(round(float(patient.state[3]) / float(params.Vg) / MGDL_PER_MMOLL, 3))
            trace.cgm.append(round(mg_dl / MGDL_PER_MMOLL, 4))
            rescue = treat.carbs(minute, last_cgm) if therapy.treat_lows else 0.0
        params.Vmx = vmx * max((e.vmx_factor(minute) for e in plan.exercise), default=1.0)
        meal, bolus = meals.get(minute), 0.0
        if meal is not None:
            correction = max(last_cgm - TARGET_MG_DL, 0.0) / cf if last_cgm > 150 else 0.0
            bolus = round((meal.counted / cr + correction) / 0.05) * 0.05  # pump steps of 0.05 U
        carbs = (meal.eaten if meal else 0.0) + rescue
        try:
            patient.step(sg.Action(CHO=carbs, insulin=basal + bolus))
        except RuntimeError as exc:  # t1dpatient re-raises nothing in particular on ODE failure
            raise SimulatorError(f"{name}: the model's ODE solver failed at minute {minute}"
                                 ) from exc
    plan.notes.append(f"lows treated with {treat.grams:.0f} g carbohydrate: {treat.count} times")
    return trace


def local_minute(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def samples(name: str, start: datetime, end: datetime, seed: int, zone: str,
            therapy: Therapy = Therapy()) -> list[tuple[datetime, float]]:
    """(UTC time, CGM mmol/L) of virtual patient ``name`` from ``start`` to ``end`` (aware), for
    a scenario's ``profile: uva_padova`` (simulators/timeline.py)."""
    local = start.astimezone(ZoneInfo(zone))
    days = max(1, -(-(end - start) // timedelta(days=1)))
    trace = simulate(name, days, seed, local_minute(local), zone, therapy)
    utc = ZoneInfo("UTC")
    return [(t.astimezone(utc), g) for t, g in zip(trace.times, trace.cgm, strict=True)
            if t < end]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m homevitals.simulators.uva_padova",
                                description=__doc__.split("\n\n")[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--cohort", choices=COHORTS, help="all 10 patients of a cohort")
    who.add_argument("--patient", action="append", help="e.g. adolescent#003 (repeatable)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", default=START, help="local start, e.g. '2027-01-11 00:00'")
    p.add_argument("--timezone", default=ZONE)
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES,
                   help="a rules section to ship in the scenarios (default: the shipped defaults)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    names = patient_names(args.cohort) if args.cohort else args.patient
    from homevitals.simulators.uva_padova_files import load_rules, write_patient

    try:
        rules = load_rules(args.rules)
        for name in names:
            scenario, _ = write_patient(name, args.out, args.days, args.seed, rules, args.start,
                                        args.timezone)
            print(f"wrote {scenario} (+ .truth.csv)")
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
