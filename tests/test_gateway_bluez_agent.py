"""The gateway's BlueZ pairing agent (gateway/bluez_agent.py): it confirms pairing for the
configured devices only. The decision is checked on its own, then the agent is exported on a
private dbus-daemon (Debian package ``dbus``) where a stand-in for bluetoothd owns ``org.bluez``,
records the agent's registration and calls ``org.bluez.Agent1`` through dbus-fast as
bluetoothd does. The real BlueZ path (pairing a bumble device that needs encryption) runs in
the BLE VM harness (tests/test_ble_vm.py).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from homevitals.gateway.bleak_transport import BleakRadio
from homevitals.gateway.bluez_agent import AGENT_PATH, BluezAgent, PairingPolicy, address_of
from homevitals.gateway.errors import GatewayError

MONITOR = "/org/bluez/hci0/dev_C0_11_22_33_44_02"
STRANGER = "/org/bluez/hci0/dev_C0_11_22_33_44_99"


def test_address_of_device_paths() -> None:
    assert address_of("/org/bluez/hci0/dev_c0_11_22_33_44_02") == "C0:11:22:33:44:02"
    assert address_of("/org/bluez/hci12/dev_F1_00_00_00_00_04") == "F1:00:00:00:00:04"
    for other in ("/org/bluez/hci0", "/org/bluez/hci0/dev_C0_11_22_33_44_02/service0010",
                  "/org/bluez/hci0/dev_C0_11_22_33_44", "/org/other/hci0/dev_C0_11_22_33_44_02",
                  ""):
        assert address_of(other) is None, other


def test_policy_matches_configured_addresses_whatever_their_case() -> None:
    policy = PairingPolicy.of(["c0:11:22:33:44:02", " F1:00:00:00:00:04 "])
    assert policy.allows(MONITOR)
    assert policy.allows("/org/bluez/hci1/dev_f1_00_00_00_00_04")
    assert not policy.allows(STRANGER)
    assert not policy.allows(MONITOR + "/service0010")
    assert not PairingPolicy.of([]).allows(MONITOR)


def test_policy_names_an_address_bluez_cannot_have() -> None:
    with pytest.raises(ValueError, match="C0-11-22-33-44-02"):
        PairingPolicy.of(["C0-11-22-33-44-02"])


# --- on a private D-Bus ---------------------------------------------------------------------


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon (session configuration) on a socket in tmp_path."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.fail("dbus-daemon not found (Debian package dbus)", pytrace=False)
    address = f"unix:path={tmp_path / 'bus'}"
    proc = subprocess.Popen([daemon, "--session", "--nofork", "--nopidfile",
                             f"--address={address}", "--print-address=1"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the daemon listens
        assert line.startswith("unix:"), f"dbus-daemon printed {line!r}"
        yield address
    finally:
        proc.terminate()  # our own daemon, by its handle
        proc.wait(10)


class FakeBluez:
    """Owns ``org.bluez``: answers AgentManager1 and Device1 property writes, and calls the
    agent back as bluetoothd does."""

    def __init__(self, bus: MessageBus, refuse: str | None = None) -> None:
        self.bus, self.refuse = bus, refuse
        self.calls: list[tuple[str, str, list[Any]]] = []  # (member, sender, body)
        self.trusted_paths: list[str] = []
        self.agent: tuple[str, str] | None = None  # (bus name, object path)
        self.trusted = asyncio.Event()
        bus.add_message_handler(self._on_message)

    def _on_message(self, msg: Message) -> Message | None:
        if msg.message_type != MessageType.METHOD_CALL:
            return None
        if msg.interface == "org.bluez.AgentManager1" or msg.member == "Set":
            self.calls.append((msg.member or "", msg.sender or "", list(msg.body)))
            if self.refuse and msg.member == "RegisterAgent":
                return Message.new_error(msg, self.refuse, "refused by the test")
            if msg.member == "RegisterAgent":
                self.agent = (msg.sender or "", msg.body[0])
            if msg.member == "Set":
                self.trusted_paths.append(msg.path or "")
                self.trusted.set()
            return Message.new_method_return(msg)
        return None

    async def ask(self, member: str, signature: str, *body: Any) -> Message:
        assert self.agent is not None, "no agent registered"
        name, path = self.agent
        return await self.bus.call(Message(destination=name, path=path,
                                           interface="org.bluez.Agent1", member=member,
                                           signature=signature, body=list(body)))


@asynccontextmanager
async def bluez_and_agent(address: str, configured: list[str], refuse: str | None = None
                          ) -> AsyncIterator[tuple[FakeBluez, BluezAgent]]:
    bluez_bus = await MessageBus(bus_address=address).connect()
    await bluez_bus.request_name("org.bluez")
    bluez = FakeBluez(bluez_bus, refuse)
    agent = BluezAgent(PairingPolicy.of(configured))
    try:
        await agent.start(await MessageBus(bus_address=address).connect())
        yield bluez, agent
    finally:
        agent.stop()
        bluez_bus.disconnect()


def test_agent_registers_as_default_and_confirms_only_configured_devices(
    bus_address: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="homevitals.gateway.bluez_agent")

    async def story() -> None:
        async with bluez_and_agent(bus_address, ["c0:11:22:33:44:02"]) as (bluez, agent):
            assert agent.bus is not None
            sender = agent.bus.unique_name
            assert [(m, s, b) for m, s, b in bluez.calls] == [
                ("RegisterAgent", sender, [AGENT_PATH, "NoInputNoOutput"]),
                ("RequestDefaultAgent", sender, [AGENT_PATH]),
            ]
            # Just Works as BlueZ 5.66 asks for it, for the configured monitor
            ok = await bluez.ask("RequestAuthorization", "o", MONITOR)
            assert ok.message_type == MessageType.METHOD_RETURN, ok.body
            await asyncio.wait_for(bluez.trusted.wait(), 5)
            trust = bluez.calls[-1]
            assert trust[0] == "Set" and trust[2][:2] == ["org.bluez.Device1", "Trusted"]
            assert trust[2][2] == Variant("b", True)
            ok = await bluez.ask("RequestConfirmation", "ou", MONITOR, 123456)
            assert ok.message_type == MessageType.METHOD_RETURN, ok.body
            # anything else is refused
            for member, signature, body in (
                ("RequestAuthorization", "o", [STRANGER]),
                ("RequestConfirmation", "ou", [STRANGER, 42]),
                ("AuthorizeService", "os", [STRANGER, "00001810-0000-1000-8000-00805f9b34fb"]),
                ("RequestPasskey", "o", [MONITOR]),
                ("RequestPinCode", "o", [MONITOR]),
            ):
                no = await bluez.ask(member, signature, *body)
                assert no.message_type == MessageType.ERROR, member
                assert no.error_name == "org.bluez.Error.Rejected", (member, no.body)
            await asyncio.sleep(0.2)  # a Trusted write would follow the answer
            assert set(bluez.trusted_paths) == {MONITOR}

    asyncio.run(story())
    text = caplog.text
    assert f"RequestAuthorization for {MONITOR} confirmed" in text
    assert f"RequestAuthorization for {STRANGER} rejected: not a configured device" in text
    assert f"{MONITOR} marked Trusted" in text


def test_registration_refused_by_bluez_is_named(bus_address: str) -> None:
    async def story() -> None:
        with pytest.raises(GatewayError, match="RegisterAgent: org.bluez.Error.AlreadyExists"):
            async with bluez_and_agent(bus_address, ["c0:11:22:33:44:02"],
                                       refuse="org.bluez.Error.AlreadyExists"):
                pass

    asyncio.run(story())


def test_no_bluez_on_the_bus_is_named(bus_address: str) -> None:
    async def story() -> None:
        agent = BluezAgent(PairingPolicy.of(["c0:11:22:33:44:02"]))
        with pytest.raises(GatewayError, match="ServiceUnknown"):
            await agent.start(await MessageBus(bus_address=bus_address).connect())
        assert agent.bus is None

    asyncio.run(story())


def test_radio_without_system_bus_warns_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """No system bus (or no BlueZ): the gateway logs why and keeps serving devices that do
    not bond."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'none'}")
    radio = BleakRadio(pair_with=["C0:11:22:33:44:02"])
    agent = asyncio.run(radio._start_agent())
    assert agent is None
    assert "pairing agent: no D-Bus system bus" in caplog.text
    assert "cannot pair unless paired by hand" in caplog.text
