"""The story's virtual devices: what each serves and how it behaves when the gateway comes."""

from __future__ import annotations

import asyncio
from typing import Any

from bumble.att import Attribute
from bumble.gatt import Service
from bumble.link import LocalLink

from homevitals.simulators.ble_values import encode_sfloat

from .. import scenario as sc
from .peripherals import (
    Props,
    VirtualDevice,
    adv_data,
    battery_service,
    blood_pressure_service,
    char,
    heart_rate_service,
    pulse_oximeter_service,
)

HEART_RATE_VALUE = b"\x00\x48"  # HRS: flags 0 (uint8 bpm), 72 bpm
PLX_VALUE = b"\x00" + encode_sfloat(97, 0) + encode_sfloat(72, 0)  # PLXS: SpO2 97 %, PR 72
BATTERY_LEVEL = 87


class BloodPressureMonitor:
    """Indicates its readings once the gateway subscribes, then drops the link and goes quiet,
    as a cuff does when a measurement is over."""

    def __init__(self, link: LocalLink, name: str, address: str, readings: tuple[bytes, ...],
                 *, bonded: bool = False) -> None:
        self.v = VirtualDevice(link, name, address)
        self.readings, self.bonded = readings, bonded
        self.confirmed: list[str] = []
        self.done = asyncio.Event()
        self.service, self.measurement = blood_pressure_service()
        self.v.on_subscription(self._on_subscription)

    async def start(self) -> None:
        await self.v.start([self.service, battery_service(BATTERY_LEVEL)],
                           adv_data(self.v.name, (0x1810,)))
        if self.bonded:
            self.v.require_encryption_to_subscribe(self.measurement)

    def _on_subscription(self, connection: Any, characteristic: Any, _n: bool, ind: bool) -> None:
        if characteristic is self.measurement and ind and not self.done.is_set():
            asyncio.ensure_future(self._send(connection))

    async def _send(self, connection: Any) -> None:
        for value in self.readings:
            await self.v.device.indicate_subscriber(connection, self.measurement, value)
            self.confirmed.append(value.hex())
            self.v.note(f"indication confirmed {value.hex()}")
        self.done.set()
        await asyncio.sleep(1.0)  # the device stays on the line a moment, as a real one does
        if self.v.connection is not None:
            await self.v.connection.disconnect()
        await asyncio.sleep(0.2)  # auto_restart re-advertises on disconnection: then go quiet
        await self.v.device.stop_advertising()


class GlucoseMeter:
    """Serves its stored records through the Record Access Control Point (GSS "Record Access
    Control Point": op codes 0x01 report stored records / 0x04 report number of stored records,
    operators 0x01 all / 0x03 greater than or equal to, filter type 0x01 sequence number;
    response 0x05 with the number, or 0x06 with a response code)."""

    def __init__(self, link: LocalLink, drop_after: int | None) -> None:
        self.v = VirtualDevice(link, "Glucose Meter", sc.GLUCOSE_ADDRESS)
        self.records = sc.glucose_records()
        self.drop_after = drop_after
        self.requests: list[str] = []
        self.sent: list[int] = []
        self.done = asyncio.Event()
        self.measurement = char(0x2A18, Props.NOTIFY)
        self.context = char(0x2A34, Props.NOTIFY)
        self.racp = char(0x2A52, Props.WRITE | Props.INDICATE, perms=Attribute.WRITEABLE,
                         write=self._on_racp)

    async def start(self) -> None:
        service = Service("1808", [self.measurement, self.context,
                                   char(0x2A51, Props.READ, b"\x02\x00"), self.racp])
        await self.v.start([service, battery_service(BATTERY_LEVEL)],
                           adv_data(self.v.name, (0x1808,)))

    def _on_racp(self, connection: Any, value: bytes) -> None:
        self.requests.append(bytes(value).hex())
        self.v.note(f"RACP {bytes(value).hex()}")
        asyncio.ensure_future(self._answer(connection, bytes(value)))

    def _select(self, request: bytes) -> tuple[list[sc.GlucoseRecord], int]:
        if request[:1] not in (b"\x01", b"\x04"):
            return [], 0x02  # op code not supported
        if request[1:2] == b"\x01":
            return self.records, 0x01
        if len(request) == 5 and request[1:3] == b"\x03\x01":
            first = int.from_bytes(request[3:5], "little")
            return [r for r in self.records if r.sequence >= first], 0x01
        return [], 0x04  # operator not supported

    async def _answer(self, connection: Any, request: bytes) -> None:
        records, code = self._select(request)
        if request[:1] == b"\x04" and code == 0x01:  # report number of stored records
            answer = bytes([0x05, 0x00]) + len(records).to_bytes(2, "little")
            await self.v.device.indicate_subscriber(connection, self.racp, answer)
            self.v.note(f"RACP answered {answer.hex()}")
            return
        if code == 0x01 and not records:
            code = 0x06  # no records found
        for n, record in enumerate(records):
            if self.drop_after is not None and n == self.drop_after:
                self.drop_after = None
                # Give BlueZ time to hand the records already sent to the gateway, so the
                # resume point is known (16); the drop itself comes in the middle of the
                # transfer, before the RACP answer.
                await asyncio.sleep(1.0)  # in the VM's device: see the comment above
                self.v.note(f"dropping the link after sequence {self.sent[-1]}")
                await connection.disconnect()
                return
            await self.v.device.notify_subscriber(connection, self.measurement, record.measurement)
            if record.context is not None:
                await self.v.device.notify_subscriber(connection, self.context, record.context)
            self.sent.append(record.sequence)
        answer = bytes([0x06, 0x00, request[0] if request else 0, code])
        await self.v.device.indicate_subscriber(connection, self.racp, answer)
        self.v.note(f"RACP answered {answer.hex()}")
        if code in (0x01, 0x06):
            self.done.set()


class Decoy(BloodPressureMonitor):
    """A neighbour's monitor in range with the same name: the gateway must not touch it."""

    def __init__(self, link: LocalLink) -> None:
        super().__init__(link, "BP Monitor", sc.DECOY_ADDRESS, (sc.DECOY_READING,))


class Oximeter:
    """Heart Rate, Pulse Oximeter and Battery services, probed directly with bleak."""

    def __init__(self, link: LocalLink, address: str) -> None:
        self.v = VirtualDevice(link, "Oximeter", address)
        self.hr_service, self.hr = heart_rate_service()
        self.plx_service, self.plx = pulse_oximeter_service()
        self.v.on_subscription(self._on_subscription)

    async def start(self) -> None:
        await self.v.start([self.hr_service, self.plx_service, battery_service(BATTERY_LEVEL)],
                           adv_data(self.v.name, (0x180D, 0x1822)))

    def _on_subscription(self, connection: Any, characteristic: Any, notify: bool,
                         _i: bool) -> None:
        value = {id(self.hr): HEART_RATE_VALUE, id(self.plx): PLX_VALUE}.get(id(characteristic))
        if notify and value is not None:
            asyncio.ensure_future(
                self.v.device.notify_subscriber(connection, characteristic, value)
            )


class CallButton:
    """A Shelly BLU Button style BTHome v2 advertiser (no connection)."""

    def __init__(self, link: LocalLink) -> None:
        self.v = VirtualDevice(link, "BTHome Button", sc.BUTTON_ADDRESS)
        self.sent: list[str] = []

    async def press_all(self, seconds_each: float) -> None:
        uuid = (0xFCD2).to_bytes(2, "little")
        for i, data in enumerate(sc.button_adverts()):
            adv = adv_data("SBBT-VM", (), uuid + data)
            # Connectable (ADV_IND) although a real button sends ADV_NONCONN_IND: bumble
            # 0.0.226's emulated controller passes only ADV_IND / ADV_EXT_IND up to its host, so
            # BlueZ would never see a non-connectable advertisement. The gateway never connects.
            if i == 0:
                await self.v.start([], adv, connectable=False)
            else:
                await self.v.readvertise(adv)
            self.sent.append(data.hex())
            self.v.note(f"advertising {data.hex()}")
            await asyncio.sleep(seconds_each)  # how long each press advertises
        await self.v.device.stop_advertising()
