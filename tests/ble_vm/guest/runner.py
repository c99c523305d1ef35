"""Runs inside the VM: attach a bumble controller to BlueZ through /dev/vhci, start the virtual
devices on a LocalLink with it, run the real gateway (``homevitals gateway`` with the bleak
transport) until every device has done its part, stop it (SIGTERM: it drains its queue to the
broker first), probe the extra services with bleak directly, and write results.json.

Usage: python -m harness.guest.runner RUN_JSON OUT_DIR
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.link import LocalLink
from bumble.transport import open_transport

from homevitals.infra.outbox import DurableQueue

from .. import scenario as sc
from .devices import (
    BATTERY_LEVEL,
    HEART_RATE_VALUE,
    PLX_VALUE,
    BloodPressureMonitor,
    CallButton,
    Decoy,
    GlucoseMeter,
    Oximeter,
)

logger = logging.getLogger("ble-vm")
OXIMETER_ADDRESS = "F1:00:00:00:00:05"


class FixedAddressLink(LocalLink):
    """bumble 0.0.226's LocalLink sends LE ACL data from the sender controller's *current*
    random address, not from the address the connection was made with. The kernel connects
    from the adapter's public address and sets a fresh non-resolvable random address for every
    active scan, so the peripheral would drop everything BlueZ sends ("no connection for ...").
    A real link layer keeps the connection's addresses: so does this one."""

    def send_acl_data(self, sender_controller: Any, destination_address: Any,
                      transport: Any, data: bytes) -> None:
        connection = sender_controller.le_connections.get(destination_address)
        if transport != PhysicalTransport.LE or connection is None:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        receiver = self.find_le_controller(destination_address)
        if receiver is not None:
            source = connection.self_address
            asyncio.get_running_loop().call_soon(
                lambda: receiver.on_link_acl_data(source, transport, data))


async def bluez_adapter(timeout: float = 30.0) -> str:
    """Wait for BlueZ to publish the vhci adapter and power it on. BlueZ 5.66 has no
    Adapter1.Manufacturer (docs/ble-vm.md), so the adapter is found by its interface alone."""
    from dbus_fast import BusType, Message, Variant
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    deadline = time.monotonic() + timeout
    try:
        while True:
            reply = await bus.call(Message(
                destination="org.bluez", path="/", member="GetManagedObjects",
                interface="org.freedesktop.DBus.ObjectManager"))
            objects = reply.body[0] if reply.body else {}
            adapters = [p for p, ifs in objects.items() if "org.bluez.Adapter1" in ifs]
            if adapters:
                path = adapters[0]
                powered = objects[path]["org.bluez.Adapter1"].get("Powered")
                if powered is not None and powered.value:
                    return str(path)
                await bus.call(Message(
                    destination="org.bluez", path=path, member="Set",
                    interface="org.freedesktop.DBus.Properties", signature="ssv",
                    body=["org.bluez.Adapter1", "Powered", Variant("b", True)]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"BlueZ published no powered adapter in {timeout:.0f} s "
                                   f"(objects: {sorted(objects)})")
            await asyncio.sleep(0.3)  # a wait-until poll for BlueZ's adapter
    finally:
        bus.disconnect()


async def bluez_device(address: str) -> dict[str, Any]:
    """What BlueZ keeps about a device after the gateway is gone: Paired, Trusted (and Bonded
    where this BlueZ has it)."""
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(Message(
            destination="org.bluez", path="/", member="GetManagedObjects",
            interface="org.freedesktop.DBus.ObjectManager"))
    finally:
        bus.disconnect()
    suffix = "/dev_" + address.upper().replace(":", "_")
    for path, interfaces in (reply.body[0] if reply.body else {}).items():
        device = interfaces.get("org.bluez.Device1")
        if path.endswith(suffix) and device is not None:
            return {k: device[k].value for k in ("Paired", "Bonded", "Trusted") if k in device}
    return {"error": f"BlueZ has no device {address}"}


async def probe_oximeter(results: dict[str, Any]) -> None:
    """Heart Rate, Pulse Oximeter and Battery through bleak, byte for byte."""
    from bleak import BleakClient, BleakScanner

    found = await BleakScanner.find_device_by_address(OXIMETER_ADDRESS, timeout=20.0)
    if found is None:
        results["probe"] = {"error": "oximeter not found"}
        return
    got: dict[str, str] = {}
    async with BleakClient(found, timeout=20.0) as client:
        got["2A19"] = bytes(await client.read_gatt_char(_uuid("2A19"))).hex()
        for short in ("2A37", "2A5F"):
            arrived = asyncio.Event()

            def on_value(_c: Any, data: bytearray, short: str = short,
                         arrived: asyncio.Event = arrived) -> None:
                got[short] = bytes(data).hex()
                arrived.set()

            await client.start_notify(_uuid(short), on_value)
            await asyncio.wait_for(arrived.wait(), 10.0)
    results["probe"] = {"got": got, "expected": {
        "2A19": bytes([BATTERY_LEVEL]).hex(), "2A37": HEART_RATE_VALUE.hex(),
        "2A5F": PLX_VALUE.hex()}}


def _uuid(short: str) -> str:
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb"


async def run(run: dict[str, Any], out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"errors": []}
    t0 = time.monotonic()
    async with await open_transport("vhci") as hci_transport:
        link = FixedAddressLink()
        # A public address, as real adapters have: without one the kernel connects from a
        # random address that it then replaces with a fresh one for active scanning, and
        # bumble's emulated link loses the connection ("no connection for ...").
        bluez_side = Controller("HV-BLUEZ", host_source=hci_transport.source,
                                host_sink=hci_transport.sink, link=link,
                                public_address="00:1A:7D:DA:71:01")
        # As bleak's own VM tests do: no LL privacy, no extended advertising for BlueZ's side.
        bluez_side.le_features &= ~(hci.LeFeatureMask.LL_PRIVACY
                                    | hci.LeFeatureMask.LE_EXTENDED_ADVERTISING)
        results["adapter"] = await bluez_adapter()
        results["t_adapter"] = round(time.monotonic() - t0, 1)
        bp = BloodPressureMonitor(link, "BP Monitor A", sc.BP_ADDRESS, sc.BP_READINGS)
        # Its CCCD needs encryption: BlueZ pairs, and asks the gateway's agent to confirm.
        bonded = BloodPressureMonitor(link, "BP Monitor B", sc.BONDED_BP_ADDRESS,
                                      (sc.BONDED_BP_READING,), bonded=True)
        meter = GlucoseMeter(link, sc.DROP_AFTER)
        decoy, button, oxi = Decoy(link), CallButton(link), Oximeter(link, OXIMETER_ADDRESS)
        for d in (decoy, bp, bonded, meter, oxi):
            await d.start()
        gateway = await start_gateway(run, out)
        results["t_gateway_started"] = round(time.monotonic() - t0, 1)
        try:
            await wait_stories([bp, bonded, meter], button, results, run["story_timeout"])
        finally:
            results["gateway_exit"] = await stop_gateway(gateway)
        results["t_gateway_stopped"] = round(time.monotonic() - t0, 1)
        try:
            results["bluez_device"] = {"bp2": await bluez_device(sc.BONDED_BP_ADDRESS)}
        except Exception as exc:  # noqa: BLE001 - reported to the host, which asserts
            results["bluez_device"] = {"bp2": {"error": f"{type(exc).__name__}: {exc}"}}
        try:
            await asyncio.wait_for(probe_oximeter(results), 60.0)
        except Exception as exc:  # noqa: BLE001 - reported to the host, which asserts
            results["probe"] = {"error": f"{type(exc).__name__}: {exc}"}
        named = {"bp1": bp, "bp2": bonded, "gluco1": meter, "decoy": decoy, "button": button,
                 "oximeter": oxi}
        results["logs"] = {label: d.v.log for label, d in named.items()}
        results["glucose"] = {"requests": meter.requests, "sent": meter.sent}
        results["bp_confirmed"] = {"bp1": bp.confirmed, "bp2": bonded.confirmed}
        results["button_sent"] = button.sent
        results["t_total"] = round(time.monotonic() - t0, 1)
    return results


async def wait_stories(connected: list[BloodPressureMonitor | GlucoseMeter], button: CallButton,
                       results: dict[str, Any], timeout: float) -> None:
    async def devices() -> None:
        await asyncio.gather(*(d.done.wait() for d in connected))
        await button.press_all(seconds_each=4.0)

    try:
        await asyncio.wait_for(devices(), timeout)
    except TimeoutError:
        done = " ".join(f"{d.v.name!r}={d.done.is_set()}" for d in connected)
        results["errors"].append(f"stories not finished in {timeout:.0f} s: {done} "
                                 f"button={len(button.sent)} adverts")
    await asyncio.sleep(2.0)  # the last values travel from BlueZ to the queue


async def start_gateway(run: dict[str, Any], out: Path) -> asyncio.subprocess.Process:
    config = Path("/tmp/gateway.yaml")
    config.write_text(sc.gateway_config(run["broker_host"], run["broker_port"],
                                        "/tmp/gw-queue.sqlite"))
    # The gateway met this meter before: its mark, where racp.py keeps it (the queue database).
    queue = DurableQueue("/tmp/gw-queue.sqlite")
    queue.set_state("racp:gluco1:last_sequence", str(sc.SAVED_SEQUENCE))
    queue.close()
    log = open(out / "gateway.log", "wb")  # noqa: SIM115 - lives as long as the process
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homevitals.roots.cli", "gateway", "-c", str(config),
        stdout=log, stderr=asyncio.subprocess.STDOUT, env=os.environ.copy())


async def stop_gateway(proc: asyncio.subprocess.Process) -> int | None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), 60.0)
    except TimeoutError:
        proc.kill()
        return None


def main() -> None:
    run_json, out = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_cfg = json.loads(run_json.read_text())
    try:
        results = asyncio.run(run(run_cfg, out))
    except Exception as exc:  # noqa: BLE001 - the host reads this file and fails with it
        logger.exception("runner failed")
        results = {"errors": [f"runner failed: {type(exc).__name__}: {exc}"]}
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
