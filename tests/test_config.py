"""Configuration: errors name the file, the line, the key and the problem; check-config says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from homevitals.vocab.config import load_config, parse_config
from homevitals.vocab.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

BAD = """\
mqtt:
  host: broker
  colour: blue
homes:
  - id: home-1
    timezone: Europe/Atlantis
    patients:
      - id: ana
        name: Ana
        care_team:
          - {name: Petra, role: family_member, phone: "+38641222333"}
      - id: bor
        name: Bor
        care_team:
          - {name: Dr. K, role: family_doctor, phone: "040 111 222"}
"""


def test_every_problem_is_named_with_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BAD, "site.yaml")
    assert err.value.problems == [
        "site.yaml:3: mqtt.colour: unknown key",
        "site.yaml:6: homes.0.timezone: unknown time zone 'Europe/Atlantis'"
        " (use an IANA name such as Europe/Ljubljana)",
        "site.yaml:8: homes.0.patients.0: patient ana has no family_doctor in care_team",
        "site.yaml:15: homes.0.patients.1.care_team.0.phone:"
        " phone '040 111 222' is not an E.164 number such as +38640123456",
    ]


def test_cross_section_checks_point_at_the_line() -> None:
    text = (ROOT / "configs" / "homevitals.yaml").read_text(encoding="utf-8")
    text = text.replace("home: home-novak", "home: home-elsewhere")
    line = text.splitlines().index("  home: home-elsewhere") + 1
    with pytest.raises(ConfigError) as err:
        parse_config(text, "x.yaml")
    assert err.value.problems == [
        f"x.yaml:{line}: gateway.home: 'home-elsewhere' is not one of the homes (home-novak)"]


def test_a_typo_in_the_gateway_section_is_reported_there() -> None:
    # "gateway" is also a rule kind: its name must not be dropped from the location.
    text = (ROOT / "configs" / "homevitals.yaml").read_text(encoding="utf-8")
    text = text.replace("heartbeat_seconds: 60", "heartbeat_secnds: 60")
    line = text.splitlines().index("  heartbeat_secnds: 60") + 1
    assert line > 40
    with pytest.raises(ConfigError) as err:
        parse_config(text, "typo4.yaml")
    assert err.value.problems == [f"typo4.yaml:{line}: gateway.heartbeat_secnds: unknown key"]




def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# to do\n", encoding="utf-8")
    result = _check(empty)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: {empty}: the file is empty (or only comments): a"
                             " configuration needs at least homes: (configs/homevitals.yaml"
                             " is a sample)\n")


def test_sample_configs_are_valid() -> None:
    cfg = load_config(ROOT / "configs" / "homevitals.yaml")
    assert cfg.home("home-novak").zone.key == "Europe/Ljubljana"
    assert [r.id for r in cfg.rules.definitions] == ["night-low-glucose", "call-button"]


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homevitals.roots.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_command(tmp_path: Path) -> None:
    ok = _check(ROOT / "configs" / "homevitals.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "configs/homevitals.yaml: OK (1 homes, 1 patients, 3 devices, 2 rules)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")
    result = _check(bad)
    assert result.returncode == 2
    assert f"error: {bad}:3: mqtt.colour: unknown key" in result.stderr.splitlines()
    missing = _check(tmp_path / "nope.yaml")
    assert (
        missing.returncode == 2
        and "nope.yaml: cannot read: No such file or directory" in missing.stderr
    )


def test_yaml_is_never_constructed_as_code() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("mqtt: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_a_rule_in_the_wrong_unit_or_on_an_unknown_field_is_refused() -> None:
    text = (ROOT / "configs" / "homevitals.yaml").read_text(encoding="utf-8")
    wrong_unit = text.replace("below: 3.9\n      unit: mmol/L", "below: 70\n      unit: mmHg")
    with pytest.raises(ConfigError) as err:
        parse_config(wrong_unit, "x.yaml")
    line = wrong_unit.splitlines().index("      unit: mmHg") + 1
    assert (f"x.yaml:{line}: rules.definitions.0.unit: rule night-low-glucose: glucose.glucose is"
            " in mmol/L, not mmHg") in err.value.problems
    unknown = text.replace("field: glucose", "field: sugar")
    with pytest.raises(ConfigError) as err:
        parse_config(unknown, "x.yaml")
    assert "rule night-low-glucose: glucose has no field 'sugar' (fields: glucose)" in str(
        err.value
    )


