"""One replay of a scenario for the alarm-burden bench: what the care team was sent, the alerts
and the readings (``homevitals replay``'s output), and its alerts grouped by episode."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from homevitals.simulators.scenario import load_scenario

__all__ = ["HELD", "Run", "episodes", "jsonl", "replay", "sent_times", "t", "was_sent"]

WEEK = timedelta(days=7)
HELD = ("folded", "digested")  # held back by the alarm budget: not sent (their digest is)


def t(s: object) -> datetime:
    return datetime.fromisoformat(str(s).replace("Z", "+00:00"))


def was_sent(n: dict[str, Any]) -> bool:
    return bool(n.get("time") or n.get("sent_at")) and n.get("state") not in HELD


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Run:
    scenario: Path
    out: Path
    notes: list[dict[str, Any]]  # SMS sent
    held: int  # SMS the alarm budget folded into a digest
    alerts: list[dict[str, Any]]
    readings: list[dict[str, str]]
    end: datetime
    patient_weeks: float
    normal: bool
    wall: float


def replay(scenario: Path, out: Path, broker: str) -> Run:
    """`homevitals replay SCENARIO --out OUT` in a child process, and what it wrote."""
    started = time.monotonic()
    cmd = [sys.executable, "-m", "homevitals.roots.cli", "--log-level", "ERROR", "replay",
           str(scenario), "--out", str(out), "--broker", broker]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"replay of {scenario} failed ({res.returncode}):\n{res.stderr}")
    sc = load_scenario(scenario)
    patients = sum(len(h.patients) for h in sc.model.homes)
    with (out / "readings.csv").open(encoding="utf-8") as f:
        readings = list(csv.DictReader(f))
    notes = jsonl(out / "notifications.jsonl")
    sent = [n for n in notes if was_sent(n)]
    return Run(scenario, out, sent, len(notes) - len(sent), jsonl(out / "alerts.jsonl"),
               readings, sc.end, patients * (sc.model.duration / WEEK),
               sc.model.expect == [], time.monotonic() - started)


# --- the scenario library ----------------------------------------------------------------------


def episodes(run: Run) -> list[list[dict[str, Any]]]:
    """Alerts of one patient whose open intervals overlap, as one episode each."""
    out: list[list[dict[str, Any]]] = []
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(run.alerts, key=lambda a: str(a["opened_at"])):
        by_patient.setdefault(str(a.get("patient")), []).append(a)
    for alerts in by_patient.values():
        current: list[dict[str, Any]] = []
        until: datetime | None = None
        for a in alerts:
            opened = t(a["opened_at"])
            closed = t(a["resolved_at"]) if a.get("resolved_at") else run.end
            if until is None or opened > until:
                current = []
                out.append(current)
                until = closed
            current.append(a)
            until = max(until, closed)
    return out


def sent_times(alerts: list[dict[str, Any]]) -> list[datetime]:
    return sorted(t(n["sent_at"]) for a in alerts for n in a.get("notifications", [])
                  if n.get("sent_at") and was_sent(n))
