"""The gateway's side of every device connection, over any ``Radio`` (bleak or simulated): the one
BLE edge, so the demo, the replay and the BLE VM run the code that runs in every home.

What BlueZ needs, from bleak's documentation and issue tracker, applied here once for every
radio: one shared scanner; one connect at a time (parallel connects fail with "Operation already
in progress"), though connections may then be held side by side; a generous connect timeout;
a fresh connection object each time (the radio's ``connect``); reconnects with a growing,
jittered delay so a dead device does not keep the radio busy.

Per device kind, what a session does once connected:
- glucose meter: RACP download of the records not yet committed (``racp.py``), then stay for
  live records until the meter hangs up (most do right after the transfer);
- CGM: read the session start time (0x2AAA), then CGM Measurement notifications;
- blood pressure, heart rate, pulse oximeter, thermometer, scale: their measurement
  characteristic(s), plus Battery Level (0x2A19) read once and notified when offered;
- iTag button: notifications on 0xFFE1.
BTHome buttons need no connection: the scanner hands their service data (UUID 0xFCD2) over.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Sequence
from contextlib import AsyncExitStack
from typing import Protocol, runtime_checkable

from homevitals.gateway.gatt import Advert, Deliver, GattSession, OnValue, Radio, RawValue
from homevitals.gateway.racp import RacpError, download_records
from homevitals.gateway.service import Gateway
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import DeviceConfig, DeviceKind

__all__ = ["CONNECTED_KINDS", "AwaitsAdvert", "Central", "NOTIFY"]

logger = logging.getLogger(__name__)

BTHOME = "FCD2"
BATTERY = "2A19"

# The characteristics a session subscribes to, by device kind (measurement ones first).
NOTIFY: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.BLOOD_PRESSURE: ("2A35",),
    DeviceKind.CGM: ("2AA7",),
    DeviceKind.HEART_RATE: ("2A37",),
    DeviceKind.PULSE_OXIMETER: ("2A5E", "2A5F"),
    DeviceKind.THERMOMETER: ("2A1C",),
    DeviceKind.SCALE: ("2A9D",),
    DeviceKind.ITAG_BUTTON: ("FFE1",),
}
CONNECTED_KINDS = frozenset({*NOTIFY, DeviceKind.GLUCOSE_METER})


@runtime_checkable
class AwaitsAdvert(Protocol):
    """A radio that connects only to an address its scanner has just seen (bleak on BlueZ, and
    the scripted households): the connection manager then always runs ``scan`` and waits,
    outside the connect lock, for the device to advertise before each connect. The advertising
    gate also spaces the reconnects after a session that ended normally (bleak: no call back
    within ``SETTLE_SECONDS`` of the end), so no extra pause is taken then."""

    def needs_scan(self) -> bool: ...

    async def advertising(self, device: DeviceConfig) -> None: ...


class Central:
    """Keeps every configured device connected over a ``Radio`` and delivers what it sends.

    ``in_setup`` names the devices being connected or set up right now (subscribe, read, RACP
    download) and ``idle`` is set while it is empty: a simulation's driver waits for both before
    it moves its clock on."""

    def __init__(
        self,
        radio: Radio,
        gateway: Gateway,
        clock: Clock,
        *,
        connect_timeout: float = 20.0,
        racp_timeout: float = 30.0,
        min_backoff: float = 1.0,
        max_backoff: float = 300.0,
        setup_timeout: float = 300.0,
    ) -> None:
        self.radio = radio
        self.gateway = gateway
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.racp_timeout = racp_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.setup_timeout = setup_timeout
        self.sessions = 0
        self.failures = 0
        self.in_setup: set[str] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self._connect_lock = asyncio.Lock()

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        """Talk to ``devices`` until cancelled, calling ``deliver`` for every value received."""
        buttons = {d.address.upper(): d for d in devices
                   if d.kind == DeviceKind.CALL_BUTTON and d.address}

        def on_advert(advert: Advert) -> None:
            device = buttons.get(advert.address.upper())
            data = advert.service_data.get(BTHOME) if device else None
            if device is not None and data is not None:
                deliver(RawValue(device.id, "bthome", bytes(data), advert.received_at))

        async with asyncio.TaskGroup() as tg:
            if buttons or (isinstance(self.radio, AwaitsAdvert) and self.radio.needs_scan()):
                tg.create_task(self.radio.scan(on_advert), name="ble-scan")
            for d in devices:
                if d.kind in CONNECTED_KINDS and d.address:
                    tg.create_task(self._keep_connected(d, deliver), name=f"ble-{d.id}")

    async def _keep_connected(self, device: DeviceConfig, deliver: Deliver) -> None:
        delay = self.min_backoff
        gated = isinstance(self.radio, AwaitsAdvert)
        while True:
            if isinstance(self.radio, AwaitsAdvert):
                await self.radio.advertising(device)
            try:
                await self._session(device, deliver)
                self.sessions += 1
                delay = self.min_backoff
                if gated:
                    continue  # the next connect waits for the device to advertise again
            except (TimeoutError, OSError, RacpError) as exc:  # ConnectionError is an OSError
                self.failures += 1
                logger.warning("%s: %s; retrying in about %.0f s", device.id, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.max_backoff)

    def _setting_up(self, device: str, busy: bool) -> None:
        if busy:
            self.in_setup.add(device)
            self.idle.clear()
        else:
            self.in_setup.discard(device)
            if not self.in_setup:
                self.idle.set()

    async def _session(self, device: DeviceConfig, deliver: Deliver) -> None:
        async with AsyncExitStack() as stack:
            self._setting_up(device.id, True)
            try:
                async with self._connect_lock:
                    session = await stack.enter_async_context(
                        self.radio.connect(device, self.connect_timeout))
                    logger.info("%s: connected", device.id)
                    # Setup (subscribe, download) holds the connect lock too: BlueZ serves one
                    # device's setup at a time, and a device that connects while another is
                    # being set up makes both slower (docs/ble-vm.md).
                    await self._watched(session, self._serve(device, session, deliver))
            finally:
                self._setting_up(device.id, False)
            await session.wait_disconnected()
            logger.info("%s: disconnected", device.id)

    async def _watched(self, session: GattSession, setup: Awaitable[None]) -> None:
        """The setup watchdog: abandon setup when the link drops or after ``setup_timeout``.

        Found in the BLE VM harness (BlueZ 5.66, bleak 3.1): when BlueZ must pair to write a
        CCCD and the pairing fails, the link drops but ``start_notify`` never returns. Setup
        runs under the connect lock, so unbounded it would starve every other device."""
        step = asyncio.ensure_future(setup)
        gone = asyncio.ensure_future(session.wait_disconnected())
        try:
            done, _ = await asyncio.wait({step, gone}, timeout=self.setup_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not step.done():
                step.cancel()
        if step in done:
            step.result()  # re-raise what the setup raised
        elif gone in done:
            raise ConnectionError(f"{session.address}: link lost during setup")
        else:
            raise TimeoutError(f"{session.address}: setup not done in {self.setup_timeout:g} s")

    async def _serve(self, device: DeviceConfig, session: GattSession, deliver: Deliver) -> None:
        def forward(characteristic: str) -> OnValue:
            return lambda data: deliver(
                RawValue(device.id, characteristic, bytes(data), self.clock.now()))

        if session.has(BATTERY):
            deliver(RawValue(device.id, BATTERY, await session.read(BATTERY), self.clock.now()))
            await session.start_notify(BATTERY, forward(BATTERY))
        if device.kind == DeviceKind.GLUCOSE_METER:
            await download_records(session, device, self.gateway, self.clock,
                                   timeout=self.racp_timeout)
            return
        if device.kind == DeviceKind.CGM and session.has("2AAA"):
            deliver(RawValue(device.id, "2AAA", await session.read("2AAA"), self.clock.now()))
        for characteristic in NOTIFY[device.kind]:
            if session.has(characteristic):
                await session.start_notify(characteristic, forward(characteristic))
