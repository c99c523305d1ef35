"""What ``homevitals replay`` writes: notifications.jsonl, alerts.jsonl, readings.csv.

Every line is built from what the pipeline stored (the alert ledger, the store), sorted on stable
keys, with simulated times only: the same scenario and seed give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from homevitals.simulators.scenario import LoadedScenario
from homevitals.simulators.timeline import ScriptedReply, Timeline
from homevitals.vocab import wire
from homevitals.vocab.readings import Measurement

__all__ = ["Collected", "collect", "write_outputs"]

_NOTE_KEYS = ("kind", "name", "role", "recipient", "sms_state", "sent_at", "sid", "body", "error")
_CSV_HEADER = ["time", "local_time", "home", "patient", "device", "measurement", "field", "value",
               "flags", "id"]


@dataclass(frozen=True)
class Collected:
    rows: list[dict[str, Any]]
    history: list[dict[str, object]]
    replies: list[tuple[ScriptedReply, str | None]]
    delivered: int
    stalls: int


def collect(store: Any, ledger: Any, tl: Timeline, replies: list[tuple[ScriptedReply, str | None]],
            delivered: int, stalls: int) -> Collected:
    """Read the store and the ledger before the pipeline closes them."""
    start, end = tl.start - timedelta(days=2), tl.end + timedelta(days=2)
    rows: list[dict[str, Any]] = []
    for m in [*(str(m) for m in Measurement), "event", "rejected"]:
        rows += [{**r, "measurement": m} for r in store.query_readings(m, None, start, end)]
    return Collected(rows, ledger.history(), list(replies), delivered, stalls)


_NOT_READINGS = ("event", "rejected")


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def _notifications(sc: LoadedScenario, history: list[dict[str, object]]) -> list[dict[str, Any]]:
    out = []
    for h in history:
        if h.get("kind") is None:
            continue
        try:
            home, patient = sc.config.patient(str(h["patient"]))
            home_id, name = home.id, patient.name
        except KeyError:
            home_id, name = "", ""
        out.append({
            "time": h.get("sent_at"), "to": h.get("recipient"), "name": h.get("name"),
            "role": h.get("role"), "home": home_id, "patient": h.get("patient"),
            "patient_name": name, "rule": h.get("rule"), "severity": h.get("severity"),
            "kind": h.get("kind"), "state": h.get("sms_state"), "sid": h.get("sid"),
            "alert_id": h.get("alert_id"), "text": h.get("body"),
        })
    return sorted(out, key=lambda n: (str(n["time"] or "~"), str(n["sid"] or ""),
                                      str(n["to"]), str(n["kind"])))


def _alerts(history: list[dict[str, object]]) -> list[dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for h in history:
        aid = str(h["alert_id"])
        if aid not in alerts:
            head = {k: v for k, v in h.items() if k not in _NOTE_KEYS}
            alerts[aid] = {**head, "notifications": []}
        if h.get("kind") is not None:
            alerts[aid]["notifications"].append({
                "kind": h.get("kind"), "to": h.get("recipient"), "name": h.get("name"),
                "role": h.get("role"), "state": h.get("sms_state"), "sent_at": h.get("sent_at"),
                "sid": h.get("sid"), "error": h.get("error"),
            })
    for a in alerts.values():
        a["notifications"].sort(key=lambda n: (str(n["sent_at"] or "~"), str(n["sid"] or "")))
    return sorted(alerts.values(), key=lambda a: (str(a.get("opened_at")), str(a["alert_id"])))


def _csv_lines(sc: LoadedScenario, rows: Iterable[dict[str, Any]]) -> list[list[str]]:
    zones = {h.id: h.zone for h in sc.config.homes}
    lines = []
    for r in rows:
        t: datetime = r["time"]
        zone = zones.get(str(r.get("home", "")))
        local = t.astimezone(zone).isoformat() if zone else ""
        base = [wire.format_time(t), local, str(r.get("home", "")), str(r.get("patient", "")),
                str(r.get("device", "")), r["measurement"]]
        rid = str(r.get("reading_id") or r.get("event_id") or "")
        flags = str(r.get("flags", ""))
        if r["measurement"] == "event":
            lines.append([*base, str(r.get("kind", "")), str(r.get("detail", "")), "", rid])
        elif r["measurement"] == "rejected":
            lines.append([*base, str(r.get("reason", "")), str(r.get("error", "")), "", ""])
        else:
            for k, v in r.items():
                if isinstance(v, float):
                    lines.append([*base, k, repr(v), flags, rid])
    return sorted(lines, key=lambda x: (x[0], x[2], x[4], x[5], x[6], x[9]))


_HELD = ("folded", "digested")  # held back by the alarm budget: nobody received these


def _kind_is(kind: object, expected: str) -> bool:
    """``digest`` matches any digest SMS (``digest-<n>``, n is a ledger row id)."""
    return kind == expected or (expected == "digest" and str(kind).startswith("digest-"))


def _check(tl: Timeline, notes: list[dict[str, Any]]) -> list[str]:
    if tl.expected is None:
        return []
    report, used = [], {i for i, n in enumerate(notes) if n["state"] in _HELD}
    for e in tl.expected:
        match = next((i for i, n in enumerate(notes) if i not in used and n["to"] == e.to
                      and n["rule"] == e.rule and _kind_is(n["kind"], e.kind) and n["time"]
                      and abs(wire.parse_time(n["time"], "time") - e.at) <= e.within), None)
        if match is None:
            report.append(f"  MISSED   {e.kind} {e.rule} to {e.to} at {wire.format_time(e.at)}"
                          f" (+/- {e.within})")
        else:
            used.add(match)
            report.append(f"  met      {e.kind} {e.rule} to {e.to} at {notes[match]['time']}")
    report += [f"  UNEXPECTED {n['kind']} {n['rule']} to {n['to']} at {n['time']}"
               for i, n in enumerate(notes) if i not in used]
    return report


def _check_readings(tl: Timeline, rows: list[dict[str, Any]]) -> list[str]:
    """Each device's stored readings: how many, and (``every``) exactly that far apart."""
    report = []
    for e in tl.expected_readings:
        times = sorted(r["time"] for r in rows if r.get("home") == e.home
                       and r.get("device") == e.device and r["measurement"] not in _NOT_READINGS)
        steps = sorted({b - a for a, b in zip(times, times[1:], strict=False)})
        ok = len(times) == e.count and (e.every is None or steps in ([], [e.every]))
        spacing = f", every {e.every}" if e.every is not None else ""
        found = f"{len(times)} stored" + (f", steps {', '.join(map(str, steps))}"
                                          if e.every is not None and not ok else "")
        report.append(f"  {'met     ' if ok else 'MISSED  '} readings {e.device}: {e.count}"
                      f" stored{spacing}" + ("" if ok else f" (found {found})"))
    return report


def _sms_count(notes: list[dict[str, Any]]) -> str:
    held = sum(1 for n in notes if n["state"] in _HELD)
    sent = f"{len(notes) - held} SMS"
    return f"{sent} ({held} more folded into digests)" if held else sent


def write_outputs(out_dir: Path, sc: LoadedScenario, tl: Timeline, c: Collected,
                  wall_seconds: float) -> str:
    """Write the files; return the summary for the terminal (the only place wall time shows)."""
    notes = _notifications(sc, c.history)
    alerts = _alerts(c.history)
    (out_dir / "notifications.jsonl").write_text(
        "".join(_dump(n) + "\n" for n in notes), encoding="utf-8")
    (out_dir / "alerts.jsonl").write_text(
        "".join(_dump(a) + "\n" for a in alerts), encoding="utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    writer.writerows(_csv_lines(sc, c.rows))
    (out_dir / "readings.csv").write_text(buf.getvalue(), encoding="utf-8")
    replies = [{"time": wire.format_time(r.at), "from": r.phone, "name": r.name, "role": r.role,
                "text": r.text, "answer": answer} for r, answer in c.replies]
    if replies:
        (out_dir / "replies.jsonl").write_text(
            "".join(_dump(r) + "\n" for r in replies), encoding="utf-8")
    report = _check(tl, notes) + _check_readings(tl, c.rows)
    lines = [
        f"homevitals replay: {sc.model.name} ({sc.source}), seed {sc.model.seed}",
        f"  simulated {tl.start.astimezone(sc.zone).isoformat()}"
        f" .. {tl.end.astimezone(sc.zone).isoformat()}"
        f" in {wall_seconds:.1f} s of wall time",
        f"  {c.delivered} values delivered, {len(c.rows)} points stored,"
        f" {len(alerts)} alerts, {_sms_count(notes)}, {len(replies)} scripted replies",
        *([f"  {c.stalls} steps did not settle in time (see the log)"] if c.stalls else []),
        *(["expectations:", *report] if tl.expected is not None else []),
        f"  wrote {out_dir}/notifications.jsonl, alerts.jsonl, readings.csv"
        + (", replies.jsonl" if replies else ""),
    ]
    return "\n".join(lines) + "\n"
