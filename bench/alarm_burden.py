"""Alarm burden: what the care team receives, per scenario and on UVA/Padova virtual patients.

Every scenario goes through `homevitals replay` (the real pipeline in simulated time) and is
scored from what it wrote (notifications.jsonl, alerts.jsonl, readings.csv). Nobody acknowledges
anything unless the scenario scripts a reply, so escalations and reminders all count.

Scenario library (simulators/scenarios/*.yaml), one row each:
- SMS: sent (held: folded into a digest by the alarm budget, not sent, not counted);
- SMS/pw: SMS per patient-week (all recipients); "normal" scenarios are those that expect no SMS at
  all (`expect: []`): their total is the "normal weeks" figure (goal: none to a doctor);
- episodes: alerts of one patient that overlap in time form one clinical episode; alerts/ep and
  SMS/ep (first, escalations, reminders, all clear) are the largest over the scenario's episodes;
- latency: first abnormal reading (the start of the run of readings beyond a threshold rule's
  bound, or a call-button press) to the episode's first SMS, the largest over its episodes.

UVA/Padova virtual patients (simulators/uva_padova.py), one row per patient, totals per cohort
(adolescent and child tune the defaults; adult is the held-out check), scored against true BG:
- L2 lows: true BG < 3.0 mmol/L for >= 15 min (runs less than 30 min apart are one low);
  alerted: a high or critical SMS about the patient from 30 min before it starts to its end;
  lead: that SMS's time minus the first true BG < 3.0 (negative: before);
- false/pw: alerts that reached a doctor with no true BG < 3.9 within 30 minutes of opening
  (either side), per patient-week; the rules behind them are listed;
- doc SMS/pw: SMS to the family or backup doctor per patient-week, nobody acknowledging.

    .venv/bin/python bench/alarm_burden.py [--days 7] [--seed 1] [--cohort child ...]
        [--patients 10] [--uva-dir DIR] [--skip-library] [--skip-uva] [--keep DIR]

Prints figures; never gates on wall time. Needs the `sim` extra for the UVA/Padova part.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alarm_runs import Run, episodes, replay, sent_times, t, was_sent

from homevitals.simulators.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "simulators" / "scenarios"
DOCTORS = ("family_doctor", "backup_doctor")
NOT_ALERTING = ("resolved", "acknowledged", "ack", "all")  # kinds that tell "it is over"


def first_abnormal(run: Run, patient: str, before: datetime) -> datetime | None:
    """The start of the abnormal run (a threshold rule's bound crossed) or the press that an SMS
    at ``before`` is about; None when no reading explains it (missing data, a gateway)."""
    sc = load_scenario(run.scenario)
    rows = [r for r in run.readings if r["patient"] == patient and t(r["time"]) <= before]
    found: list[datetime] = []
    for rule in sc.model.rules.definitions:
        if rule.kind == "event":
            presses = [t(r["time"]) for r in rows if r["measurement"] == "event"
                       and before - t(r["time"]) <= timedelta(hours=1)]
            found += presses[-1:]
        if rule.kind != "threshold":
            continue
        series = sorted((t(r["time"]), float(r["value"])) for r in rows
                        if r["measurement"] == str(rule.measurement) and r["field"] == rule.field)
        start = None
        for at, v in reversed(series):
            if not ((rule.below is not None and v < rule.below)
                    or (rule.above is not None and v > rule.above)):
                break
            start = at
        if start is not None:
            found.append(start)
    return min(found) if found else None


def library(work: Path, broker: str) -> None:
    print("\n== Scenario library (simulators/scenarios), replayed with `homevitals replay` ==")
    head = (f"{'scenario':24} {'normal':>6} {'pt-wk':>6} {'SMS':>5} {'held':>4} {'SMS/pw':>7}"
            f" {'doc':>5}"
            f" {'alerts':>6} {'episodes':>8} {'alerts/ep':>9} {'SMS/ep':>6} {'latency':>8}")
    print(head)
    print("-" * len(head))
    normal_sms = normal_doc = normal_pw = 0.0
    all_eps: list[list[dict[str, Any]]] = []
    all_lat: list[timedelta] = []
    for path in sorted(LIBRARY.glob("*.yaml")):
        run = replay(path, work / path.stem, broker)
        eps = episodes(run)
        lat = []
        for ep in eps:
            sent = sent_times(ep)
            start = first_abnormal(run, str(ep[0].get("patient")), sent[0]) if sent else None
            if start is not None:
                lat.append(sent[0] - start)
        all_eps += eps
        all_lat += lat
        doc = sum(1 for n in run.notes if n.get("role") in DOCTORS)
        per_week = f"{len(run.notes) / run.patient_weeks:.1f}" if run.normal else "-"
        if run.normal:
            normal_sms, normal_doc = normal_sms + len(run.notes), normal_doc + doc
            normal_pw += run.patient_weeks
        print(f"{path.stem:24} {'yes' if run.normal else 'no':>6} {run.patient_weeks:6.2f}"
              f" {len(run.notes):5d} {run.held:4d} {per_week:>7} {doc:5d}"
              f" {len(run.alerts):6d} {len(eps):8d}"
              f" {max((len(e) for e in eps), default=0):9d}"
              f" {max((len(sent_times(e)) for e in eps), default=0):6d}"
              f" {_mins(max(lat)) if lat else '-':>8}")
    if all_eps:
        sms = [len(sent_times(e)) for e in all_eps]
        lat_text = (f"median {_mins(statistics.median(all_lat))}, max {_mins(max(all_lat))}"
                    if all_lat else "-")
        print(f"all scenarios: {len(all_eps)} episodes, alerts per episode max"
              f" {max(len(e) for e in all_eps)}, SMS per episode mean"
              f" {statistics.mean(sms):.1f} max {max(sms)}; first abnormal reading to first SMS"
              f" {lat_text}")
    if normal_pw:
        print(f"normal weeks: {normal_sms / normal_pw:.1f} SMS per patient-week,"
              f" {normal_doc / normal_pw:.1f} to a doctor ({normal_pw:.2f} patient-weeks)")


def _mins(d: timedelta) -> str:
    return f"{d.total_seconds() / 60:.1f}m"


# --- UVA/Padova virtual patients ---------------------------------------------------------------


def truth(path: Path) -> list[tuple[datetime, float]]:
    with path.open(encoding="utf-8") as f:
        return [(t(r["time"]), float(r["bg_mmol_l"])) for r in csv.DictReader(f)]


def level2_lows(bg: list[tuple[datetime, float]]) -> list[tuple[datetime, datetime]]:
    """(first below 3.0, last below 3.0) of each low of >= 15 min; runs < 30 min apart merge."""
    step = bg[1][0] - bg[0][0] if len(bg) > 1 else timedelta(minutes=5)
    runs: list[list[datetime]] = []
    for at, v in bg:
        if v < 3.0:
            if runs and at - runs[-1][1] <= timedelta(minutes=30):
                runs[-1][1] = at
            else:
                runs.append([at, at])
    return [(a, b) for a, b in runs if b - a + step >= timedelta(minutes=15)]


@dataclass
class Score:
    name: str
    weeks: float
    lows: int
    alerted: int
    leads: list[float]
    false: int
    false_rules: dict[str, int]
    doc_sms: int
    sms: int
    min_bg: float
    doc_alerts: int = 0
    held: int = 0
    urgent_eps: int = 0  # episodes that reached high (a CGM level 2) or critical
    false_told: int = 0  # as false, judged at the doctor's first SMS instead of the opening
    doc_alerted: int = 0  # level-2 lows a doctor heard of (issue 14, fifth round)
    doc_leads: list[float] = field(default_factory=list)  # true low to the doctor's first SMS


def score(run: Run, bg: list[tuple[datetime, float]], name: str) -> Score:
    lows = level2_lows(bg)
    urgent = sorted(t(n["time"]) for n in run.notes if n.get("time")
                    and n.get("severity") in ("high", "critical")
                    and not str(n.get("kind")).startswith(NOT_ALERTING))
    alerted, leads = 0, []
    doc_urgent = sorted(t(n["time"]) for n in run.notes if n.get("time")
                        and n.get("role") in DOCTORS and n.get("severity") in ("high", "critical")
                        and not str(n.get("kind")).startswith(NOT_ALERTING))
    doc_leads: list[float] = []
    for start, end in lows:
        hits = [t for t in urgent if start - timedelta(minutes=30) <= t <= end]
        if hits:
            alerted += 1
            leads.append((hits[0] - start).total_seconds() / 60)
        doc = [t for t in doc_urgent if start - timedelta(minutes=30) <= t <= end]
        if doc:
            doc_leads.append((doc[0] - start).total_seconds() / 60)
    false_rules: dict[str, int] = {}
    doc_alerts = false_told = 0
    for a in run.alerts:
        if not any(n.get("role") in DOCTORS and was_sent(n)
                   for n in a.get("notifications", [])):
            continue
        doc_alerts += 1
        opened = t(a["opened_at"])
        near = [v for at, v in bg if abs(at - opened) <= timedelta(minutes=30)]
        if not any(v < 3.9 for v in near):
            false_rules[str(a["rule"])] = false_rules.get(str(a["rule"]), 0) + 1
        # Since episodes, a doctor's first SMS may be a later update (level 1 stays at home):
        # judged also at that moment, what the doctor was woken for.
        told = min(t(n["sent_at"]) for n in a["notifications"]
                   if n.get("role") in DOCTORS and was_sent(n))
        if not any(v < 3.9 for at, v in bg if abs(at - told) <= timedelta(minutes=30)):
            false_told += 1
    doc = sum(1 for n in run.notes if n.get("role") in DOCTORS)
    urgent_eps = sum(1 for a in run.alerts if a.get("severity") in ("high", "critical"))
    return Score(name, run.patient_weeks, len(lows), alerted, leads, sum(false_rules.values()),
                 false_rules, doc, len(run.notes), min(v for _, v in bg), doc_alerts, run.held,
                 urgent_eps, false_told, len(doc_leads), doc_leads)


def _row(s: Score) -> str:
    lead = f"{statistics.median(s.leads):+.0f}m" if s.leads else "-"
    rules = ", ".join(f"{k} {v}" for k, v in sorted(s.false_rules.items())) or "-"
    return (f"{s.name:16} {s.min_bg:6.1f} {s.lows:4d} {s.alerted:7d} {lead:>6}"
            f" {s.false / s.weeks:8.1f} {s.doc_sms / s.weeks:10.1f} {s.sms / s.weeks:7.1f}"
            f"  {rules}")


def rescenario(tru: Path, name: str, seed: int, out: Path) -> Path:
    """The scenario of a kept run (its true-BG file) with today's shipped rules: rules can be
    tuned without running simglucose again (the mistakes in the header comments are lost)."""
    from homevitals.simulators import uva_padova, uva_padova_files

    with tru.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    zone = ZoneInfo(uva_padova.ZONE)
    times = [t(r["time"]).astimezone(zone) for r in rows]
    trace = uva_padova.Trace(name, times[0], times, [float(r["bg_mmol_l"]) for r in rows],
                             [float(r["cgm_mmol_l"]) for r in rows], uva_padova.Plan())
    out.mkdir(parents=True, exist_ok=True)
    path = out / tru.name.replace(".truth.csv", ".yaml")
    rules = uva_padova_files.cgm_rules(uva_padova_files.load_rules())
    path.write_text(uva_padova_files.scenario_text(trace, seed, rules), encoding="utf-8")
    return path


def uva(cohorts: list[str], patients: int, days: int, seed: int, src: Path | None,
        work: Path, broker: str) -> None:
    from homevitals.simulators import uva_padova, uva_padova_files

    print(f"\n== UVA/Padova virtual patients (simglucose), {days} days each, seed {seed},"
          " shipped default rules and routes, nobody acknowledges ==")
    head = (f"{'patient':16} {'minBG':>6} {'L2':>4} {'alerted':>7} {'lead':>6} {'false/pw':>8}"
            f" {'doc SMS/pw':>10} {'SMS/pw':>7}  false alerts by rule")
    for cohort in cohorts:
        role = "held out" if cohort == "adult" else "tuning"
        print(f"\n-- {cohort} ({role}) --\n{head}\n{'-' * len(head)}")
        scores = []
        for name in uva_padova.patient_names(cohort)[:patients]:
            stem = "uva-padova-" + name.replace("#", "-")
            tru = src / f"{stem}.truth.csv" if src else None
            if tru is not None and tru.exists():
                scen = rescenario(tru, name, seed, work / "uva")
            else:
                scen, tru = uva_padova_files.write_patient(name, work / "uva", days, seed)
            s = score(replay(scen, work / stem, broker), truth(tru), name)
            scores.append(s)
            print(_row(s), flush=True)
        tot = _total(scores, cohort)
        print("-" * len(head))
        print(_row(tot))
        quiet = [s for s in scores if s.min_bg >= 3.9]
        if quiet:
            pw = sum(s.weeks for s in quiet)
            print(f"patients who never went below 3.9 (true BG): {len(quiet)},"
                  f" {sum(s.doc_sms for s in quiet) / pw:.1f} doctor SMS per patient-week")
        share = f" ({tot.false / tot.doc_alerts:.0%} of {tot.doc_alerts})" if tot.doc_alerts else ""
        print(f"{cohort}: level-2 lows alerted {tot.alerted}/{tot.lows}, false doctor alerts"
              f" {tot.false / tot.weeks:.1f}/pw{share},"
              f" doctor SMS {tot.doc_sms / tot.weeks:.1f}/pw; {tot.held} SMS held back by the"
              " alarm budget (not counted)")
        print(f"{cohort}: false doctor alerts judged at the doctor's first SMS (not at the"
              f" episode's opening): {tot.false_told / tot.weeks:.1f}/pw")
        lead = f"{statistics.median(tot.doc_leads):+.0f}m" if tot.doc_leads else "-"
        print(f"{cohort}: level-2 lows a doctor heard of {tot.doc_alerted}/{tot.lows}, median"
              f" first true BG below 3.0 to the doctor's first SMS {lead}")
        # Were every level-2 episode to tell a doctor at once, with an all clear to them, the
        # doctor's SMS could be no fewer than twice these (the fifth round tells the doctor only
        # of those still at level 2 after 10 minutes).
        print(f"{cohort}: {tot.urgent_eps} level-2 (or critical) episodes,"
              f" {tot.urgent_eps / tot.weeks:.1f}/pw: at least"
              f" {2 * tot.urgent_eps / tot.weeks:.1f} doctor SMS/pw (first SMS and all clear)"
              " if each told a doctor at once")


def _total(scores: list[Score], cohort: str) -> Score:
    rules: dict[str, int] = {}
    for s in scores:
        for k, v in s.false_rules.items():
            rules[k] = rules.get(k, 0) + v
    return Score(f"{cohort} (all)", sum(s.weeks for s in scores), sum(s.lows for s in scores),
                 sum(s.alerted for s in scores), [x for s in scores for x in s.leads],
                 sum(s.false for s in scores), rules, sum(s.doc_sms for s in scores),
                 sum(s.sms for s in scores), min(s.min_bg for s in scores),
                 sum(s.doc_alerts for s in scores), sum(s.held for s in scores),
                 sum(s.urgent_eps for s in scores), sum(s.false_told for s in scores),
                 sum(s.doc_alerted for s in scores), [x for s in scores for x in s.doc_leads])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=7, help="days per virtual patient")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cohort", action="append", choices=["adolescent", "child", "adult"])
    p.add_argument("--patients", type=int, default=10, help="per cohort (1-10)")
    p.add_argument("--uva-dir", type=Path, help="reuse the runs kept here (the .truth.csv files"
                   " of --keep DIR/uva, or of uva_padova --out DIR) with today's shipped rules")
    p.add_argument("--skip-library", action="store_true")
    p.add_argument("--skip-uva", action="store_true")
    p.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"])
    p.add_argument("--keep", type=Path, help="keep every replay's output here")
    args = p.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="alarm-burden-") as tmp:
        work = args.keep or Path(tmp)
        if not args.skip_library:
            library(work / "library", args.broker)
        if not args.skip_uva:
            uva(args.cohort or ["adolescent", "child", "adult"], args.patients, args.days,
                args.seed, args.uva_dir, work, args.broker)
    print(f"\n(wall time {time.monotonic() - started:.0f} s; not a figure of merit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
