"""Simulated peripherals behind a simulated radio, implementing the gateway's ``Radio`` and
``GattSession`` protocols (``homevitals.gateway.gatt``) structurally - stages never import each
other, and mypy checks the fit in the tests.

A peripheral advertises, accepts one connection, serves reads and writes, and notifies or
indicates byte-exact values. It can be told to misbehave (``Misbehaviour``): hang up after a
number of values, corrupt or truncate values, repeat a value, refuse connections. Like BlueZ,
the radio refuses a second connect while one is in progress ("Operation already in progress"),
so a gateway that connects in parallel fails here as it would on the Pi.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homevitals.vocab.clock import Clock, SystemClock

__all__ = [
    "Misbehaviour",
    "SimAdvert",
    "SimulatedPeripheral",
    "SimulatedRadio",
    "SimulatedSession",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimAdvert:
    """An advertisement (the gateway's ``Advert`` protocol)."""

    address: str
    received_at: datetime
    name: str | None
    rssi: int | None
    service_uuids: tuple[str, ...]
    service_data: Mapping[str, bytes]


@dataclass
class Misbehaviour:
    """What a peripheral does wrong next; counters count down as they are used."""

    drop_after: int | None = None  # hang up after sending this many more values
    corrupt: int = 0  # flip a bit in the next N values
    truncate: int = 0  # cut the next N values short by one byte
    repeat: int = 0  # send each of the next N values twice
    refuse_connects: int = 0  # time out the next N connection attempts


class SimulatedSession:
    """One connection, as the gateway sees it (the ``GattSession`` protocol)."""

    def __init__(self, peripheral: SimulatedPeripheral) -> None:
        self.peripheral = peripheral
        self._callbacks: dict[str, Callable[[bytes], None]] = {}
        self._gone = asyncio.Event()

    @property
    def address(self) -> str:
        return self.peripheral.address

    @property
    def connected(self) -> bool:
        return not self._gone.is_set()

    def _check(self, characteristic: str) -> None:
        if self._gone.is_set():
            raise ConnectionError(f"{self.address}: not connected")
        if not self.peripheral.has(characteristic):
            raise ConnectionError(f"{self.address}: no characteristic {characteristic}")

    def has(self, characteristic: str) -> bool:
        return self.peripheral.has(characteristic)

    async def start_notify(self, characteristic: str, callback: Callable[[bytes], None]) -> None:
        self._check(characteristic)
        self._callbacks[characteristic] = callback
        self.peripheral.on_subscribe(self, characteristic)

    def subscribed(self, characteristic: str) -> bool:
        """Whether the gateway has asked for this characteristic's values (its CCCD)."""
        return characteristic in self._callbacks and not self._gone.is_set()

    async def write(self, characteristic: str, data: bytes, *, response: bool = True) -> None:
        self._check(characteristic)
        await asyncio.sleep(0)  # a write with response is a round trip
        await self.peripheral.on_write(self, characteristic, bytes(data))

    async def read(self, characteristic: str) -> bytes:
        self._check(characteristic)
        await asyncio.sleep(0)
        return self.peripheral.read(characteristic)

    async def wait_disconnected(self) -> None:
        await self._gone.wait()

    # -- the peripheral's side ------------------------------------------------------------------

    def notify(self, characteristic: str, data: bytes) -> bool:
        """Send a value as the peripheral would, misbehaving as told. False once hung up."""
        if self._gone.is_set():
            return False
        m = self.peripheral.misbehave
        if m.drop_after is not None:
            if m.drop_after <= 0:
                m.drop_after = None
                logger.info("%s: dropping the link (as told)", self.address)
                self.hang_up()
                return False
            m.drop_after -= 1
        if m.corrupt > 0 and data:
            m.corrupt -= 1
            data = bytes([data[0] ^ 0x01]) + data[1:] if len(data) < 4 else (
                data[:3] + bytes([data[3] ^ 0x40]) + data[4:])
        if m.truncate > 0 and data:
            m.truncate -= 1
            data = data[:-1]
        copies = 1
        if m.repeat > 0:
            m.repeat -= 1
            copies = 2
        callback = self._callbacks.get(characteristic)
        if callback is not None:
            for _ in range(copies):
                callback(data)
        self.peripheral.sent += copies
        return True

    def indicate(self, characteristic: str, data: bytes) -> None:
        """A control-point answer: delivered as is (misbehaviour is for measurement values)."""
        callback = self._callbacks.get(characteristic)
        if callback is not None and not self._gone.is_set():
            callback(data)

    def hang_up(self) -> None:
        self._gone.set()


class SimulatedPeripheral:
    """Base: characteristics it offers, values it serves on read, hooks for writes."""

    def __init__(self, address: str, name: str, services: Iterable[str],
                 characteristics: Iterable[str], clock: Clock | None = None) -> None:
        self.address = address.upper()
        self.name = name
        self.services = tuple(services)
        self.characteristics = frozenset(characteristics)
        self.clock = clock or SystemClock()
        self.misbehave = Misbehaviour()
        self.session: SimulatedSession | None = None
        self.values: dict[str, bytes] = {}
        self.connections = 0
        self.sent = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def has(self, characteristic: str) -> bool:
        return characteristic in self.characteristics

    def read(self, characteristic: str) -> bytes:
        return self.values.get(characteristic, b"")

    def service_data(self) -> dict[str, bytes]:
        return {}

    async def on_write(self, session: SimulatedSession, characteristic: str, data: bytes) -> None:
        raise ConnectionError(f"{self.address}: {characteristic} is not writable")

    def on_connect(self, session: SimulatedSession) -> None:
        """Hook: start what the device does while connected (e.g. stream values)."""

    def on_subscribe(self, session: SimulatedSession, characteristic: str) -> None:
        """Hook: the gateway subscribed (a device may then send what it holds)."""

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def disconnect(self) -> None:
        if self.session is not None:
            self.session.hang_up()
        for task in list(self._tasks):
            task.cancel()


class SimulatedRadio:
    """The ``Radio`` protocol over simulated peripherals."""

    def __init__(self, peripherals: Iterable[SimulatedPeripheral], clock: Clock | None = None,
                 *, advert_interval: float = 0.1, connect_delay: float = 0.01,
                 press_every: float | None = None) -> None:
        self.peripherals = {p.address: p for p in peripherals}
        self.clock = clock or SystemClock()
        self.advert_interval = advert_interval
        self.connect_delay = connect_delay
        self.connecting = False
        self.parallel_connects = 0  # attempts refused because another was in progress
        self.press_every = press_every  # scan() presses every button this often (a household)

    @asynccontextmanager
    async def connect(self, device: Any, timeout: float) -> AsyncIterator[SimulatedSession]:
        if self.connecting:
            self.parallel_connects += 1
            raise ConnectionError("Operation already in progress")  # what BlueZ answers
        p = self.peripherals.get(str(device.address or "").upper())
        if p is None or p.misbehave.refuse_connects > 0 or p.session is not None:
            if p is not None and p.misbehave.refuse_connects > 0:
                p.misbehave.refuse_connects -= 1
            await asyncio.sleep(min(timeout, 0.05))
            raise TimeoutError(f"{device.address}: no connection within {timeout:g} s")
        self.connecting = True
        try:
            await asyncio.sleep(self.connect_delay)
        finally:
            self.connecting = False
        session = SimulatedSession(p)
        p.session = session
        p.connections += 1
        p.on_connect(session)
        try:
            yield session
        finally:
            p.disconnect()
            p.session = None

    async def scan(self, on_advert: Callable[[SimAdvert], None]) -> None:
        """Every advertising peripheral, every ``advert_interval`` seconds, until cancelled."""
        next_press = time.monotonic() + (self.press_every or 0)
        while True:
            if self.press_every and time.monotonic() >= next_press:
                next_press += self.press_every
                for p in self.peripherals.values():
                    press = getattr(p, "press", None)
                    if press is not None:
                        press()
            for p in self.peripherals.values():
                if p.session is None or p.service_data():
                    on_advert(SimAdvert(p.address, self.clock.now(), p.name, -60, p.services,
                                        p.service_data()))
            await asyncio.sleep(self.advert_interval)
