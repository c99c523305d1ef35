"""What a new user sees when something is missing or mistyped: one line that says what to do,
never a traceback (issue 18, "Errors a user can act on")."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from daemons import write_config

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.rules.app import RulesApp
from homevitals.simulators.household import demo_config
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "configs" / "homevitals.yaml"

# `pip install homevitals` without extras, simulated: importing these modules fails as it would.
WITHOUT = """\
import sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from homevitals.roots.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homevitals.roots.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def _without(modules: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, modules, *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _server_config(tmp_path: Path) -> Path:
    data = demo_config().model_dump(mode="json", exclude_none=True)
    data["store"] = {"kind": "influx_v1", "url": "http://127.0.0.1:9"}
    return write_config(tmp_path / "site.yaml", data)


@pytest.mark.parametrize(("missing", "command", "extras"), [
    ("twilio", "demo", "server,demo"),
    ("sqlalchemy", "demo", "server,demo"),
    ("numpy", "report", "server"),
    ("bleak", "scan", "gateway"),
    ("urllib3", "ingest", "server"),
    ("sqlalchemy", "rules", "server"),  # the rules' state (rules/store.py)
    ("twilio", "alerts", "server"),
])
def test_a_missing_extra_is_named_with_the_pip_command(
    tmp_path: Path, missing: str, command: str, extras: str
) -> None:
    cfg = str(_server_config(tmp_path))
    args = {
        "demo": ["demo"],
        "report": ["report", "-c", cfg, "--patient", "ana", "--from", "2026-11-20", "--to",
                   "2026-11-21", "--out", str(tmp_path / "out")],
        "scan": ["scan", "--seconds", "0.1"],
    }.get(command, [command, "-c", cfg])
    result = _without(missing, *args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    extra = "gateway" if missing == "bleak" else "server"
    assert result.stderr == (f"error: homevitals {command} needs {missing}, which comes with the"
                             f" '{extra}' extra; install it with: pip install"
                             f" 'homevitals[{extras}]'\n")


def test_alerts_history_refuses_an_unknown_patient(tmp_path: Path) -> None:
    cfg = _server_config(tmp_path)
    result = _run("alerts", "-c", str(cfg), "history", "--patient", "nobody", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("error: --patient: unknown patient 'nobody' (configured: ana)\n")
    ok = _run("alerts", "-c", str(cfg), "history", "--patient", "ana", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_alerts_ack_without_a_code_says_what_to_type(tmp_path: Path) -> None:
    cfg = _server_config(tmp_path)
    result = _run("alerts", "-c", str(cfg), "ack", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("error: alerts ack: which alert? Give the code the SMS names"
                             f" (\"reply ACK 4821\"): homevitals alerts -c {cfg} ack 4821\n")
    result = _run("alerts", "-c", str(cfg), "ack", "ACK4821", cwd=tmp_path)
    assert result.returncode == 2
    assert "an alert's code is digits, e.g. 4821 (got 'ACK4821')" in result.stderr


def test_help_describes_the_program_for_a_user() -> None:
    result = _run("--help")
    assert result.returncode == 0
    text = result.stdout.split("positional arguments")[0]
    assert "Home health monitoring: BLE health devices in a home -> MQTT -> InfluxDB" in text
    assert "Start with `homevitals demo`" in text
    assert "composition root" not in result.stdout


def test_rules_and_alerts_timers_log_nothing_per_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each stage's timer (one DueWorker on the injected clock) takes a pass at least every
    ``tick_seconds`` / ``sweep_seconds``; a pass with nothing due writes no log line (a
    scheduler that logged each run wrote about 5 760 lines a day per daemon). Twenty passes of
    each, on a simulated clock: no sleeping."""
    data = demo_config().model_dump(mode="json", exclude_none=True)
    data["store"] = {"kind": "sqlite", "path": str(tmp_path / "store.sqlite")}
    data["rules"].update(state_path=str(tmp_path / "rules.sqlite"), tick_seconds=30)
    data["alerts"] = {"notifier": "console", "outbox_path": str(tmp_path / "ledger.sqlite"),
                      "sweep_seconds": 30}
    cfg = parse_config(yaml.safe_dump(data))
    clock = SimulatedClock(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    rules = RulesApp(cfg, clock, timer_thread=False)
    alerts = AlertsApp(cfg, ConsoleNotifier(), clock, timer_thread=False)
    try:
        rules.take_over()
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        for _ in range(20):
            clock.advance(timedelta(seconds=30))
            rules.timers.step()
            alerts.timers.step()
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    finally:
        rules.outbox.close()
        alerts.ledger.close()
