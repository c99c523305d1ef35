"""A household's devices as GATT peripherals, played from a script in simulated time: the radio of
``homevitals demo``, ``homevitals replay`` and ``homevitals gateway --simulate demo``.

A script is byte-exact characteristic values, each at the moment the device hands it over
(``ScheduledValue``). ``ScriptedRadio.send`` gives one to its device, which serves it the way the
real one does, over the gateway's ``Radio``/``GattSession`` protocols - so the gateway's own
connection manager (``Central``), RACP download and parsers run on it:

- a glucose meter stores the record and advertises; the gateway connects and downloads what it
  has not committed over the Record Access Control Point (GLS 1.0 section 3.2). The meter stays
  connected until its next record (then it has long timed out and hangs up first);
- a CGM advertises once its sensor session has started (the Session Start Time, 0x2AAA, is a
  value the gateway reads at connect); a new session hangs up, so the gateway reconnects and
  reads it again. Its records (0x2AA7), like every other notifying device's values (blood
  pressure 0x2A35, heart rate 0x2A37, pulse oximeter 0x2A5E/0x2A5F, iTag 0xFFE1), are notified
  at once while the gateway is subscribed, else kept until it subscribes;
- a BTHome button ("bthome") advertises its service data (UUID 0xFCD2) to the scanner, if one
  runs: like the real one, it has no memory.

Nothing here sleeps on the wall clock: the script's driver moves the simulated clock, and after
each value waits for ``settled`` - every value handed over and every connection set up - before
it moves it again. A device whose values the script corrupted sends those bytes as they are:
SFLOAT NaN, NRes and infinities reach the gateway exactly as a scenario wrote them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homevitals.simulators.devices.base import (
    SimAdvert,
    SimulatedPeripheral,
    SimulatedRadio,
    SimulatedSession,
)
from homevitals.simulators.devices.glucose_meter import CONTEXT, MEASUREMENT, RACP, GlucoseMeter
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import DeviceConfig, DeviceKind, HomeConfig

__all__ = ["ScheduledValue", "ScriptedRadio"]

logger = logging.getLogger(__name__)

SESSION_START = "2AAA"  # CGMS 1.0.1 section 3.3: read, never notified


@dataclass(frozen=True, slots=True)
class ScheduledValue:
    """A characteristic value (or "bthome" service data) that ``device`` hands over at ``at``."""

    at: datetime
    device: str
    characteristic: str
    data: bytes
    note: str = ""  # "corrupt", "backfill": what the timeline did to it

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("scheduled time must be timezone-aware")


class _Signal:
    """Wakes whoever waits for the radio's state to change (one asyncio loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not done():
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except TimeoutError:
                return done()
        return True


class _Scripted(SimulatedPeripheral):
    """What the radio asks of each scripted device."""

    signal: _Signal | None = None  # the radio's, set when it takes the device

    def changed(self) -> None:
        if self.signal is not None:
            self.signal.pulse()

    def produce(self, value: ScheduledValue) -> None:
        raise NotImplementedError

    def wants_connection(self) -> bool:
        """Advertising, connectable, and not connected."""
        return False

    def holding(self) -> bool:
        """Something the gateway has not had yet."""
        return False


class _Notifier(_Scripted):
    """A device that notifies or indicates its values while the gateway is subscribed."""

    def __init__(self, device: DeviceConfig, clock: Clock, notify: tuple[str, ...],
                 readable: tuple[str, ...] = ()) -> None:
        assert device.address is not None
        super().__init__(device.address, f"Scripted {device.kind}", [],
                         [*notify, *readable], clock)
        self.present = not readable  # a CGM is there once its sensor session has started
        self.pending: list[tuple[str, bytes]] = []
        self.unread: set[str] = set()

    def has(self, characteristic: str) -> bool:
        """A value to read is offered once the device has one (a CGM's session start)."""
        return characteristic in self.characteristics and (
            characteristic != SESSION_START or SESSION_START in self.values)

    def produce(self, value: ScheduledValue) -> None:
        self.present = True
        if value.characteristic == SESSION_START:
            self.values[SESSION_START], self.present = value.data, True
            self.unread.add(SESSION_START)
            if self.session is not None:
                self.session.hang_up()  # a new sensor session: the gateway must read it again
            return
        self.pending.append((value.characteristic, value.data))
        self._flush()

    def on_subscribe(self, session: SimulatedSession, characteristic: str) -> None:
        self._flush()

    def _flush(self) -> None:
        session = self.session
        while session is not None and self.pending and session.subscribed(self.pending[0][0]):
            session.notify(*self.pending.pop(0))
        self.changed()

    def read(self, characteristic: str) -> bytes:
        self.unread.discard(characteristic)
        self.changed()
        return super().read(characteristic)

    def wants_connection(self) -> bool:
        return self.present and self.session is None

    def holding(self) -> bool:
        return bool(self.pending or self.unread)


class _Meter(GlucoseMeter, _Scripted):
    """A glucose meter whose records are the script's bytes, downloaded over RACP."""

    def __init__(self, device: DeviceConfig, clock: Clock) -> None:
        assert device.address is not None
        super().__init__(device.address, clock=clock, hang_up_after_transfer=False)
        self.characteristics = frozenset({MEASUREMENT, CONTEXT, RACP})  # no battery to read
        self.raw: list[tuple[int, bytes]] = []
        self.fresh = False  # a record since the gateway last connected: advertising

    def produce(self, value: ScheduledValue) -> None:
        if value.characteristic != MEASUREMENT:
            raise ValueError(f"a scripted glucose meter stores 0x2A18 records, not"
                             f" {value.characteristic}")
        last = self.raw[-1][0] if self.raw else 0
        # Its own numbering: the bytes of a record the script corrupted do not say it.
        sequence = last + 1 if value.note == "corrupt" or len(value.data) < 3 else (
            int.from_bytes(value.data[1:3], "little"))
        self.raw.append((sequence, value.data))
        self.fresh = True
        if self.session is not None:
            self.session.hang_up()  # idle since its last download: it has timed out
        self.changed()

    def record_count(self) -> int:
        return len(self.raw)

    def sequence_of(self, index: int) -> int:
        return self.raw[index][0]

    def value_of(self, index: int) -> tuple[bytes, bytes | None]:
        return self.raw[index][1], None

    def on_connect(self, session: SimulatedSession) -> None:
        self.fresh = False

    def wants_connection(self) -> bool:
        return self.fresh and self.session is None

    def holding(self) -> bool:
        return self.fresh


class _Button(_Scripted):
    """A BTHome button: each value is one advertisement's service data (0xFCD2)."""

    def __init__(self, device: DeviceConfig, clock: Clock,
                 advertise: Callable[[SimAdvert], bool]) -> None:
        assert device.address is not None
        super().__init__(device.address, "SBBT-002C", ["FCD2"], [], clock)
        self.advertise = advertise

    def produce(self, value: ScheduledValue) -> None:
        heard = self.advertise(SimAdvert(self.address, self.clock.now(), self.name, -60,
                                         self.services, {"FCD2": value.data}))
        if not heard:
            logger.warning("%s: advertisement with nobody scanning, lost", self.address)


_NOTIFY = {
    DeviceKind.BLOOD_PRESSURE: ("2A35",),
    DeviceKind.HEART_RATE: ("2A37",),
    DeviceKind.PULSE_OXIMETER: ("2A5E", "2A5F"),
    DeviceKind.THERMOMETER: ("2A1C",),
    DeviceKind.SCALE: ("2A9D",),
    DeviceKind.ITAG_BUTTON: ("FFE1",),
}


class ScriptedRadio(SimulatedRadio):
    """The ``Radio`` of one household: a scripted peripheral per configured device (each needs
    an address, as on the Pi; wired GPIO buttons are not on the radio)."""

    def __init__(self, home: HomeConfig, clock: Clock) -> None:
        self.signal = _Signal()
        self._on_advert: Callable[[SimAdvert], None] | None = None
        self.devices: dict[str, _Scripted] = {}
        for d in home.devices:
            if d.kind == DeviceKind.GPIO_BUTTON:
                continue
            if d.address is None:
                raise ValueError(f"device {d.id} has no address: the radio cannot reach it")
            p = self._peripheral(d, clock)
            p.signal = self.signal
            self.devices[d.id] = p
        super().__init__(self.devices.values(), clock, connect_delay=0.0)

    def _peripheral(self, d: DeviceConfig, clock: Clock) -> _Scripted:
        if d.kind == DeviceKind.GLUCOSE_METER:
            return _Meter(d, clock)
        if d.kind == DeviceKind.CALL_BUTTON:
            return _Button(d, clock, self._advertise)
        if d.kind == DeviceKind.CGM:
            return _Notifier(d, clock, ("2AA7",), (SESSION_START,))
        return _Notifier(d, clock, _NOTIFY[d.kind])

    def send(self, value: ScheduledValue) -> None:
        """``value.device`` hands ``value`` over now (see the module docstring for how)."""
        device = self.devices.get(value.device)
        if device is None:
            raise ValueError(f"no scripted device {value.device!r} in this household")
        device.produce(value)
        self.signal.pulse()

    def scanning(self) -> bool:
        return self._on_advert is not None

    def quiet(self) -> bool:
        """A gateway is scanning and every device has handed over what it holds and is
        connected, or needs no connection."""
        return self.scanning() and not any(
            p.holding() or p.wants_connection() for p in self.devices.values())

    async def settled(self, timeout: float | None = 30.0) -> bool:
        """Wait until ``quiet``; False if it is not within ``timeout`` wall-clock seconds. (The
        gateway may still be setting a device up: its driver waits for that too.)"""
        return await self.signal.until(self.quiet, timeout)

    # -- the Radio protocol, with the advertising gate of ``AwaitsAdvert`` ---------------------

    def needs_scan(self) -> bool:
        return True

    async def advertising(self, device: DeviceConfig) -> None:
        p = self.devices.get(device.id)
        if p is None:
            await asyncio.Event().wait()  # not on this radio: never advertises
            return
        await self.signal.until(p.wants_connection, None)

    async def scan(self, on_advert: Callable[[SimAdvert], None]) -> None:
        self._on_advert = on_advert
        self.signal.pulse()
        try:
            await asyncio.Event().wait()
        finally:
            self._on_advert = None
            self.signal.pulse()

    def _advertise(self, advert: SimAdvert) -> bool:
        if self._on_advert is None:
            return False
        self._on_advert(advert)
        return True

    @asynccontextmanager
    async def connect(self, device: Any, timeout: float) -> AsyncIterator[SimulatedSession]:
        try:
            async with super().connect(device, timeout) as session:
                self.signal.pulse()
                yield session
        finally:
            self.signal.pulse()
