"""The real radio: bleak (BlueZ on the Raspberry Pi) behind ``gateway/gatt.py``'s ``Radio``.

Only the radio edge lives here. What a session does with a device - which characteristics to
subscribe to per device kind, battery level, the glucose RACP download with its sequence mark
committed in the same SQLite transaction as the readings - is ``central.py`` and ``racp.py``,
the same code that runs against the simulated peripherals (``homevitals.simulators.devices``).

What BlueZ needs, learned from bleak's documentation and issue tracker, and checked against real
BlueZ 5.66 in the BLE VM harness (tests/ble_vm, docs/ble-vm.md):
- one scanner for the whole gateway (``scan``). It feeds call buttons (BTHome v2, service data
  0xFCD2, no connection) and remembers when each address last advertised, so a connect uses
  the ``BLEDevice`` just seen and no second discovery session runs beside it;
- a new ``BleakClient`` per connection and a generous connect timeout (>= 10 s); the caller
  (``Central``) connects one device at a time and reconnects with a jittered backoff, and only
  after the device advertises again (``advertising``);
- indications (0x2A35, 0x2A52) and notifications use the same ``start_notify`` call in bleak;
- bonding: a device whose characteristics need encryption answers "Insufficient Encryption";
  BlueZ then pairs (Just Works) and retries by itself, so no pairing call is needed here - but
  BlueZ asks its default pairing agent to confirm, and bleak registers none: without one the
  pairing is rejected. ``scan`` therefore first registers the gateway's own agent
  (``bluez_agent.py``: confirms only the configured addresses, ``pair_with``), on Linux only;
  if it cannot, it warns and goes on (devices that do not bond need no agent).

Found in the BLE VM harness, and handled here:
- a GATT call that never returns: when BlueZ must pair to write a CCCD and the pairing fails,
  the link is dropped, yet ``start_notify`` never returns and bleak's disconnected callback never
  fires. Every call is therefore bounded by ``call_timeout`` and abandoned when the link drops
  (a ``ConnectionError`` / ``TimeoutError`` the connection manager retries later);
- values delivered after their session ended (a dropped ``BleakClient`` may still hold
  callbacks in bleak's BlueZ manager) are ignored; duplicated notifications after a reconnect
  are dropped by sequence number in ``racp.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from homevitals.gateway.errors import GatewayError
from homevitals.gateway.gatt import Advert, AdvertData, GattSession, OnValue, short_uuid
from homevitals.vocab.clock import Clock, SystemClock
from homevitals.vocab.config import DeviceConfig

if TYPE_CHECKING:
    from homevitals.gateway.bluez_agent import BluezAgent

__all__ = ["BLUEZ_HELP", "BleakRadio", "BleakSession", "MIN_CONNECT_TIMEOUT", "radio_unavailable"]

logger = logging.getLogger(__name__)

MIN_CONNECT_TIMEOUT = 10.0  # BlueZ often needs several seconds to connect (bleak docs)
# A device that has just hung up often sends a last advertisement or two before it sleeps (seen
# in the BLE VM: about 0.2 s after the disconnect). Connecting to that one fails only after the
# whole connect timeout, holding the one-device-at-a-time lock meanwhile, so an advertisement
# counts only when it comes this long after the last connection ended.
SETTLE_SECONDS = 2.0
_T = TypeVar("_T")
BLUEZ_HELP = ("the gateway needs BlueZ and the D-Bus system bus: sudo apt install bluez"
              " && sudo systemctl enable --now bluetooth (docs/raspberry-pi.md)")


def radio_unavailable(exc: BaseException) -> GatewayError | None:
    """What the user should do when bleak cannot reach the radio at all, or None when ``exc``
    is about one device. No system bus: OSError from dbus-fast's connect; no bluetoothd:
    BleakDBusError ServiceUnknown; no adapter, or powered off: BleakBluetoothNotAvailableError."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError

    if isinstance(exc, OSError):
        return GatewayError(f"no D-Bus system bus ({exc.strerror or exc}); {BLUEZ_HELP}")
    if isinstance(exc, BleakDBusError) and exc.dbus_error in (
            "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NoReply"):
        return GatewayError(f"BlueZ (bluetoothd) is not running ({exc.dbus_error});"
                            f" {BLUEZ_HELP}")
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return GatewayError(f"no usable Bluetooth adapter: {exc.args[0]} (check `bluetoothctl"
                            " show`; `rfkill unblock bluetooth` if it is blocked)")
    return None


def _uuid(short: str) -> str:
    """"2A52" -> the full Bluetooth SIG UUID; anything longer is used as it is."""
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb" if len(short) == 4 else short


class _Sighting:
    """The latest advertisement of one address."""

    def __init__(self) -> None:
        self.device: Any = None  # bleak's BLEDevice
        self.at = 0.0  # monotonic
        self.event = asyncio.Event()


class BleakSession:
    """One ``BleakClient`` connection as a ``GattSession``."""

    def __init__(self, client: Any, address: str, disconnected: asyncio.Event,
                 call_timeout: float) -> None:
        self.client = client
        self._address = address
        self.disconnected = disconnected
        self.call_timeout = call_timeout
        self.live = True  # cleared when the session ends: late values are ignored

    @property
    def address(self) -> str:
        return self._address

    def _char(self, characteristic: str) -> Any:
        return self.client.services.get_characteristic(_uuid(characteristic))

    def has(self, characteristic: str) -> bool:
        return self._char(characteristic) is not None

    async def _bounded(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run one GATT call, abandoning it when the link drops or after ``call_timeout``."""
        from bleak.exc import BleakError

        step = asyncio.ensure_future(call())
        lost = asyncio.ensure_future(self.disconnected.wait())
        try:
            done, _ = await asyncio.wait({step, lost}, timeout=self.call_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not step.done():
                step.cancel()
        if step in done:
            try:
                return step.result()
            except BleakError as exc:
                raise ConnectionError(f"{self._address}: {what}: {exc}") from exc
        if lost in done:
            raise ConnectionError(f"{self._address}: link lost during {what}")
        raise TimeoutError(f"{self._address}: {what} not done in {self.call_timeout:g} s")

    async def start_notify(self, characteristic: str, callback: OnValue) -> None:
        char = self._char(characteristic)
        if char is None:
            raise ConnectionError(f"{self._address}: no characteristic 0x{characteristic}")
        if not {"notify", "indicate"} & set(char.properties):
            # e.g. a Battery Level that can only be read: nothing to subscribe to.
            logger.info("%s: 0x%s offers no notifications", self._address, characteristic)
            return

        def on_value(_char: Any, data: bytearray) -> None:
            if self.live:
                callback(bytes(data))
            else:
                logger.debug("%s: 0x%s value from a closed session ignored", self._address,
                             characteristic)

        await self._bounded(f"subscribe 0x{characteristic}",
                            lambda: self.client.start_notify(char, on_value))

    async def write(self, characteristic: str, data: bytes, *, response: bool = True) -> None:
        await self._bounded(f"write 0x{characteristic}", lambda: self.client.write_gatt_char(
            _uuid(characteristic), data, response=response))

    async def read(self, characteristic: str) -> bytes:
        data = await self._bounded(f"read 0x{characteristic}",
                                   lambda: self.client.read_gatt_char(_uuid(characteristic)))
        return bytes(data)

    async def wait_disconnected(self) -> None:
        await self.disconnected.wait()


class BleakRadio:
    """``Radio`` over bleak: one shared ``BleakScanner``, a new ``BleakClient`` per connection."""

    def __init__(self, *, clock: Clock | None = None, call_timeout: float = 30.0,
                 pair_with: Iterable[str] = ()) -> None:
        self.clock = clock or SystemClock()
        self.call_timeout = call_timeout
        self.pair_with = frozenset(pair_with)  # the pairing agent's list (PairingPolicy.of)
        self._sightings: dict[str, _Sighting] = {}
        self._ended: dict[str, float] = {}  # address -> when its last connection ended

    def needs_scan(self) -> bool:
        """Connections use the scanner's sightings: the connection manager must run ``scan``."""
        return True

    def _sighting(self, address: str) -> _Sighting:
        return self._sightings.setdefault(address.upper(), _Sighting())

    def sighted(self, device: Any) -> str:
        """The scanner saw ``device`` (bleak's ``BLEDevice``) advertise just now."""
        address = str(device.address).upper()
        sighting = self._sighting(address)
        sighting.device, sighting.at = device, time.monotonic()
        sighting.event.set()
        return address

    async def scan(self, on_advert: Callable[[Advert], None]) -> None:
        from bleak import BleakScanner  # imported here: the server side never needs bleak

        def detected(device: Any, adv: Any) -> None:
            address = self.sighted(device)
            on_advert(AdvertData(
                address=address, received_at=self.clock.now(), name=adv.local_name,
                rssi=adv.rssi, service_uuids=tuple(short_uuid(u) for u in adv.service_uuids),
                service_data={short_uuid(u): bytes(d) for u, d in adv.service_data.items()}))

        # The agent is in place before the scanner runs, hence before any connection.
        agent = await self._start_agent()
        try:
            scanner = BleakScanner(detection_callback=detected)
            try:
                await scanner.start()
            except Exception as exc:  # noqa: BLE001 - sorted by radio_unavailable, else re-raised
                raise (radio_unavailable(exc) or exc) from exc
            try:
                await asyncio.Event().wait()
            finally:
                await scanner.stop()
        finally:
            if agent is not None:
                agent.stop()

    async def _start_agent(self) -> BluezAgent | None:
        """Register the pairing agent (gateway/bluez_agent.py) for the configured devices, on
        Linux only. Failing to is not fatal: devices that do not bond work without it."""
        if sys.platform != "linux" or not self.pair_with:
            return None
        from homevitals.gateway.bluez_agent import BluezAgent, PairingPolicy

        try:
            agent = BluezAgent(PairingPolicy.of(self.pair_with))
            await agent.start()
        except (GatewayError, ValueError) as exc:  # ValueError: an address BlueZ cannot have
            logger.warning("%s; devices that must bond cannot pair unless paired by hand "
                           "(bluetoothctl, docs/raspberry-pi.md)", exc)
            return None
        return agent

    async def advertising(self, device: DeviceConfig) -> None:
        """Return once ``device`` has advertised since its last connection ended (BlueZ can
        only connect to an address it has just seen; a device that hung up is not called back
        until it advertises again, ``SETTLE_SECONDS`` or more after the end)."""
        assert device.address is not None
        sighting = self._sighting(device.address)
        ended = self._ended.get(device.address.upper())
        since = 0.0 if ended is None else ended + SETTLE_SECONDS
        while sighting.at <= since:
            sighting.event.clear()
            await sighting.event.wait()

    @asynccontextmanager
    async def connect(self, device: DeviceConfig, timeout: float) -> AsyncIterator[GattSession]:
        from bleak import BleakClient
        from bleak.exc import BleakError

        assert device.address is not None
        address = device.address.upper()
        target = self._sighting(address).device or address
        disconnected = asyncio.Event()
        client = BleakClient(target, disconnected_callback=lambda _c: disconnected.set(),
                             timeout=max(timeout, MIN_CONNECT_TIMEOUT))
        session = BleakSession(client, address, disconnected, self.call_timeout)
        try:
            try:
                await client.connect()
            except BleakError as exc:
                raise ConnectionError(f"{address}: connect: {exc}") from exc
            except TimeoutError as exc:  # bleak's carries no message: the log said "bp2: ;"
                raise TimeoutError(f"{address}: not connected within "
                                   f"{max(timeout, MIN_CONNECT_TIMEOUT):g} s") from exc
            yield session
        finally:
            session.live = False
            self._ended[address] = time.monotonic()
            if client.is_connected:
                try:
                    await client.disconnect()
                except (BleakError, OSError, TimeoutError) as exc:
                    logger.warning("%s: disconnect: %s", address, exc)
