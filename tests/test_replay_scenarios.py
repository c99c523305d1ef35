"""Scenario files: a mistake is reported with the file, the line and the key, before anything
runs (exit status 2, like ``check-config``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from homevitals.simulators.scenario import ScenarioError, load_scenario, shipped_scenarios
from homevitals.simulators.timeline import build_timeline

GOOD = """\
name: tiny
start: "2026-11-20 08:00"
duration: 1d
homes:
  - id: home-a
    timezone: Europe/Ljubljana
    patients:
      - id: ana
        name: Ana Novak
        care_team:
          - {name: Dr. K, role: family_doctor, phone: "+15550100001"}
        profile:
          glucose: {fasting: 6.5}
          meter: {device: meter-1}
        readings:
          - {at: "day 1 09:00", device: meter-1, glucose: 5.0}
    devices:
      - {id: meter-1, kind: glucose_meter, patient: ana}
"""


def _replay(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "homevitals.roots.cli", "replay", str(path), "--out",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=60)


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    r = _replay(tmp_path, GOOD.replace("glucose: {fasting: 6.5}", "glucoze: {fasting: 6.5}"))
    assert r.returncode == 2
    path = tmp_path / "scenario.yaml"
    assert f"error: {path}:13: homes.0.patients.0.profile.glucoze: unknown key" in r.stderr
    assert not (tmp_path / "out").exists()


def test_reading_that_the_device_cannot_measure_names_line_and_key(tmp_path: Path) -> None:
    r = _replay(tmp_path, GOOD.replace("glucose: 5.0}", "glucose: 5.0, systolic: 120}"))
    assert r.returncode == 2
    assert (f"error: {tmp_path / 'scenario.yaml'}:16: homes.0.patients.0.readings.0.systolic:"
            " a glucose_meter does not measure 'systolic'") in r.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("duration: 1d", "duration: 1 fortnight"),
         ":3: duration: '1 fortnight' is not a duration"),
        (('"day 1 09:00"', '"tomorrow"'), ":16: homes.0.patients.0.readings.0.at:"),
        (("device: meter-1}", "device: meter-2}"),
         ":14: homes.0.patients.0.profile.meter.device: device 'meter-2' is not one of ana's"),
    ],
)
def test_other_mistakes_are_located(change: tuple[str, str], message: str,
                                    tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace(*change, 1), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        build_timeline(load_scenario(path))
    assert any(p.startswith(str(path)) and message in p for p in err.value.problems), (
        err.value.problems)


def test_every_shipped_scenario_is_valid_and_has_a_readme_entry() -> None:
    names = shipped_scenarios()
    assert {"night-low", "hypertensive-crisis", "call-button-night", "cgm-signal-loss",
            "dead-gateway", "normal-week"} <= set(names)
    readme = (Path(__file__).parents[1] / "simulators" / "scenarios" / "README.md").read_text()
    for name in names:
        tl = build_timeline(load_scenario(name))
        assert tl.values and tl.expected is not None, name
        assert f"`{name}`" in readme, name
