"""The real radio: bleak (BlueZ on the Raspberry Pi).

What BlueZ needs, learned from bleak's documentation and issue tracker:
- one connect at a time (BlueZ fails "Operation already in progress" on parallel connects), so
  connects are serialised by a lock; connections may then be held side by side;
- a new ``BleakClient`` per connection, a generous connect timeout (>= 10 s);
- reconnect with a growing, jittered delay so a dead device does not spin the radio;
- indications (0x2A35) and notifications use the same ``start_notify`` call in bleak.

Call buttons that broadcast BTHome v2 (service data UUID 0xFCD2) need no connection: one shared
scanner delivers their advertisements.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from homevitals.clock import Clock, SystemClock
from homevitals.config import DeviceConfig, DeviceKind
from homevitals.gateway.transport import Deliver, RawValue

__all__ = ["BleakTransport", "MEASUREMENT_CHARACTERISTICS"]

logger = logging.getLogger(__name__)

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"

MEASUREMENT_CHARACTERISTICS: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.GLUCOSE_METER: ("2A18",),
    DeviceKind.BLOOD_PRESSURE: ("2A35",),
    DeviceKind.CALL_BUTTON: (),
}


def _uuid(short: str) -> str:
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb"


class BleakTransport:
    def __init__(
        self,
        *,
        connect_timeout: float = 20.0,
        clock: Clock | None = None,
        max_backoff: float = 300.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.clock = clock or SystemClock()
        self.max_backoff = max_backoff
        self._connect_lock = asyncio.Lock()

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        from bleak import BleakScanner  # imported here: the server side never needs bleak

        buttons = {
            d.address.upper(): d for d in devices if d.kind == DeviceKind.CALL_BUTTON and d.address
        }

        def on_advert(device: Any, adv: Any) -> None:
            dev = buttons.get(str(device.address).upper())
            data = adv.service_data.get(BTHOME_UUID) if dev else None
            if dev and data:
                deliver(RawValue(dev.id, "bthome", bytes(data), self.clock.now()))

        async with BleakScanner(detection_callback=on_advert), asyncio.TaskGroup() as tg:
            for d in devices:
                if MEASUREMENT_CHARACTERISTICS[d.kind] and d.address:
                    tg.create_task(self._keep_connected(d, deliver), name=f"ble-{d.id}")
            await asyncio.Event().wait()

    async def _keep_connected(self, device: DeviceConfig, deliver: Deliver) -> None:
        delay = 1.0
        while True:
            try:
                await self._session(device, deliver)
                delay = 1.0
            except (TimeoutError, OSError, _bleak_error()) as exc:
                logger.warning("%s: %s; retrying in %.0f s", device.id, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.max_backoff)

    async def _session(self, device: DeviceConfig, deliver: Deliver) -> None:
        from bleak import BleakClient, BleakScanner

        assert device.address is not None
        ble_device = await BleakScanner.find_device_by_address(device.address, timeout=30.0)
        if ble_device is None:
            raise TimeoutError(f"{device.address} not seen advertising")
        disconnected = asyncio.Event()
        client = BleakClient(
            ble_device,
            disconnected_callback=lambda _c: disconnected.set(),
            timeout=self.connect_timeout,
        )
        async with self._connect_lock:
            await client.connect()
        try:
            for short in MEASUREMENT_CHARACTERISTICS[device.kind]:

                def on_value(_char: Any, data: bytearray, short: str = short) -> None:
                    deliver(RawValue(device.id, short, bytes(data), self.clock.now()))

                await client.start_notify(_uuid(short), on_value)
            logger.info("%s: connected, waiting for measurements", device.id)
            await disconnected.wait()
        finally:
            if client.is_connected:
                await client.disconnect()


def _bleak_error() -> type[Exception]:
    from bleak.exc import BleakError

    return BleakError
