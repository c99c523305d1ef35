"""Simulated devices that push values while connected (or advertise them): blood pressure
monitor, CGM, heart rate monitor, pulse oximeter, thermometer, scale, iTag and BTHome buttons.

Each produces plausible, deterministic values (seeded by its address) at a configurable
interval, byte-exact through the encoders in ``ble_values`` / ``ble_values_ext``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from homevitals.simulators import ble_values as bv
from homevitals.simulators import ble_values_ext as bx
from homevitals.simulators.devices.base import SimulatedPeripheral, SimulatedSession
from homevitals.vocab.clock import Clock

__all__ = ["BthomeButton", "ItagButton", "StreamingDevice", "make_streaming"]

Producer = Callable[[int, datetime], bytes]  # (index, local naive now) -> value


class StreamingDevice(SimulatedPeripheral):
    """Notifies ``characteristic`` every ``interval`` seconds while connected."""

    def __init__(self, address: str, name: str, service: str, characteristic: str,
                 produce: Producer, *, interval: float = 1.0, clock: Clock | None = None,
                 zone: ZoneInfo | None = None, extra: dict[str, bytes] | None = None,
                 count: int | None = None) -> None:
        extra = extra or {}
        super().__init__(address, name, [service, "180F"],
                         [characteristic, "2A19", *extra], clock)
        self.characteristic = characteristic
        self.produce = produce
        self.interval = interval
        self.zone = zone or ZoneInfo("UTC")
        self.count = count  # stop after this many values (None: forever)
        self.index = 0
        self.values.update({"2A19": bytes([90]), **extra})

    def on_connect(self, session: SimulatedSession) -> None:
        self.spawn(self._stream(session))

    async def _stream(self, session: SimulatedSession) -> None:
        await asyncio.sleep(self.interval)
        while self.count is None or self.index < self.count:
            now = self.clock.now().astimezone(self.zone).replace(tzinfo=None, microsecond=0)
            value = self.produce(self.index, now)
            self.index += 1
            if not session.notify(self.characteristic, value):
                return
            await asyncio.sleep(self.interval)


class ItagButton(SimulatedPeripheral):
    """A key-finder tag used as a call button: notifies 0x01 on 0xFFE1 when pressed."""

    def __init__(self, address: str, clock: Clock | None = None) -> None:
        super().__init__(address, "iTAG", ["FFE0", "180F"], ["FFE1", "2A19"], clock)
        self.values["2A19"] = bytes([64])

    def press(self) -> bool:
        """True when the press reached a connected gateway (an iTag has no memory)."""
        return self.session is not None and self.session.notify("FFE1", bx.encode_itag_press())


class BthomeButton(SimulatedPeripheral):
    """A Shelly BLU Button: advertises BTHome v2 service data; a press bumps the packet id."""

    def __init__(self, address: str, clock: Clock | None = None, battery: int = 100) -> None:
        super().__init__(address, "SBBT-002C", ["FCD2"], [], clock)
        self.packet_id = 0
        self.battery = battery
        self.event = "none"

    def press(self, event: str = "press") -> None:
        self.packet_id = (self.packet_id + 1) % 256
        self.event = event

    def service_data(self) -> dict[str, bytes]:
        return {"FCD2": bv.encode_bthome_button(self.packet_id, self.event, self.battery)}


def _rng(address: str) -> random.Random:
    return random.Random(address)  # deterministic per device


def make_streaming(kind: str, address: str, *, interval: float, clock: Clock | None = None,
                   zone: ZoneInfo | None = None, count: int | None = None) -> StreamingDevice:
    """A device of ``kind`` (a DeviceKind value) with realistic values."""
    rng = _rng(address)

    def dev(name: str, service: str, characteristic: str, produce: Producer,
            extra: dict[str, bytes] | None = None) -> StreamingDevice:
        return StreamingDevice(address, name, service, characteristic, produce,
                               interval=interval, clock=clock, zone=zone, count=count,
                               extra=extra)

    if kind == "blood_pressure":
        def bp(i: int, now: datetime) -> bytes:
            sys_ = rng.randint(115, 150)
            dia = rng.randint(70, 95)
            return bv.encode_bp_measurement(sys_, dia, round(dia + (sys_ - dia) / 3),
                                            timestamp=now, pulse=rng.randint(60, 85))
        return dev("Simulated BP", "1810", "2A35", bp)
    if kind == "heart_rate":
        return dev("Simulated HR", "180D", "2A37", lambda i, now: bx.encode_heart_rate(
            rng.randint(58, 95), contact=True, rr_ms=[rng.uniform(650, 1000)]))
    if kind == "pulse_oximeter":
        return dev("Simulated Oximeter", "1822", "2A5F", lambda i, now: (
            bx.encode_plx_continuous(rng.randint(93, 99), rng.randint(58, 90))))
    if kind == "thermometer":
        return dev("Simulated Thermometer", "1809", "2A1C", lambda i, now: (
            bx.encode_temperature(round(rng.uniform(36.2, 37.4), 2), timestamp=now, site=6)))
    if kind == "scale":
        return dev("Simulated Scale", "181D", "2A9D", lambda i, now: (
            bx.encode_weight(round(rng.uniform(70.0, 71.0), 1), timestamp=now)))
    if kind == "cgm":
        # Session start sent in UTC (time zone 0, DST 0): the gateway needs no home zone for it.
        started = (clock.now() if clock else datetime.now(UTC)).astimezone(UTC).replace(
            tzinfo=None, microsecond=0) - timedelta(hours=1)
        return dev("Simulated CGM", "181F", "2AA7", lambda i, now: bx.encode_cgm_measurement(
            [bx.CgmRecord(round(rng.uniform(4.5, 9.0), 1), 60 + i, trend_mg_dl_min=0.5,
                          quality=95, crc=True)]),
            extra={"2AAA": bx.encode_cgm_session_start(started, tz_quarters=0, crc=True)})
    raise ValueError(f"no streaming simulator for device kind {kind!r}")
