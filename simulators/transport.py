"""A simulated BLE transport: scripted, byte-exact characteristic values in simulated time.

It implements the same protocol as the bleak transport, so the gateway's real decoding, queueing
and publishing code runs on it. The simulated clock jumps to each value's time, so a day of a
household replays in well under a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from homevitals.clock import SimulatedClock
from homevitals.config import DeviceConfig
from homevitals.transport import Deliver, RawValue

__all__ = ["DrivenTransport", "ScheduledValue", "SimulatedTransport"]

# Awaited after each delivered value, before the clock moves on: the replay driver's "wait until
# the pipeline is quiet", so that every stage sees the simulated time the value belongs to.
Settle = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ScheduledValue:
    at: datetime
    device: str
    characteristic: str
    data: bytes
    note: str = ""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("scheduled time must be timezone-aware")


class SimulatedTransport:
    def __init__(
        self,
        script: Sequence[ScheduledValue],
        clock: SimulatedClock,
        *,
        pace_seconds: float = 0.0,
        settle: Settle | None = None,
    ) -> None:
        self.script = sorted(script, key=lambda s: s.at)
        self.clock = clock
        self.pace_seconds = pace_seconds
        self.settle = settle
        self.delivered = 0

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        known = {d.id for d in devices}
        for item in self.script:
            if item.at > self.clock.now():
                self.clock.set(item.at)
            if item.device in known or item.note == "unknown-device":
                deliver(RawValue(item.device, item.characteristic, item.data, self.clock.now()))
                self.delivered += 1
            await asyncio.sleep(self.pace_seconds)
            if self.settle is not None:
                await self.settle()


class DrivenTransport:
    """A transport whose values are handed in by a driver that owns the clock (``replay``).

    ``run`` only registers the gateway's ``deliver`` and waits until cancelled or ``close``d; the
    driver calls ``send`` for each value, in simulated-time order, across every home it runs.
    Values for a device the home does not know are still delivered: the gateway must reject them.
    """

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self.delivered = 0

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        self._deliver = deliver
        self._ready.set()
        await self._closed.wait()

    async def ready(self) -> None:
        await self._ready.wait()

    def send(self, value: ScheduledValue, received_at: datetime) -> None:
        if self._deliver is None:
            raise RuntimeError("DrivenTransport.send before the gateway started its transport")
        self._deliver(RawValue(value.device, value.characteristic, value.data, received_at))
        self.delivered += 1

    def close(self) -> None:
        self._closed.set()
