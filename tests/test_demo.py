"""`homevitals demo`, the first thing a new user runs: the household through the whole pipeline on
embedded defaults, showing the readings and exactly the SMS that would be sent."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_shows_readings_and_the_sms_it_would_send(broker: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "homevitals.roots.cli",
            "demo",
            "--broker",
            broker,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr  # a clean run shows the user no errors
    assert " INFO " not in result.stderr, result.stderr  # nor log lines between the story
    out = result.stdout
    assert f"broker {broker} on 127.0.0.1:" in out
    sms = [line for line in out.splitlines() if line.startswith("SMS to ")]
    assert len(sms) == 3 and all(line.startswith("SMS to +15550100001 ") for line in sms), out
    assert "homevitals CRITICAL: Ana Novak pressed the call button at 19:45. Call for help from" \
        " home. Reply ACK " in out
    assert "homevitals HIGH: Ana Novak: glucose 3.4 mmol/L at 03:10. Night-time low glucose" in out
    assert "homevitals ALL CLEAR: Ana Novak: glucose 5.8 mmol/L at 07:30. Night-time" in out
    stored = out.split("Readings stored:")[1].split("Alert history")[0]
    assert stored.count("glucose ") == 6 and stored.count("blood_pressure ") == 2
    assert "Sat 21 Nov 03:10    ana glucose         3.4 mmol/L" in stored
    assert "Fri 20 Nov 20:00    ana blood_pressure  138/86 mmHg, pulse 74 bpm" in stored
