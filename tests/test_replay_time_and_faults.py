"""Simulated time that is right across DST, explicit UTC offsets in scenario times, SFLOAT special
values from a scenario, and the gateway_crash and duplicate_delivery faults (issue 14), through
the whole replay pipeline (real Mosquitto, gateway, ingest, rules, alerts)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from homevitals.roots.replay import Replay, run_replay
from homevitals.roots.replay_output import write_outputs
from homevitals.simulators.scenario import ScenarioError, load_scenario, parse_scenario
from homevitals.simulators.timeline import build_timeline

BERLIN = ZoneInfo("Europe/Berlin")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the night the clocks go back --------------------------------------------------------------


def test_cgm_night_across_the_clock_change_is_stored_at_true_times(tmp_path: Path) -> None:
    summary = tmp_path / "summary.txt"
    assert run_replay("dst-night-berlin", tmp_path, stream=summary.open("w")) == 0
    cgm = [r for r in _csv(tmp_path / "readings.csv") if r["device"] == "cgm-1"]
    times = [_utc(r["time"]) for r in cgm]
    # 14 hours of elapsed time (20:00 CEST .. 09:00 CET), a record every 5 minutes, none missing,
    # none doubled, none an hour early.
    assert len(times) == 168 and len(set(r["id"] for r in cgm)) == 168
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {timedelta(minutes=5)}
    assert times[0] == datetime(2026, 10, 24, 18, 0, tzinfo=UTC)
    # Each record is stored at the moment the sensor measured it (its delivery in the timeline).
    tl = build_timeline(load_scenario("dst-night-berlin"))
    assert times == [tv.value.at for tv in tl.values if tv.value.characteristic == "2AA7"]
    # The repeated hour shows twice in local time, with its offsets.
    local = {r["local_time"] for r in cgm}
    assert {"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"} <= local
    assert all(_utc(r["local_time"]) == _utc(r["time"]) for r in cgm)
    # One low, told once, in the second 02:xx hour; the missing-data rule stays quiet.
    sms = _jsonl(tmp_path / "notifications.jsonl")
    assert [(n["rule"], n["kind"]) for n in sms] == [("cgm-low", "firing"), ("cgm-low", "resolved")]
    fired = _utc(sms[0]["time"]).astimezone(BERLIN)
    assert (fired.hour, fired.utcoffset()) == (2, timedelta(hours=1)), fired
    assert "at 02:15 CET" in str(sms[0]["text"])  # the reading's own time, which 02:15 named
    text = summary.read_text()
    assert "MISSED" not in text and "UNEXPECTED" not in text, text
    assert "met      readings cgm-1: 168 stored, every 0:05:00" in text


# --- explicit offsets ---------------------------------------------------------------------------

SCENARIO = """\
name: offsets
start: "2026-10-24 22:00"
duration: 8h
homes:
  - id: home-weber
    timezone: Europe/Berlin
    patients:
      - id: jonas
        name: Jonas Weber
        care_team:
          - {name: Dr. S, role: family_doctor, phone: "+15550100011"}
        readings: READINGS
    devices:
      - {id: cgm-1, kind: cgm, patient: jonas}
      - {id: meter-1, kind: glucose_meter, patient: jonas}
      - {id: bp-1, kind: blood_pressure, patient: jonas}
      - {id: ox-1, kind: pulse_oximeter, patient: jonas}
"""


def _scenario(readings: str) -> str:
    return SCENARIO.replace("READINGS", readings)


def test_explicit_offsets_name_either_occurrence_of_the_repeated_hour() -> None:
    sc = parse_scenario(_scenario("[]"), "offsets.yaml")
    assert sc.start == datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert sc.resolve("2026-10-25 02:30", BERLIN) == first  # no offset: the first occurrence
    assert sc.resolve("2026-10-25 02:30+02:00", BERLIN) == first
    assert sc.resolve("2026-10-25 02:30+01:00", BERLIN) == first + timedelta(hours=1)
    assert sc.resolve("day 2 02:30+01:00", BERLIN) == first + timedelta(hours=1)
    with pytest.raises(ScenarioError) as err:
        sc.resolve("2026-10-25 05:00+02:00", BERLIN)
    assert err.value.problems == ["offsets.yaml: '2026-10-25 05:00+02:00': Europe/Berlin is at"
                                  " UTC+01:00 at 2026-10-25 05:00, not UTC+02:00"]


def test_readings_at_explicit_offsets_are_stored_at_those_instants(tmp_path: Path) -> None:
    path = tmp_path / "offsets.yaml"
    path.write_text(_scenario(
        '[{at: "2026-10-25 02:40+02:00", device: cgm-1, glucose: 5.0},'
        ' {at: "2026-10-25 02:40+01:00", device: cgm-1, glucose: 6.0}]'), encoding="utf-8")
    run_replay(str(path), tmp_path / "out", stream=(tmp_path / "s.txt").open("w"))
    cgm = [r for r in _csv(tmp_path / "out" / "readings.csv") if r["device"] == "cgm-1"]
    # (A CGM sends whole mg/dL: 90 and 108 mg/dL.)
    assert [(r["time"], r["local_time"], r["value"]) for r in cgm] == [
        ("2026-10-25T00:40:00.000000Z", "2026-10-25T02:40:00+02:00", "4.996"),
        ("2026-10-25T01:40:00.000000Z", "2026-10-25T02:40:00+01:00", "5.995"),
    ]


# --- SFLOAT special values ---------------------------------------------------------------------


def test_sfloat_specials_reach_the_gateway_as_their_bytes(tmp_path: Path) -> None:
    readings = (
        '[{at: "day 1 22:10", device: meter-1, glucose: NaN},'
        ' {at: "day 1 22:20", device: bp-1, systolic: NRes, diastolic: 80, pulse: 70},'
        ' {at: "day 1 22:30", device: cgm-1, glucose: +INFINITY},'
        ' {at: "day 1 22:40", device: ox-1, spo2: -INFINITY, pulse: 70},'
        ' {at: "day 1 22:50", device: meter-1, glucose: 5.5}]'
    )
    path = tmp_path / "specials.yaml"
    path.write_text(_scenario(readings), encoding="utf-8")
    tl = build_timeline(load_scenario(path))
    data = {tv.value.characteristic: tv.value.data for tv in tl.values}
    # GLS 0x2A18: flags, sequence, base time (7), then the concentration; BLS 0x2A35: flags,
    # systolic first; CGMS 0x2AA7: size, flags, concentration; PLX 0x2A5E: flags, SpO2 first.
    assert data["2A18"][10:12] == bytes.fromhex("26b2")  # the last one, 550e-5 mol/L, ...
    nan = next(tv.value.data for tv in tl.values if tv.value.characteristic == "2A18")
    assert nan[10:12] == bytes.fromhex("ff07")  # ... and the first, SFLOAT NaN 0x07FF
    assert data["2A35"][1:3] == bytes.fromhex("0008")  # NRes 0x0800
    assert data["2AA7"][2:4] == bytes.fromhex("fe07")  # +INFINITY 0x07FE
    assert data["2A5E"][1:3] == bytes.fromhex("0208")  # -INFINITY 0x0802
    run_replay(str(path), tmp_path / "out", stream=(tmp_path / "s.txt").open("w"))
    rows = _csv(tmp_path / "out" / "readings.csv")
    rejected = sorted((r["device"], r["field"], r["value"]) for r in rows
                      if r["measurement"] == "rejected")
    assert rejected == [
        ("bp-1", "bad_value", "0x2A35: systolic pressure is SFLOAT NRes (0x0800)"),
        ("cgm-1", "bad_value", "0x2AA7 record 1: glucose concentration is SFLOAT +INF (0x07FE)"),
        ("meter-1", "bad_value", "0x2A18: glucose concentration is SFLOAT NaN (0x07FF)"),
        ("ox-1", "bad_value", "0x2A5E: the SpO2 is SFLOAT -INF (0x0802)"),
    ]
    assert [(r["device"], r["value"]) for r in rows if r["measurement"] == "glucose"] == [
        ("meter-1", "5.5")]


def test_yaml_infinity_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_scenario('[{at: "day 1 22:10", device: meter-1, glucose: .inf}]'),
                    encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert any(":12: homes.0.patients.0.readings.0.glucose" in p for p in err.value.problems)


# --- gateway_crash and duplicate_delivery -------------------------------------------------------

FAULTS = """\
name: crash-and-duplicates
start: "2026-11-20 22:00"
duration: 4h
seed: 3
homes:
  - id: home-novak
    timezone: Europe/Ljubljana
    patients:
      - id: ana
        name: Ana Novak
        care_team:
          - {name: Dr. Marko Kranjc, role: family_doctor, phone: "+15550100001"}
          - {name: Dr. Alenka Vidmar, role: backup_doctor, phone: "+15550100003"}
          - {name: Mojca Zupan, role: health_manager, phone: "+15550100004"}
        profile:
          glucose: {fasting: 7.0, lows: [{at: "day 2 00:45", nadir: 3.2, hold: 20m}]}
          cgm: {device: cgm-1}
        presses:
          - {at: "day 2 00:10", device: button-1}
    devices:
      - {id: cgm-1, kind: cgm, patient: ana}
      - {id: button-1, kind: call_button, patient: ana}
rules:
  definitions:
    - {id: cgm-low, kind: threshold, measurement: glucose, field: glucose, below: 3.9,
       clear_at: 4.4, unit: mmol/L, severity: high, reason: "Low glucose"}
    - {id: call-button, kind: event, event: call_button, severity: critical,
       reason: "Call for help from home"}
    - {id: gateway-offline, kind: gateway, offline_grace_minutes: 5,
       heartbeat_missed_minutes: 15, severity: medium, reason: "The home gateway is offline"}
faults:
  - {kind: gateway_crash, home: home-novak, at: "day 1 23:02", for: 20m}
  - {kind: duplicate_delivery, at: "day 2 00:00", for: 1h}
expect:
  - {device: cgm-1, readings: 48, every: 5m}
"""


def test_gateway_crash_and_duplicate_delivery_lose_nothing_and_double_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(FAULTS, encoding="utf-8")
    sc = load_scenario(path)
    tl = build_timeline(sc)
    (crash,) = [o for o in tl.outages if o.kind == "gateway_crash"]
    # Killed right after queueing the 23:05 CGM record; restarted 20 minutes later.
    assert crash.start == datetime(2026, 11, 20, 22, 5, tzinfo=UTC)
    assert crash.end == crash.start + timedelta(minutes=20)
    for d in ("work", "out"):
        (tmp_path / d).mkdir()
    replay = Replay(sc, tl, tmp_path / "work", "auto", io.StringIO())
    collected = replay.run()
    summary = write_outputs(tmp_path / "out", sc, tl, collected, 0.0)
    assert "met      readings cgm-1: 48 stored, every 0:05:00" in summary, summary
    assert "steps did not settle" not in summary, summary
    # The broker really delivered readings, the press and alert decisions twice.
    copies = replay.duplication.copies
    assert {k: n > 0 for k, n in copies.items()} == {
        "reading": True, "event": True, "alert": True}, copies

    rows = _csv(tmp_path / "out" / "readings.csv")
    cgm = [r for r in rows if r["device"] == "cgm-1"]
    # Nothing lost: the record queued when the gateway was killed, the ones it missed while down.
    assert len(cgm) == 48 and len({r["id"] for r in cgm}) == 48
    assert any(r["local_time"] == "2026-11-20T23:05:00+01:00" for r in cgm)
    presses = [r for r in rows if r["measurement"] == "event"]
    assert [r["local_time"] for r in presses] == ["2026-11-21T00:10:00+01:00"]

    alerts = _jsonl(tmp_path / "out" / "alerts.jsonl")
    assert sorted(a["rule"] for a in alerts) == ["call-button", "cgm-low", "gateway-offline"]
    sms = _jsonl(tmp_path / "out" / "notifications.jsonl")
    sent = Counter((n["to"], n["alert_id"], n["kind"]) for n in sms)
    assert max(sent.values()) == 1, [k for k, n in sent.items() if n > 1]
    firing = {n["rule"]: _utc(n["time"]) for n in sms if n["kind"] == "firing"}
    # The last will told the server at once (a missed heartbeat would take 15 minutes) ...
    assert firing["gateway-offline"] - crash.start <= timedelta(minutes=5)
    resolved = [_utc(n["time"]) for n in sms
                if n["rule"] == "gateway-offline" and n["kind"] == "resolved"]
    # ... and the restarted gateway announced itself online, and has been heard from for the
    # rule's clear_after_minutes (default 10; issue 14) when the all clear goes.
    assert resolved == [crash.end + timedelta(minutes=10)]
    assert firing["call-button"] == datetime(2026, 11, 20, 23, 10, tzinfo=UTC)
