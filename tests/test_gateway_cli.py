"""``homevitals decode`` and ``homevitals scan`` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HOMEVITALS = [sys.executable, "-m", "homevitals.cli"]
DEMO = Path(__file__).parent.parent / "simulators" / "households" / "demo.yaml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOMEVITALS, *args], capture_output=True, text=True, timeout=60)


def test_decode_prints_every_field_with_units_as_json() -> None:
    out = _run("decode", "2A35", "1e8a00580078000000041114293b3c00012700")
    assert out.returncode == 0, out.stderr
    dump = json.loads(out.stdout)
    assert dump["characteristic"] == "2A35"
    assert dump["fields"]["systolic"] == {"value": 138.0, "unit": "mmHg"}
    assert dump["fields"]["pulse"] == {"value": 60.0, "unit": "bpm"}
    # Nordic's vector has year 0: "not known", so no device time - but the dump shows it.
    assert dump["device_time"] is None
    assert dump["details"]["time_stamp"] == "0000-04-17 20:41:59"
    assert dump["details"]["measurement_status"]["flags"] == [
        "body_movement", "cuff_too_loose", "irregular_pulse", "improper_position"]


def test_decode_full_uuid_and_cgm_records() -> None:
    out = _run("decode", "00002aa7-0000-1000-8000-00805f9b34fb", "06000c10050006000c100600")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)["records"]
    assert [r["time_offset"] for r in records] == [5, 6]
    assert records[0]["fields"]["glucose"] == {"value": 6.661, "unit": "mmol/L"}


def test_decode_invalid_value_exits_non_zero_naming_the_problem() -> None:
    out = _run("decode", "2A35", "03780050005d00")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip() == "error: 0x2A35: flags 0x03 announce a time stamp but only 7 bytes"


def test_decode_implausible_value_and_the_quirk_that_fixes_it() -> None:
    out = _run("decode", "2A18", "020700e807030f081e00640011")
    assert out.returncode == 1
    assert "glucose 100 kg/L is 555074 mmol/L, implausible" in out.stderr
    out = _run("decode", "2A18", "020700e807030f081e00640011",
               "--quirk", "glucose_mg_dl_without_exponent")
    assert out.returncode == 0, out.stderr
    dump = json.loads(out.stdout)
    assert dump["fields"]["glucose"] == {"value": 5.551, "unit": "mmol/L"}
    assert dump["details"]["quirks_applied"] == ["glucose_mg_dl_without_exponent"]


def test_decode_bad_hex_and_unknown_characteristic() -> None:
    out = _run("decode", "2A35", "zz")
    assert (out.returncode, out.stderr.strip()) == (1, "error: 'zz' is not hexadecimal bytes")
    out = _run("decode", "2A38", "00")
    assert out.returncode == 1 and "no parser for characteristic 0x2A38" in out.stderr


def test_scan_lists_health_devices_as_config_lines() -> None:
    out = _run("scan", "--simulate", str(DEMO), "--seconds", "0.5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "devices:"
    assert any(line.startswith('  - {id: glucose-meter-1, kind: glucose_meter, patient:'
                               ' CHANGE-ME, address: "C0:11:22:33:44:01"}') for line in lines)
    assert any("kind: call_button" in line and "services FCD2" in line for line in lines)


def test_gateway_refuses_an_unknown_simulated_household(tmp_path: Path) -> None:
    from daemons import write_config

    from homevitals.simulators.household import demo_config

    cfg = write_config(tmp_path / "gw.yaml",
                       demo_config().model_dump(mode="json", exclude_none=True))
    result = _run("gateway", "-c", str(cfg), "--simulate", "nowhere")
    assert result.returncode == 2, result.stderr
    assert "--simulate: unknown household 'nowhere' (known: demo, devices)" in result.stderr


def test_gateway_without_its_section_says_so(tmp_path: Path) -> None:
    from daemons import write_config

    from homevitals.simulators.household import demo_config

    data = demo_config().model_dump(mode="json", exclude_none=True)
    del data["gateway"]
    cfg = write_config(tmp_path / "server.yaml", data)
    result = _run("gateway", "-c", str(cfg), "--simulate", "demo")
    assert result.returncode == 2, result.stderr
    assert "gateway: section missing (the gateway needs gateway.home)" in result.stderr
