"""``homevitals decode`` and ``homevitals scan`` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HOMEVITALS = [sys.executable, "-m", "homevitals.roots.cli"]
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


def test_decode_refuses_an_unknown_quirk_naming_the_known_ones() -> None:
    out = _run("decode", "2A18", "020700e807030f081e00640011", "--quirk", "glucose_mgdl")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        "error: --quirk: unknown quirk 'glucose_mgdl' (known: bp_big_endian_pulse_status,"
        " glucose_mg_dl_without_exponent, glucose_clock_from_date_time,"
        " glucose_reverse_sequence)\n")


def test_decode_a_record_access_control_point_answer() -> None:
    # GSS RACP: op code 0x06 (response code), operator null, request 0x01, response 0x06.
    out = _run("decode", "2A52", "06000106")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["details"] == {
        "op_code": "response code", "operator": "null",
        "request_op_code": "report stored records", "response": "no records found"}
    out = _run("decode", "2A52", "0103010500")  # report records with sequence number >= 5
    assert json.loads(out.stdout)["details"] == {
        "op_code": "report stored records", "operator": "greater than or equal to",
        "filter_type": "sequence number", "operand": "0500", "sequence_number": 5}
    out = _run("decode", "2A52", "05000a00")
    assert json.loads(out.stdout)["details"]["number_of_records"] == 10


def test_decode_bthome_cut_short_says_where() -> None:
    out = _run("decode", "bthome", "4000")  # version 2, then a packet id object without value
    assert out.returncode == 1
    assert out.stderr == ("error: bthome: the value of object 0x00 at byte 1 (packet_id) is cut"
                          " short: it takes 1 byte, the value ends after 2 bytes with 0 bytes"
                          " left\n")


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


NO_SYSTEM_BUS = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/homevitals-test-bus"}
BLUEZ_HELP = ("the gateway needs BlueZ and the D-Bus system bus: sudo apt install bluez && sudo"
              " systemctl enable --now bluetooth (docs/raspberry-pi.md)")


def test_scan_without_bluez_says_what_to_install() -> None:
    import os

    out = subprocess.run([*HOMEVITALS, "scan", "--seconds", "1"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, **NO_SYSTEM_BUS})
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == f"error: no D-Bus system bus (No such file or directory); {BLUEZ_HELP}\n"


def _gateway_site(tmp_path: Path, port: int, devices: list[dict[str, object]]) -> Path:
    from daemons import write_config

    from homevitals.simulators.household import demo_config

    data = demo_config().model_dump(mode="json", exclude_none=True)
    data["mqtt"] = {"host": "127.0.0.1", "port": port}
    data["homes"][0]["devices"] = devices
    data["rules"]["definitions"] = []
    data["gateway"]["queue_path"] = str(tmp_path / "q.sqlite")
    return write_config(tmp_path / "gw.yaml", data)


def test_gateway_refuses_devices_without_an_address(tmp_path: Path) -> None:
    cfg = _gateway_site(tmp_path, 1883, [
        {"id": "bp-1", "kind": "blood_pressure", "patient": "ana"},
        {"id": "meter-1", "kind": "glucose_meter", "patient": "ana"},
        {"id": "button-2", "kind": "gpio_button", "patient": "ana", "gpio_pin": 17}])
    result = _run("gateway", "-c", str(cfg), "--simulate", "devices")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: home home-novak: devices bp-1, meter-1 have no address: the gateway finds a"
        ' device by its BLE address; add address: "AA:BB:CC:DD:EE:FF" to each (`homevitals'
        ' scan` lists the addresses nearby)\n')


def test_gateway_radio_death_is_logged_at_once(tmp_path: Path, mosquitto: object) -> None:
    from daemons import Daemon

    cfg = _gateway_site(tmp_path, mosquitto.port, [  # type: ignore[attr-defined]
        {"id": "bp-1", "kind": "blood_pressure", "patient": "ana",
         "address": "C0:11:22:33:44:02"}])
    gw = Daemon("gateway", cfg, tmp_path, env=NO_SYSTEM_BUS)
    try:
        assert gw.wait(30) == 1
    finally:
        gw.kill()
    log = gw.log()
    assert "Traceback" not in log
    lines = log.splitlines()
    death = next(i for i, line in enumerate(lines) if " ERROR " in line)
    assert lines[death].endswith("homevitals.gateway.app: the radio stopped, the gateway is"
                                 " shutting down: no D-Bus system bus (No such file or"
                                 f" directory); {BLUEZ_HELP}")
    assert "gateway stopped:" in "\n".join(lines[death:])  # the drain comes after
    assert lines[-1] == f"error: no D-Bus system bus (No such file or directory); {BLUEZ_HELP}"
