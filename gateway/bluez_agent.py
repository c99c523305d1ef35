"""A BlueZ pairing agent that says yes only to the gateway's own devices.

A device whose characteristics need encryption makes BlueZ pair when the gateway subscribes
(Just Works: such devices have no display and no keyboard). BlueZ 5.66 asks its *default agent*
to confirm that pairing (``org.bluez.Agent1.RequestAuthorization`` for Just Works, or
``RequestConfirmation``); with no agent it rejects the pairing, the device sees "numeric
comparison failed", and bleak 3.1 registers no agent of its own. This module is that agent:
capability ``NoInputNoOutput``, registered with ``org.bluez.AgentManager1.RegisterAgent`` and
made the default with ``RequestDefaultAgent`` (BlueZ doc/agent-api.txt), confirming only the
addresses in the gateway's config and answering ``org.bluez.Error.Rejected`` to anything else.
A device it let pair is then marked ``Trusted`` so that BlueZ does not ask again.

The decision (``PairingPolicy``) knows nothing of D-Bus; ``BluezAgent`` puts it on the system
bus with dbus-fast, the D-Bus library bleak itself uses on Linux.
"""

# No ``from __future__ import annotations`` here: dbus-fast 5.2 reads the methods' annotations
# to build their D-Bus signatures, and turns a postponed ``-> None`` into no signature at all
# ("Argument 'signature' has incorrect type (expected str, got NoneType)").
import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from homevitals.gateway.errors import GatewayError

__all__ = ["AGENT_PATH", "BluezAgent", "PairingPolicy", "address_of"]

logger = logging.getLogger(__name__)

AGENT_PATH = "/org/homevitals/pairing_agent"
CAPABILITY = "NoInputNoOutput"  # Just Works: health devices have no keypad or display
REJECTED = "org.bluez.Error.Rejected"
CALL_TIMEOUT = 10.0  # seconds for one call to bluetoothd
_ADDRESS = re.compile(r"^(?:[0-9A-F]{2}:){5}[0-9A-F]{2}\Z")
_DEVICE_PATH = re.compile(r"^/org/bluez/hci\d+/dev_((?:[0-9A-Fa-f]{2}_){5}[0-9A-Fa-f]{2})\Z")


def address_of(device_path: str) -> str | None:
    """"/org/bluez/hci0/dev_F1_00_00_00_00_04" -> "F1:00:00:00:00:04"; None for any other path
    (BlueZ doc/device-api.txt: "[variable prefix]/{hci0,hci1,...}/dev_XX_XX_XX_XX_XX_XX")."""
    match = _DEVICE_PATH.match(device_path)
    return match.group(1).replace("_", ":").upper() if match else None


@dataclass(frozen=True)
class PairingPolicy:
    """The addresses the gateway may pair with: those of its configured devices."""

    addresses: frozenset[str]

    @classmethod
    def of(cls, addresses: Iterable[str]) -> "PairingPolicy":
        return cls(frozenset(a.strip().upper() for a in addresses))

    def __post_init__(self) -> None:
        bad = sorted(a for a in self.addresses if not _ADDRESS.match(a))
        if bad:
            raise ValueError(f"not Bluetooth addresses (AA:BB:CC:DD:EE:FF): {', '.join(bad)}")

    def allows(self, device_path: str) -> bool:
        return address_of(device_path) in self.addresses


class _Agent1(ServiceInterface):
    """``org.bluez.Agent1`` (BlueZ doc/agent-api.txt). Each decision is logged; a refusal is
    the D-Bus error ``org.bluez.Error.Rejected``, which makes BlueZ abort that pairing."""

    def __init__(self, policy: PairingPolicy, on_paired: Callable[[str], None]) -> None:
        super().__init__("org.bluez.Agent1")
        self.policy = policy
        self.on_paired = on_paired

    def _decide(self, device: str, request: str) -> None:
        if not self.policy.allows(device):
            logger.warning("pairing agent: %s for %s rejected: not a configured device",
                           request, device)
            raise DBusError(REJECTED, f"{device} is not one of this gateway's devices")
        logger.info("pairing agent: %s for %s confirmed (configured device)", request, device)
        self.on_paired(device)

    def _refuse(self, device: str, request: str) -> None:
        logger.warning("pairing agent: %s for %s rejected: this agent has no keypad or display",
                       request, device)
        raise DBusError(REJECTED, f"{request} is not supported by a NoInputNoOutput agent")

    @dbus_method()
    def Release(self) -> None:
        logger.warning("pairing agent: released by BlueZ; devices that bond can no longer pair")

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        self._decide(device, f"RequestConfirmation ({passkey:06d})")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:
        self._decide(device, "RequestAuthorization")

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        self._decide(device, f"AuthorizeService {uuid}")

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        self._refuse(device, "RequestPinCode")
        return ""  # not reached: _refuse raises

    @dbus_method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        self._refuse(device, "RequestPasskey")
        return 0  # not reached: _refuse raises

    @dbus_method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> None:
        self._refuse(device, "DisplayPinCode")

    @dbus_method()
    def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32,
                       entered: DBusUInt16) -> None:
        logger.info("pairing agent: DisplayPasskey for %s ignored (no display)", device)

    @dbus_method()
    def Cancel(self) -> None:
        logger.info("pairing agent: BlueZ cancelled the pending request")


class BluezAgent:
    """The agent on a D-Bus connection of its own, registered as BlueZ's default agent."""

    def __init__(self, policy: PairingPolicy, *, path: str = AGENT_PATH) -> None:
        self.policy = policy
        self.path = path
        self.interface = _Agent1(policy, self._trust_later)
        self.bus: MessageBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, bus: MessageBus | None = None) -> None:
        """Export the agent and register it as BlueZ's default (raises ``GatewayError`` naming
        the cause: no system bus, no BlueZ, or BlueZ refused the registration). A ``bus``
        given here (tests use a private one) becomes the agent's: ``stop`` disconnects it."""
        try:
            self.bus = bus or await MessageBus(bus_type=BusType.SYSTEM).connect()
        except (OSError, DBusError, ValueError) as exc:  # ValueError: bad bus address
            raise GatewayError(f"pairing agent: no D-Bus system bus ({exc})") from exc
        self.bus.export(self.path, self.interface)
        try:
            await self._call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                             [self.path, CAPABILITY])
            await self._call("/org/bluez", "org.bluez.AgentManager1", "RequestDefaultAgent",
                             "o", [self.path])
        except GatewayError:
            self.bus.disconnect()
            self.bus = None
            raise
        logger.info("pairing agent: registered as BlueZ's default agent (%s) for %s",
                    CAPABILITY, ", ".join(sorted(self.policy.addresses)) or "no device")

    def stop(self) -> None:
        """Leave the bus. BlueZ drops an agent whose D-Bus connection goes away (its agent.c
        watches the owner), so no UnregisterAgent call is needed - nor possible if bluetoothd
        has gone."""
        for task in list(self._tasks):
            task.cancel()
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    async def _call(self, path: str, interface: str, member: str, signature: str,
                    body: list[Any]) -> None:
        assert self.bus is not None
        message = Message(destination="org.bluez", path=path, interface=interface,
                          member=member, signature=signature, body=body)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):  # a hung bluetoothd must not stall us
                reply = await self.bus.call(message)
        except TimeoutError as exc:
            raise GatewayError(f"pairing agent: BlueZ did not answer {member} in "
                               f"{CALL_TIMEOUT:g} s") from exc
        if reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            raise GatewayError(f"pairing agent: BlueZ refused {member}: "
                               f"{reply.error_name} {detail}".rstrip())

    def _trust_later(self, device: str) -> None:
        """Mark the device Trusted once BlueZ has its answer (not while it waits for it)."""
        task = asyncio.ensure_future(self._trust(device))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _trust(self, device: str) -> None:
        try:
            await self._call(device, "org.freedesktop.DBus.Properties", "Set", "ssv",
                             ["org.bluez.Device1", "Trusted", Variant("b", True)])
            logger.info("pairing agent: %s marked Trusted", device)
        except GatewayError as exc:
            logger.warning("%s (device stays untrusted; it may ask again)", exc)
