"""Early warning of lows (issue 19) on UVA/Padova virtual patients: does the ``predicted`` rule
warn before the level-2 low, and at what price in false alarms and SMS?

Each virtual patient (``simulators/uva_padova.py``: simglucose's model, sensor noise, meals,
pump therapy and the insulin mistakes that cause lows) is run once; its CGM trace is then fed,
reading by reading, through the real rule engine (``rules/engine.py``, in memory) with the
shipped glucose-low episode, once without a predicted rule (threshold only) and once per
predictor. Scored against the true (plasma) BG:

- ``lows``: true BG below 3.0 mmol/L for 15 minutes or more (runs < 30 min apart merge);
- ``sens``: lows whose episode first SMS came 15 minutes or more before the low began (within
  the hour before it);
- ``gain``: median minutes between that first SMS and the level-2 threshold alert (the first
  CGM reading below 3.0), over the lows the level-2 rule caught;
- ``false/pw``: predicted-rule alerts with no true BG below 3.0 within the next 60 minutes, per
  patient-week;
- ``SMS/pw``: the episode's first SMS, updates and all clears to the first person told (no
  reminders or escalations: nobody is assumed to answer or not), per patient-week.

Adolescents and children tune; adults are held out. ``--sweep`` adds horizons and confirmation
counts for the tuning cohorts. Run: ``python bench/early_warning.py`` (see --help).
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from homevitals.infra.outbox import DurableQueue
from homevitals.rules.engine import RuleEngine
from homevitals.vocab.config import parse_config
from homevitals.vocab.readings import AlertDecision, AlertState, FieldValue, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text("utf-8"))
PREDICTED = "glucose-low-predicted"
_WEEK = timedelta(days=7)
_STEP = timedelta(minutes=5)

Trace = list[tuple[datetime, float, float]]  # time, true BG, CGM (mmol/L)


def _glucose_rules(variant: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The shipped glucose-low episode; its predicted rule replaced by ``variant`` (None: no
    predicted rule at all, the threshold-only episode)."""
    rules = [r for r in DEFAULTS["definitions"] if r.get("episode") == "glucose-low"]
    shipped = next(r for r in rules if r["id"] == PREDICTED)
    rules = [r for r in rules if r["id"] != PREDICTED]
    if variant is not None:
        rules.append({**copy.deepcopy(shipped), **variant})
    return rules


def _engine(rules: list[dict[str, Any]]) -> RuleEngine:
    cfg = parse_config(yaml.safe_dump({
        "homes": [{
            "id": "home-1", "timezone": "Europe/Ljubljana",
            "patients": [{"id": "p", "name": "Virtual Patient", "care_team": [
                {"name": "Dr. Doe", "role": "family_doctor", "phone": "+15550100001"}]}],
            "devices": [{"id": "cgm-1", "kind": "cgm", "patient": "p"}],
        }],
        "rules": {"definitions": rules},
    }))
    return RuleEngine(list(cfg.rules.definitions), cfg.homes, DurableQueue(":memory:"), Topics())


def run_engine(trace: Trace, rules: list[dict[str, Any]]) -> list[AlertDecision]:
    """The decisions of the rule engine (in memory) on the trace's CGM readings."""
    e = _engine(rules)
    out: list[AlertDecision] = []
    for i, (t, _bg, cgm) in enumerate(trace):
        r = Reading(reading_id=f"r{i}", home="home-1", patient="p", device="cgm-1",
                    measurement="glucose",  # type: ignore[arg-type]
                    fields={"glucose": FieldValue(cgm, Unit("mmol/L"))}, time=t, received_at=t)
        out += e.on_reading(r)
    return out


def level2_lows(trace: Trace) -> list[tuple[datetime, datetime]]:
    runs: list[list[datetime]] = []
    for t, bg, _ in trace:
        if bg < 3.0:
            if runs and t - runs[-1][1] <= timedelta(minutes=30):
                runs[-1][1] = t
            else:
                runs.append([t, t])
    return [(a, b) for a, b in runs if b - a + _STEP >= timedelta(minutes=15)]


@dataclass
class Tally:
    weeks: float = 0.0
    lows: int = 0
    warned: int = 0
    gains: list[float] = field(default_factory=list)
    false: int = 0
    sms: int = 0

    def add(self, other: Tally) -> None:
        self.weeks += other.weeks
        self.lows += other.lows
        self.warned += other.warned
        self.gains += other.gains
        self.false += other.false
        self.sms += other.sms

    def row(self, label: str) -> str:
        sens = f"{self.warned}/{self.lows}" if self.lows else "-"
        pct = f"{100 * self.warned / self.lows:.0f}%" if self.lows else "-"
        gain = f"{statistics.median(self.gains):+.0f}" if self.gains else "-"
        w = self.weeks or 1.0
        return (f"{label:28} {sens:>7} {pct:>5} {gain:>6} {self.false / w:>8.2f}"
                f" {self.sms / w:>7.2f}")


def score(trace: Trace, decisions: list[AlertDecision]) -> Tally:
    tally = Tally(weeks=(trace[-1][0] - trace[0][0] + _STEP) / _WEEK)
    opened = [d.time for d in decisions if d.state == AlertState.FIRING]
    tally.sms = sum(d.state in (AlertState.FIRING, AlertState.UPDATED, AlertState.RESOLVED)
                    for d in decisions)
    for start, end in level2_lows(trace):
        tally.lows += 1
        before = [t for t in opened if start - timedelta(hours=1) <= t <= end]
        if any(t <= start - timedelta(minutes=15) for t in before):
            tally.warned += 1
        l2 = next((t for t, _, cgm in trace if start - timedelta(hours=1) <= t <= end
                   and cgm < 3.0), None)
        if before and l2 is not None:
            tally.gains.append((l2 - min(before)) / timedelta(minutes=1))
    for d in decisions:
        if d.state == AlertState.FIRING and d.rule == PREDICTED:
            soon = [bg for t, bg, _ in trace if d.time <= t <= d.time + timedelta(hours=1)]
            tally.false += not any(bg < 3.0 for bg in soon)
    return tally


def load_trace(name: str, days: int, seed: int, cache: Path) -> Trace:
    from homevitals.simulators import uva_padova, uva_padova_files

    path = cache / f"{name.replace('#', '-')}-{days}d-{seed}.csv"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        uva_padova_files.write_truth(uva_padova.simulate(name, days, seed), path)
    rows = path.read_text("utf-8").splitlines()[1:]
    out = []
    for row in rows:
        t, _local, bg, cgm = row.split(",")
        out.append((datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                    float(bg), float(cgm)))
    return out


VARIANTS: dict[str, dict[str, Any] | None] = {
    "threshold only": None,
    "linear (shipped knobs)": {"predictor": "linear"},
    "ar2 (shipped)": {"predictor": "ar2"},
}


def sweep_variants() -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for predictor in ("linear", "ar2"):
        for horizon in (20, 30):
            for confirm in (1, 2, 3):
                for now_below in (None, 5.0, 4.5):
                    if predictor == "ar2" and now_below is not None:
                        continue  # AR2 hardly fires above 3.5 mmol/L anyway
                    cap = "" if now_below is None else f" <{now_below:g}"
                    out[f"{predictor} h{horizon} c{confirm}{cap}"] = {
                        "predictor": predictor, "horizon_minutes": horizon,
                        "confirm_readings": confirm, "now_below": now_below,
                    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohorts", default="adolescent,child,adult")
    ap.add_argument("--patients", type=int, default=10, help="per cohort")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hv-early")
    ap.add_argument("--sweep", action="store_true", help="horizons x confirmations (tuning)")
    ap.add_argument("--match", default="", help="only sweep variants whose label has this")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the engine logs every decision
    from homevitals.simulators import uva_padova

    t0 = time.monotonic()
    print(f"== early warning: UVA/Padova (simglucose), {args.patients} patients x {args.days}"
          f" days per cohort, seed {args.seed}; real rule engine, shipped glucose-low episode ==")
    head = (f"{'variant':28} {'sens':>7} {'':>5} {'gain':>6} {'false/pw':>8} {'SMS/pw':>7}")
    for cohort in args.cohorts.split(","):
        role = "held out" if cohort == "adult" else "tuning"
        variants = dict(VARIANTS)
        if args.sweep and role == "tuning":
            variants |= {k: v for k, v in sweep_variants().items() if args.match in k}
        names = uva_padova.patient_names(cohort)[: args.patients]
        traces = [load_trace(n, args.days, args.seed, args.cache) for n in names]
        print(f"\n-- {cohort} ({role}) --\n{head}\n{'-' * len(head)}", flush=True)
        for label, variant in variants.items():
            total = Tally()
            for trace in traces:
                total.add(score(trace, run_engine(trace, _glucose_rules(variant))))
            print(total.row(label), flush=True)
    print(f"\n({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
