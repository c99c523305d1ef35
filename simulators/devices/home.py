"""One simulated peripheral per configured device: the radio for ``homevitals gateway
--simulate devices``, the power-loss test and the footprint benchmark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from homevitals.simulators.devices.base import SimulatedPeripheral, SimulatedRadio
from homevitals.simulators.devices.glucose_meter import GlucoseMeter, StoredRecord
from homevitals.simulators.devices.streaming import BthomeButton, ItagButton, make_streaming
from homevitals.vocab.clock import Clock, SystemClock
from homevitals.vocab.config import DeviceKind, HomeConfig

__all__ = ["radio_for_home"]


def radio_for_home(home: HomeConfig, *, interval: float = 1.0, stored_records: int = 20,
                   clock: Clock | None = None) -> SimulatedRadio:
    """Glucose meters hold ``stored_records`` (one every 4 hours up to now); streaming devices
    send a value every ``interval`` seconds while connected; buttons are pressed every
    ``30 * interval`` seconds."""
    clock = clock or SystemClock()
    peripherals: list[SimulatedPeripheral] = []
    for d in home.devices:
        address = d.address or f"SIM:{d.id}"
        if d.kind == DeviceKind.GLUCOSE_METER:
            # Earlier records, 4 h apart in elapsed (UTC) time, stamped by the meter's local clock.
            now = clock.now().astimezone(UTC).replace(microsecond=0)
            records = [StoredRecord(_local(now - timedelta(hours=4 * (stored_records - i)),
                                           home.zone),
                                    round(4.0 + (i * 7 % 50) / 10, 1),
                                    meal="preprandial" if i % 3 == 0 else None)
                       for i in range(stored_records)]
            peripherals.append(GlucoseMeter(address, records, clock=clock, zone=home.zone))
        elif d.kind == DeviceKind.CALL_BUTTON:
            peripherals.append(BthomeButton(address, clock))
        elif d.kind == DeviceKind.ITAG_BUTTON:
            peripherals.append(ItagButton(address, clock))
        elif d.kind != DeviceKind.GPIO_BUTTON:
            peripherals.append(make_streaming(str(d.kind), address, interval=interval,
                                              clock=clock, zone=home.zone))
    return SimulatedRadio(peripherals, clock, press_every=30 * interval)


def _local(t: datetime, zone: ZoneInfo) -> datetime:
    """What a device's own clock shows at the instant ``t``: naive local time."""
    return t.astimezone(zone).replace(tzinfo=None)
