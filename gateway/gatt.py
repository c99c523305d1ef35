"""The gateway's one radio edge: ``Radio`` and ``GattSession``, and the ``RawValue`` they yield.

Devices the gateway talks to - a glucose meter's Record Access Control Point, a CGM's session
start time, a cuff's indications - need a session: write a characteristic, wait for an
indication, read a value. These two protocols are that session, small enough that bleak
(``BleakClient``: ``start_notify``, ``write_gatt_char(..., response=True)``, ``read_gatt_char``;
``bleak_transport.BleakRadio``) and the simulated peripherals in
``homevitals.simulators.devices`` (``SimulatedRadio``; ``ScriptedRadio`` for the demo and the
replay) both implement them, so the connection manager (``central.py``), the RACP download and
every other procedure run unchanged against either.

Characteristics are named by their short upper-case UUID ("2A52") or "FFE1". A lost link
raises ``ConnectionError`` (an ``OSError``) from any call; the bleak adapter converts
``BleakError`` to it where it enters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from homevitals.vocab.config import DeviceConfig

__all__ = ["Advert", "AdvertData", "Deliver", "GattSession", "OnValue", "Radio", "RawValue",
           "short_uuid"]

OnValue = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class RawValue:
    """One characteristic value (or one advertisement's service data) as it came off the air,
    and when it arrived: what ``Central`` hands the gateway service to decode."""

    device: str
    characteristic: str  # "2A18", "2A35", ... or "bthome"
    data: bytes
    received_at: datetime

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


# Writes to the durable queue and returns quickly; never raises for a bad value.
Deliver = Callable[[RawValue], None]


class Advert(Protocol):
    """One advertisement as the scanner saw it. UUIDs are short upper-case where they are
    Bluetooth SIG ones ("1808", "FCD2"), else the full lower-case form."""

    @property
    def address(self) -> str: ...

    @property
    def received_at(self) -> datetime: ...

    @property
    def name(self) -> str | None: ...

    @property
    def rssi(self) -> int | None: ...

    @property
    def service_uuids(self) -> tuple[str, ...]: ...

    @property
    def service_data(self) -> Mapping[str, bytes]: ...


@dataclass(frozen=True, slots=True)
class AdvertData:
    """A concrete ``Advert`` for radio adapters (bleak's AdvertisementData converted)."""

    address: str
    received_at: datetime
    name: str | None = None
    rssi: int | None = None
    service_uuids: tuple[str, ...] = ()
    service_data: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


class GattSession(Protocol):
    """One connection to one peripheral."""

    @property
    def address(self) -> str: ...

    def has(self, characteristic: str) -> bool:
        """Whether the peripheral offers the characteristic (after service discovery)."""
        ...

    async def start_notify(self, characteristic: str, callback: OnValue) -> None:
        """Notifications and indications alike (bleak enables whichever the CCCD allows)."""
        ...

    async def write(self, characteristic: str, data: bytes, *, response: bool = True) -> None: ...

    async def read(self, characteristic: str) -> bytes: ...

    async def wait_disconnected(self) -> None:
        """Return when the link is gone (the peripheral hung up, or it was lost)."""
        ...


@runtime_checkable
class Radio(Protocol):
    """The adapter: one shared scanner, and connections made one at a time by the caller."""

    def connect(
        self, device: DeviceConfig, timeout: float
    ) -> AbstractAsyncContextManager[GattSession]:
        """Connect (raising TimeoutError or ConnectionError), disconnect on exit."""
        ...

    async def scan(self, on_advert: Callable[[Advert], None]) -> None:
        """Deliver advertisements until cancelled."""
        ...


_SIG_BASE = "-0000-1000-8000-00805f9b34fb"


def short_uuid(uuid: str) -> str:
    """"0000180d-0000-1000-8000-00805f9b34fb" -> "180D"; other UUIDs lower-case as they are."""
    text = uuid.lower().removeprefix("0x")
    if len(text) == 36 and text.startswith("0000") and text.endswith(_SIG_BASE):
        return text[4:8].upper()
    if len(text) == 4 and all(c in "0123456789abcdef" for c in text):
        return text.upper()
    return text
