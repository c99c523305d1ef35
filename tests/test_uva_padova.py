"""simulators/uva_padova.py: a UVA/Padova virtual patient (simglucose) as a scenario that replays
through the real pipeline, with its true BG lined up with the CGM readings."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from homevitals.roots.replay import run_replay
from homevitals.simulators import uva_padova, uva_padova_files
from homevitals.simulators.scenario import ScenarioError, load_scenario

NAME = "child#003"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_one_day_replays_with_cgm_every_5_minutes_and_true_bg_alongside(tmp_path: Path) -> None:
    scenario, truth = uva_padova_files.write_patient(NAME, tmp_path / "gen", days=1, seed=7)
    assert scenario.name == "uva-padova-child-003.yaml"
    sc = load_scenario(scenario)  # valid: the same loader as `homevitals replay`
    assert sc.model.duration == timedelta(days=1)
    assert {r.id for r in sc.model.rules.definitions} >= {"hypo-level-1", "hypo-level-2"}

    out = tmp_path / "out"
    assert run_replay(str(scenario), out, stream=(tmp_path / "summary.txt").open("w")) == 0
    stored = [r for r in _csv(out / "readings.csv")
              if r["device"] == "cgm-1" and r["measurement"] == "glucose"]
    times = [_t(r["time"]) for r in stored]
    assert len(stored) == 288  # a day of CGM through the gateway, ingest and the store
    assert all(b - a == timedelta(minutes=5) for a, b in zip(times, times[1:], strict=False))
    assert stored[0]["local_time"] == "2027-01-11T00:00:00+01:00"

    rows = _csv(truth)
    assert [_t(r["time"]) for r in rows] == times
    for r, s in zip(rows, stored, strict=True):
        # The CGM sends whole mg/dL, as the device does; the store keeps mmol/L to 3 places.
        assert abs(float(r["cgm_mmol_l"]) - float(s["value"])) < 0.001, (r, s)
        assert 1.0 < float(r["bg_mmol_l"]) < 25.0
    bg = [float(r["bg_mmol_l"]) for r in rows]
    cgm = [float(r["cgm_mmol_l"]) for r in rows]
    # The CGM follows the true BG with a sensor's lag and error, not a copy of it: its mean
    # absolute relative difference is that of a CGM (roughly 9-20 %), not 0 and not 50 %.
    mard = sum(abs(g - b) / b for b, g in zip(bg, cgm, strict=True)) / len(bg)
    assert 0.02 < mard < 0.25, mard
    assert max(bg) - min(bg) > 2.0  # meals and boluses move it


def test_same_seed_same_files_and_another_seed_another_day(tmp_path: Path) -> None:
    a = uva_padova_files.write_patient(NAME, tmp_path / "a", days=1, seed=7)
    b = uva_padova_files.write_patient(NAME, tmp_path / "b", days=1, seed=7)
    c = uva_padova_files.write_patient(NAME, tmp_path / "c", days=1, seed=8)
    for fa, fb in zip(a, b, strict=True):
        assert fa.read_bytes() == fb.read_bytes()
    assert a[1].read_bytes() != c[1].read_bytes()


def test_cli_writes_a_patient_and_refuses_a_clock_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert uva_padova.main(["--patient", "adult#001", "--days", "1", "--start",
                            "2027-01-11 08:00", "--out", str(tmp_path)]) == 0
    rows = _csv(tmp_path / "uva-padova-adult-001.truth.csv")
    assert (rows[0]["local_time"], len(rows)) == ("2027-01-11T08:00:00+01:00", 288)
    text = (tmp_path / "uva-padova-adult-001.yaml").read_text(encoding="utf-8")
    assert "start: 2027-01-11 08:00" in text and "day 2 breakfast" not in text
    assert uva_padova.main(["--patient", "adult#011", "--out", str(tmp_path)]) == 2
    assert "unknown virtual patient 'adult#011'" in capsys.readouterr().err
    # Scenario times are local wall-clock times: a run across the October change is refused.
    code = uva_padova.main(["--patient", "adult#001", "--days", "2", "--start",
                            "2027-10-30 00:00", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "crosses a clock change in Europe/Ljubljana" in capsys.readouterr().err


_NAMED = """\
name: uva-named
description: a virtual patient named in the scenario, with a therapy
start: "2027-01-11 00:00"
duration: 1d
seed: 5
homes:
  - id: home-1
    timezone: Europe/Ljubljana
    patients:
      - id: teen
        name: Teen
        care_team:
          - {name: Dr. Marko Kranjc, role: family_doctor, phone: "+15550100001"}
        profile:
          uva_padova:
            patient: "PATIENT"
            device: cgm-1
            therapy: {overbolus_days: 1.0, exercise_days: 0, basal: 1.3, treat_lows: false}
    devices:
      - {id: cgm-1, kind: cgm, patient: teen, address: "C0:11:22:33:44:04"}
"""


def test_a_scenario_names_a_virtual_patient_and_a_therapy(tmp_path: Path) -> None:
    """Issue 19: `profile: uva_padova` runs that patient under that therapy, and its CGM goes
    through the gateway path like any other."""
    path = tmp_path / "named.yaml"
    path.write_text(_NAMED.replace("PATIENT", "adolescent#003"), encoding="utf-8")
    out = tmp_path / "out"
    assert run_replay(str(path), out, stream=(tmp_path / "summary.txt").open("w")) == 0
    stored = [(_t(r["time"]), float(r["value"])) for r in _csv(out / "readings.csv")
              if r["device"] == "cgm-1"]
    start = _t("2027-01-10T23:00:00Z")
    harsh = uva_padova.Therapy(overbolus_days=1.0, exercise_days=0.0, basal=1.3,
                               treat_lows=False)
    expected = uva_padova.samples("adolescent#003", start, start + timedelta(days=1), 5,
                                  "Europe/Ljubljana", harsh)
    assert len(stored) == len(expected) == 288
    for (t, v), (et, ev) in zip(stored, expected, strict=True):
        assert t == et and abs(v - ev) < 0.001, (t, v, et, ev)
    # The therapy is no decoration: the shipped one (a mistake on some days, lows treated)
    # gives another, higher day than an overdosed meal every day on 1.3 times the basal.
    usual = uva_padova.samples("adolescent#003", start, start + timedelta(days=1), 5,
                               "Europe/Ljubljana")
    assert sum(v for _, v in usual) > sum(v for _, v in stored)


def test_a_scenario_naming_an_unknown_virtual_patient_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "named.yaml"
    path.write_text(_NAMED.replace("PATIENT", "adolescent#011"), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert ("named.yaml:16: homes.0.patients.0.profile.uva_padova.patient: unknown"
            " virtual patient 'adolescent#011'") in str(err.value)
