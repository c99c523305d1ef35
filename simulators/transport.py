"""A simulated BLE transport: scripted, byte-exact characteristic values in simulated time.

It implements the same protocol as the bleak transport, so the gateway's real decoding, queueing
and publishing code runs on it. The simulated clock jumps to each value's time, so a day of a
household replays in well under a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from homevitals.clock import SimulatedClock
from homevitals.config import DeviceConfig
from homevitals.transport import Deliver, RawValue

__all__ = ["ScheduledValue", "SimulatedTransport"]


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
        self, script: Sequence[ScheduledValue], clock: SimulatedClock, *, pace_seconds: float = 0.0
    ) -> None:
        self.script = sorted(script, key=lambda s: s.at)
        self.clock = clock
        self.pace_seconds = pace_seconds
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
