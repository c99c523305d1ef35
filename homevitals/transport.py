"""The BLE transport edge shared by the gateway (which consumes it) and the simulators (which
implement it): raw characteristic values, exactly as they come off the air.

Implementations: ``homevitals.gateway.bleak_transport.BleakTransport`` (the real radio through
bleak/BlueZ) and ``homevitals.simulators.transport.SimulatedTransport``. The parsing and publishing
code after this edge is the same for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from homevitals.config import DeviceConfig

__all__ = ["BleTransport", "Deliver", "RawValue"]


@dataclass(frozen=True, slots=True)
class RawValue:
    """One characteristic value (or one advertisement's service data) and when it arrived."""

    device: str
    characteristic: str  # "2A18", "2A35", ... or "bthome"
    data: bytes
    received_at: datetime

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


Deliver = Callable[[RawValue], None]


class BleTransport(Protocol):
    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        """Talk to ``devices`` until cancelled (or, for a simulation, until the script ends),
        calling ``deliver`` for every value received. ``deliver`` writes to the durable queue and
        returns quickly; it never raises for a bad value."""
        ...
