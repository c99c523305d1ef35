"""The real Bluetooth path without hardware: the gateway's bleak transport, inside a QEMU guest,
talks to BlueZ, which talks through hci_vhci to bumble virtual health devices; the readings
leave the VM over MQTT to the Mosquitto this test started on 127.0.0.1, and are checked here.

One VM boot serves every story below (a boot costs ~10 s and the gateway's imports ~10 s under
TCG). If QEMU or the image cannot be prepared, the tests FAIL naming what is missing. See
docs/ble-vm.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from ble_vm import scenario as sc
from ble_vm.image import ImageError, ensure_image
from ble_vm.vm import VmRun, boot, qemu_binary, stage_share
from servers import Mosquitto

from homevitals.gateway.service import stable_id

pytestmark = pytest.mark.blevm

VM_TIMEOUT = 420.0  # seconds for the whole guest run; it normally takes ~1-2 min
STORY_TIMEOUT = 240.0


class Collector:
    """Every message published under the project's prefix while the VM ran."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ble-vm-test")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe("#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("test subscriber could not subscribe to the broker")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"unparsed": msg.payload.decode(errors="replace")}
        with self.lock:
            self.messages.append((msg.topic, body))

    def of_type(self, kind: str, device: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [b for _t, b in self.messages
                    if b.get("type") == kind and (device is None or b.get("device") == device)]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def vm(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[tuple[VmRun, Collector]]:
    try:
        qemu_binary()
        image = ensure_image(log=lambda line: print(line, flush=True))
    except ImageError as exc:
        pytest.fail(f"BLE VM cannot be prepared: {exc}", pytrace=False)
    share, out = tmp_path_factory.mktemp("ble-vm-share"), tmp_path_factory.mktemp("ble-vm-out")
    stage_share(share, {"broker_host": "10.0.2.2", "broker_port": mosquitto.port,
                        "story_timeout": STORY_TIMEOUT})
    collector = Collector(mosquitto.port)
    try:
        run = boot(image, share, out, timeout=VM_TIMEOUT)
        print(f"BLE VM run: {run.seconds:.0f} s, guest timings "
              f"{ {k: v for k, v in run.results.items() if k.startswith('t_')} }")
        if not run.results:
            pytest.fail(f"the guest wrote no results (QEMU exit {run.returncode}, "
                        f"{run.seconds:.0f} s); out {out}\n--- console\n{run.log('console.log')}"
                        f"\n--- init\n{run.log('init.log')}\n--- runner\n{run.log('runner.log')}",
                        pytrace=False)
        yield run, collector
    finally:
        collector.stop()


def _explain(run: VmRun) -> str:
    return (f"guest errors: {run.results.get('errors')}\nout: {run.out}\n--- gateway.log\n"
            f"{run.log('gateway.log', 5000)}")


def _readings(collector: Collector, device: str, measurement: str) -> list[dict[str, Any]]:
    return [r for r in collector.of_type("reading", device) if r["measurement"] == measurement]


def test_guest_ran_every_story(vm: tuple[VmRun, Collector]) -> None:
    run, _ = vm
    assert run.results["errors"] == [], _explain(run)
    assert run.results["gateway_exit"] == 0, _explain(run)


def test_bp_found_by_address_and_indicated_after_connect(vm: tuple[VmRun, Collector]) -> None:
    run, collector = vm
    readings = _readings(collector, "bp1", "blood_pressure")
    assert sorted(r["raw"] for r in readings) == sorted(v.hex() for v in sc.BP_READINGS), \
        _explain(run)
    first = next(r for r in readings if r["raw"] == sc.BP_READINGS[0].hex())
    assert first["fields"]["systolic"] == {"value": 142.0, "unit": "mmHg"}
    assert first["fields"]["diastolic"]["value"] == 91.0
    assert first["fields"]["pulse"]["value"] == 77.0
    assert first["device_time"] == "2024-03-01T07:00:00.000000Z"  # 08:00 in Ljubljana (CET)
    assert first["home"] == sc.HOME and first["patient"] == sc.PATIENT
    assert len({r["id"] for r in readings}) == len(readings)
    # Battery Level 0x2A19, read by the gateway at connect
    battery = _readings(collector, "bp1", "battery")
    assert {r["fields"]["battery"]["value"] for r in battery} == {87.0}, _explain(run)


def test_bonded_bp_pairs_through_the_gateway_agent_then_indicates(
    vm: tuple[VmRun, Collector],
) -> None:
    """bp2's CCCD needs encryption: BlueZ pairs (Just Works), asks the gateway's pairing agent,
    which confirms this configured address; only then is the reading indicated."""
    run, collector = vm
    readings = _readings(collector, "bp2", "blood_pressure")
    assert [r["raw"] for r in readings] == [sc.BONDED_BP_READING.hex()], _explain(run)
    assert readings[0]["fields"]["systolic"]["value"] == 135.0
    assert readings[0]["device_time"] == "2024-03-01T08:00:00.000000Z"  # 09:00 CET
    events = [what for _t, what in run.results["logs"]["bp2"]]
    assert "paired" in events, events
    assert events.index("paired") < events.index(f"indication confirmed "
                                                  f"{sc.BONDED_BP_READING.hex()}"), events
    path = "/dev_" + sc.BONDED_BP_ADDRESS.replace(":", "_")
    gateway_log = run.log("gateway.log", 200_000)
    assert "pairing agent: registered as BlueZ's default agent" in gateway_log, _explain(run)
    assert path in gateway_log and "confirmed (configured device)" in gateway_log, _explain(run)
    assert "rejected: not a configured device" not in gateway_log
    # BlueZ keeps the bond, and the agent trusted the device, after the gateway has gone
    assert run.results["bluez_device"]["bp2"] == {"Paired": True, "Bonded": True,
                                                  "Trusted": True}, run.results["bluez_device"]


def test_decoy_in_range_is_never_touched(vm: tuple[VmRun, Collector]) -> None:
    run, collector = vm
    assert [e for _t, e in run.results["logs"]["decoy"]] == [], _explain(run)
    assert all(r["raw"] != sc.DECOY_READING.hex() for r in collector.of_type("reading"))


def _glucose_id(record: sc.GlucoseRecord) -> str:
    device_time = record.device_time.replace(tzinfo=ZoneInfo(sc.ZONE)).astimezone(UTC)
    return stable_id(sc.HOME, "gluco1", "2A18", record.sequence, device_time)


def test_glucose_only_records_newer_than_saved_sequence(vm: tuple[VmRun, Collector]) -> None:
    run, collector = vm
    expected = [r for r in sc.glucose_records() if r.sequence > sc.SAVED_SEQUENCE]
    readings = _readings(collector, "gluco1", "glucose")
    by_raw = {r["raw"]: r for r in readings}
    assert sorted(by_raw) == sorted(r.measurement.hex() for r in expected), _explain(run)
    for record in expected:
        got = by_raw[record.measurement.hex()]
        assert got["id"] == _glucose_id(record)
        assert got["fields"]["glucose"]["value"] == pytest.approx(record.mmol_l, abs=0.06)
    # the virtual patient's night-time low is among them, and arrives as a low
    lows = [r for r in expected if r.mmol_l < 3.9]
    assert lows, "the scenario's night-time low is not among the records to fetch"
    assert all(by_raw[r.measurement.hex()]["fields"]["glucose"]["value"] < 3.9 for r in lows)
    # first request: "report records with sequence >= 13" (after "how many are there?")
    assert _reports(run)[0] == "010301" + (13).to_bytes(2, "little").hex()


def _reports(run: VmRun) -> list[str]:
    """The meter's RACP requests "report stored records" (op code 0x01), checking that each
    was preceded by "report number of stored records" (0x04) with the same filter."""
    requests: list[str] = run.results["glucose"]["requests"]
    reports = [r for r in requests if r.startswith("01")]
    for r in reports:
        i = requests.index(r)
        assert i > 0 and requests[i - 1] == "04" + r[2:], requests
    return reports


def test_glucose_link_dropped_mid_transfer_resumes_without_gap_or_duplicate(
    vm: tuple[VmRun, Collector],
) -> None:
    run, collector = vm
    first_resume = sc.SAVED_SEQUENCE + sc.DROP_AFTER + 1
    assert _reports(run) == [
        "010301" + (sc.SAVED_SEQUENCE + 1).to_bytes(2, "little").hex(),
        "010301" + first_resume.to_bytes(2, "little").hex(),
    ], _explain(run)
    sequences = sorted(int.from_bytes(bytes.fromhex(r["raw"])[1:3], "little")
                       for r in _readings(collector, "gluco1", "glucose"))
    assert sequences == list(range(sc.SAVED_SEQUENCE + 1, sc.GLUCOSE_RECORDS + 1))
    ids = [r["id"] for r in _readings(collector, "gluco1", "glucose")]
    assert len(set(ids)) == len(ids)


def _setup_windows(log: list[list[Any]]) -> list[tuple[float, float]]:
    """(connected, last subscription or RACP answer) for each connection in a device's log."""
    windows, start, end = [], None, None
    for t, what in [*log, [float("inf"), "disconnected"]]:
        if what == "connected":
            start, end = t, t
        elif start is not None and what.startswith(("subscribed", "RACP answered")):
            end = t
        elif start is not None and what.startswith("disconnected"):
            windows.append((start, end))
            start = None
    return windows


def test_two_devices_served_one_after_the_other(vm: tuple[VmRun, Collector]) -> None:
    """The gateway never connects to one device while it is still setting up another
    (connect, subscribe, record download)."""
    run, _ = vm
    phases = sorted((s, e, name) for name in ("bp1", "bp2", "gluco1")
                    for s, e in _setup_windows(run.results["logs"][name]))
    assert {name for _s, _e, name in phases} == {"bp1", "bp2", "gluco1"}, _explain(run)
    for (_s1, e1, n1), (s2, _e2, n2) in zip(phases, phases[1:], strict=False):
        assert s2 >= e1, f"{n2} connected at {s2} while {n1} was still being set up (to {e1})"


def test_call_button_press_from_advertisement(vm: tuple[VmRun, Collector]) -> None:
    run, collector = vm
    events = collector.of_type("event", "button1")
    assert sorted(e["detail"] for e in events) == ["long_press", "press"], _explain(run)
    assert {e["raw"] for e in events} == {d.hex() for d in sc.button_adverts()}
    assert all(e["event"] == "call_button" for e in events)


def test_heart_rate_oximeter_battery_served_byte_exactly(vm: tuple[VmRun, Collector]) -> None:
    run, _ = vm
    probe = run.results["probe"]
    assert "error" not in probe, probe
    assert probe["got"] == probe["expected"]


def test_gateway_heartbeat_reports_devices(vm: tuple[VmRun, Collector]) -> None:
    run, collector = vm
    beats = collector.of_type("heartbeat")
    assert beats, _explain(run)
    seen = set().union(*(b.get("devices", {}).keys() for b in beats))
    assert {"bp1", "gluco1", "button1"} <= seen
