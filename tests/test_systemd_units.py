"""The shipped systemd units: systemd itself accepts them, they run a real subcommand on a valid
config, restart on failure (and on a stalled watchdog) as a dedicated user, and keep the hardening
options."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from homevitals.roots.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "configs" / "systemd").glob("homevitals-*.service"))
HARDENING = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=",
]


def _settings(unit: Path) -> dict[str, str]:
    out = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, value)
    return out


def test_one_unit_per_daemon() -> None:
    assert [u.name for u in UNITS] == [
        f"homevitals-{d}.service" for d in ("alerts", "gateway", "ingest", "rules")
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_unit_is_accepted_by_systemd(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, (
        "systemd-analyze not found: install Debian's systemd package (scripts/test.sh does)"
    )
    local = tmp_path / unit.name
    local.write_text(
        unit.read_text().replace(
            "/opt/homevitals/bin/homevitals", str(Path(sys.executable).parent / "homevitals")
        )
    )
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "Unknown key" not in result.stderr, result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_unit_runs_a_real_daemon_hardened(unit: Path) -> None:
    s = _settings(unit)
    assert s["User"] == "homevitals" and s["Restart"] in ("on-failure", "always")
    assert s["KillSignal"] == "SIGTERM" and int(s["TimeoutStopSec"]) >= 30
    # systemd restarts a stalled daemon: it notifies (homevitals.infra.runtime) and feeds a
    # watchdog.
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["WatchdogSec"].endswith("s") and 10 <= int(s["WatchdogSec"][:-1]) <= 120
    assert all(h.split("=")[0] in s and h in unit.read_text() for h in HARDENING)
    argv = s["ExecStart"].split()[1:]
    args = _parser().parse_args(argv)
    assert (
        args.command == unit.stem.removeprefix("homevitals-")
        and args.config == "/etc/homevitals/homevitals.yaml"
    )
    assert s["ExecStartPre"].split()[1:] == ["check-config", "/etc/homevitals/homevitals.yaml"]
