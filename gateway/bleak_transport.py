"""The real radio: bleak (BlueZ on the Raspberry Pi).

What BlueZ needs, learned from bleak's documentation and issue tracker, and checked against real
BlueZ 5.66 in the BLE VM harness (tests/ble_vm, docs/ble-vm.md):
- one scanner for the whole gateway. It feeds call buttons (BTHome v2, service data 0xFCD2, no
  connection) and tells each device's task when its configured address advertises, so discovery
  is by address and no second discovery session runs beside it;
- one device served at a time: connect, subscribe and record download run under one lock (BlueZ
  fails "Operation already in progress" on parallel connects); a connected device then waits
  for live values without holding the lock;
- a new ``BleakClient`` per connection, a generous connect timeout (>= 10 s), and a reconnect
  only after the device advertises again, with a growing, jittered delay after failures;
- indications (0x2A35, 0x2A52) and notifications use the same ``start_notify`` call in bleak;
- bonding: a device whose characteristics need encryption answers "Insufficient Encryption";
  BlueZ then pairs (Just Works) and retries by itself, so no pairing call is needed here.

Glucose meters are read through the Record Access Control Point (GLS 1.0 / GSS "Record Access
Control Point", 0x2A52): only records newer than the last sequence number saved for the device
are asked for, and that number is saved after each record is in the durable queue, so a link
dropped mid-transfer resumes where it stopped, without a gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from homevitals.clock import Clock, SystemClock
from homevitals.config import DeviceConfig, DeviceKind
from homevitals.gateway.errors import GatewayError
from homevitals.gateway.transport import Deliver, RawValue

__all__ = ["MEASUREMENT_CHARACTERISTICS", "BleakTransport", "RacpError", "SequenceStore"]

logger = logging.getLogger(__name__)

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"

MEASUREMENT_CHARACTERISTICS: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.GLUCOSE_METER: ("2A18", "2A34"),
    DeviceKind.BLOOD_PRESSURE: ("2A35",),
    DeviceKind.CALL_BUTTON: (),
}

# GSS "Record Access Control Point": op codes, operators and response codes.
RACP = "2A52"
_REPORT_RECORDS, _RESPONSE = 0x01, 0x06
_ALL, _GREATER_OR_EQUAL = 0x01, 0x03
_FILTER_SEQUENCE = 0x01
_SUCCESS, _NO_RECORDS = 0x01, 0x06
_CONTEXT_FOLLOWS = 0x10  # GLS 0x2A18 flags bit 4: a 0x2A34 with the same sequence follows


def _uuid(short: str) -> str:
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb"


class RacpError(GatewayError):
    """A glucose meter refused or did not finish a record transfer."""


class SequenceStore:
    """The last glucose record sequence number in the durable queue, per device (SQLite)."""

    def __init__(self, path: str | Path | None) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sequences (device TEXT PRIMARY KEY, last INTEGER NOT NULL)"
        )

    def last(self, device: str) -> int | None:
        row = self._db.execute("SELECT last FROM sequences WHERE device = ?", (device,)).fetchone()
        return None if row is None else int(row[0])

    def save(self, device: str, sequence: int) -> None:
        self._db.execute(
            "INSERT INTO sequences VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET last = ?",
            (device, sequence, sequence),
        )

    def close(self) -> None:
        self._db.close()


class _Sighting:
    """The latest advertisement of one configured address."""

    def __init__(self) -> None:
        self.device: Any = None
        self.at = 0.0
        self.event = asyncio.Event()


class BleakTransport:
    def __init__(
        self,
        *,
        state_path: str | Path | None = None,
        connect_timeout: float = 20.0,
        clock: Clock | None = None,
        max_backoff: float = 300.0,
        racp_timeout: float = 60.0,
        setup_timeout: float = 90.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.clock = clock or SystemClock()
        self.max_backoff = max_backoff
        self.racp_timeout = racp_timeout
        self.setup_timeout = setup_timeout
        self.sequences = SequenceStore(state_path)
        self._connect_lock = asyncio.Lock()
        self._sightings: dict[str, _Sighting] = {}

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        from bleak import BleakScanner  # imported here: the server side never needs bleak

        buttons = {
            d.address.upper(): d for d in devices if d.kind == DeviceKind.CALL_BUTTON and d.address
        }
        connected = [d for d in devices if MEASUREMENT_CHARACTERISTICS[d.kind] and d.address]
        self._sightings = {str(d.address).upper(): _Sighting() for d in connected}

        def on_advert(device: Any, adv: Any) -> None:
            address = str(device.address).upper()
            button = buttons.get(address)
            data = adv.service_data.get(BTHOME_UUID) if button else None
            if button and data:
                deliver(RawValue(button.id, "bthome", bytes(data), self.clock.now()))
            sighting = self._sightings.get(address)
            if sighting is not None:
                sighting.device, sighting.at = device, time.monotonic()
                sighting.event.set()

        async with BleakScanner(detection_callback=on_advert), asyncio.TaskGroup() as tg:
            for d in connected:
                tg.create_task(self._keep_connected(d, deliver), name=f"ble-{d.id}")
            await asyncio.Event().wait()

    async def _advertising(self, address: str, since: float) -> Any:
        """The BLEDevice of ``address`` once it advertises after ``since`` (monotonic)."""
        sighting = self._sightings[address.upper()]
        while sighting.at <= since:
            sighting.event.clear()
            await sighting.event.wait()
        return sighting.device

    async def _keep_connected(self, device: DeviceConfig, deliver: Deliver) -> None:
        from bleak.exc import BleakError

        assert device.address is not None
        delay, since = 1.0, 0.0
        while True:
            ble_device = await self._advertising(device.address, since)
            try:
                await self._session(device, ble_device, deliver)
                delay = 1.0
            except (TimeoutError, OSError, BleakError, GatewayError) as exc:
                logger.warning(
                    "%s: %s: %s; retrying in about %.0f s",
                    device.id, type(exc).__name__, exc, delay,
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self.max_backoff)
            since = time.monotonic()

    async def _session(self, device: DeviceConfig, ble_device: Any, deliver: Deliver) -> None:
        from bleak import BleakClient

        disconnected = asyncio.Event()
        # Values are taken only while their own session is live: a dropped BleakClient may
        # still hold callbacks in bleak's BlueZ manager.
        live = asyncio.Event()
        live.set()
        client = BleakClient(
            ble_device,
            disconnected_callback=lambda _c: disconnected.set(),
            timeout=self.connect_timeout,
        )
        try:
            async with self._connect_lock:
                await client.connect()
                logger.info("%s: connected to %s", device.id, device.address)
                await self._bounded(
                    self._subscribe(client, device, deliver, disconnected, live),
                    disconnected,
                )
            logger.info("%s: waiting for measurements", device.id)
            await disconnected.wait()
            logger.info("%s: disconnected", device.id)
        finally:
            live.clear()
            if client.is_connected:
                await client.disconnect()

    async def _bounded(self, setup: Coroutine[Any, Any, None], disconnected: asyncio.Event) -> None:
        """Run a setup step, but give up when the link drops or after ``setup_timeout``.

        Found in the BLE VM harness: when BlueZ (5.66) must pair to write a CCCD and the pairing
        fails, the link is dropped, yet bleak's ``start_notify`` never returns and its
        disconnected callback never fires. The step runs
        under the one-device-at-a-time lock, so without this bound one such device starves
        every other device of the gateway."""
        step = asyncio.ensure_future(setup)
        lost = asyncio.ensure_future(disconnected.wait())
        try:
            done, _ = await asyncio.wait(
                {step, lost}, timeout=self.setup_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            if not step.done():
                step.cancel()
        if step in done:
            step.result()  # re-raise what the setup raised
            return
        if lost in done:
            raise GatewayError("link lost while subscribing or downloading records")
        raise TimeoutError(f"setup not finished in {self.setup_timeout:.0f} s")

    async def _subscribe(
        self,
        client: Any,
        device: DeviceConfig,
        deliver: Deliver,
        disconnected: asyncio.Event,
        live: asyncio.Event,
    ) -> None:
        glucose = _GlucoseDownload(device.id, self.sequences, deliver, self.clock)
        for short in MEASUREMENT_CHARACTERISTICS[device.kind]:
            if client.services.get_characteristic(_uuid(short)) is None:
                continue  # optional characteristics (0x2A34) that a device does not have

            def on_value(_char: Any, data: bytearray, short: str = short) -> None:
                if not live.is_set():
                    logger.debug("%s: 0x%s value from a closed session ignored", device.id, short)
                elif device.kind == DeviceKind.GLUCOSE_METER:
                    glucose.on_value(short, bytes(data))
                else:
                    deliver(RawValue(device.id, short, bytes(data), self.clock.now()))

            await client.start_notify(_uuid(short), on_value)
        if device.kind == DeviceKind.GLUCOSE_METER:
            await glucose.run(client, disconnected, self.racp_timeout)


class _GlucoseDownload:
    """One RACP "report stored records" exchange, and the sequence bookkeeping around it."""

    def __init__(self, device: str, store: SequenceStore, deliver: Deliver, clock: Clock) -> None:
        self.device, self.store, self.deliver, self.clock = device, store, deliver, clock
        self.pending: int | None = None  # delivered, but its context (0x2A34) is still to come
        self.response: asyncio.Future[bytes] | None = None

    def on_value(self, short: str, data: bytes) -> None:
        if len(data) < 3:  # malformed: the gateway dead-letters it; nothing to remember
            self.deliver(RawValue(self.device, short, data, self.clock.now()))
            return
        sequence = int.from_bytes(data[1:3], "little")
        if self._already_queued(short, sequence):
            # Found in the BLE VM harness: after a reconnect, bleak 3.1 on BlueZ 5.66 handed
            # every notification of the new transfer over twice. A record whose sequence is
            # already in the durable queue is not queued again.
            logger.debug("%s: 0x%s sequence %d already queued", self.device, short, sequence)
            return
        self.deliver(RawValue(self.device, short, data, self.clock.now()))
        if short == "2A18":
            self._commit()
            if data[0] & _CONTEXT_FOLLOWS:
                self.pending = sequence
            else:
                self._save(sequence)
        elif short == "2A34" and sequence == self.pending:
            self._commit()

    def _already_queued(self, short: str, sequence: int) -> bool:
        last = self.store.last(self.device)
        saved = last is not None and sequence <= last
        if short == "2A18":
            return saved or sequence == self.pending
        return saved and sequence != self.pending  # 0x2A34 of a record already complete

    def _commit(self) -> None:
        if self.pending is not None:
            self._save(self.pending)
            self.pending = None

    def _save(self, sequence: int) -> None:
        last = self.store.last(self.device)
        if last is None or sequence > last:
            self.store.save(self.device, sequence)

    async def run(self, client: Any, disconnected: asyncio.Event, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.response = loop.create_future()

        def on_racp(_char: Any, data: bytearray) -> None:
            if self.response is not None and not self.response.done():
                self.response.set_result(bytes(data))

        await client.start_notify(_uuid(RACP), on_racp)
        last = self.store.last(self.device)
        if last is None:
            request = bytes([_REPORT_RECORDS, _ALL])
        else:
            request = bytes([_REPORT_RECORDS, _GREATER_OR_EQUAL, _FILTER_SEQUENCE])
            request += ((last + 1) & 0xFFFF).to_bytes(2, "little")
        logger.info(
            "%s: RACP request %s (last saved sequence %s)", self.device, request.hex(), last
        )
        await client.write_gatt_char(_uuid(RACP), request, response=True)
        lost: asyncio.Future[Any] = asyncio.ensure_future(disconnected.wait())
        waiters: set[asyncio.Future[Any]] = {self.response, lost}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if self.response not in done:
            what = "link lost" if lost in done else f"no answer in {timeout:.0f} s"
            raise RacpError(f"{self.device}: record transfer not finished ({what})")
        self._commit()  # the transfer is over: a context that did not come will not come
        self._check(self.response.result())

    def _check(self, answer: bytes) -> None:
        if len(answer) == 4 and answer[0] == _RESPONSE and answer[2] == _REPORT_RECORDS:
            if answer[3] in (_SUCCESS, _NO_RECORDS):
                logger.info("%s: records up to date (sequence %s)", self.device,
                            self.store.last(self.device))
                return
        raise RacpError(f"{self.device}: RACP answered {answer.hex()} to 'report records'")
