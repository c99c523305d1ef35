"""bumble virtual health devices: each one a bumble Controller on the shared LocalLink (the
virtual radio) hosting a bumble Device with the standard GATT services.

Layouts served (Bluetooth SIG): Blood Pressure 0x1810 (0x2A35 indicate, 0x2A49 feature), Glucose
0x1808 (0x2A18 notify, 0x2A34 notify, 0x2A51 feature, 0x2A52 Record Access Control Point write +
indicate), Heart Rate 0x180D (0x2A37 notify, 0x2A38 read), Pulse Oximeter 0x1822 (0x2A5F notify,
0x2A60 read), Battery 0x180F (0x2A19 read + notify); a BTHome v2 call button advertises
service data 0xFCD2 without connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.att import Attribute
from bumble.controller import Controller
from bumble.device import Device, DeviceConfiguration
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Service,
)
from bumble.link import LocalLink

Props = Characteristic.Properties
RW = Attribute.READABLE | Attribute.WRITEABLE
START = time.monotonic()


def _ad(kind: int, payload: bytes) -> bytes:
    return bytes([len(payload) + 1, kind]) + payload


def adv_data(name: str, service_uuids: tuple[int, ...] = (), service_data: bytes = b"") -> bytes:
    """Flags (LE general discoverable, no BR/EDR), 16-bit service UUIDs, name, service data."""
    data = _ad(0x01, b"\x06")
    if service_uuids:
        data += _ad(0x03, b"".join(u.to_bytes(2, "little") for u in service_uuids))
    if service_data:
        data += _ad(0x16, service_data)
    return data + _ad(0x09, name.encode())


def char(uuid: int, props: Any, value: bytes = b"", perms: Any = Attribute.READABLE,
         write: Callable[[Any, bytes], Any] | None = None) -> Characteristic[Any]:
    val: Any = CharacteristicValue(write=write, read=lambda _c: value) if write else value
    return Characteristic(f"{uuid:04X}", props, perms, val)


class VirtualDevice:
    """One peripheral on the virtual radio; ``log`` records what happened to it, with times."""

    def __init__(self, link: LocalLink, name: str, address: str) -> None:
        self.name, self.address = name, address
        self.controller = Controller(name, link=link)
        config = DeviceConfiguration(
            name=name, address=hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS),
            advertising_interval_min=100, advertising_interval_max=100,
        )
        self.device = Device.from_config_with_hci(config, self.controller, self.controller)
        self.log: list[tuple[float, str]] = []
        self.connection: Any = None
        self.connected = asyncio.Event()
        self.device.on("connection", self._on_connection)

    def note(self, what: str) -> None:
        self.log.append((round(time.monotonic() - START, 3), what))

    def _on_connection(self, connection: Any) -> None:
        self.connection = connection
        self.connected.set()
        self.note("connected")

        def on_disconnection(reason: int) -> None:
            self.connection = None
            self.connected.clear()
            self.note(f"disconnected 0x{reason:02X}")

        connection.on("disconnection", on_disconnection)
        connection.on("pairing", lambda *_a: self.note("paired"))
        connection.on("encryption_change", lambda *_a: self.note("encrypted"))

    def on_subscription(self, callback: Callable[[Any, Any, bool, bool], None]) -> None:
        def handler(connection: Any, characteristic: Any, notify: bool, indicate: bool) -> None:
            self.note(f"subscribed {characteristic.uuid} notify={notify} indicate={indicate}")
            callback(connection, characteristic, notify, indicate)

        self.device.on("characteristic_subscription", handler)

    async def start(self, services: list[Service], adv: bytes, connectable: bool = True) -> None:
        self.device.add_services(services)
        self.device.advertising_data = adv
        await self.device.power_on()
        await self.advertise(connectable)

    async def advertise(self, connectable: bool = True) -> None:
        from bumble.device import AdvertisingType

        # Always ADV_IND (see CallButton); ``connectable`` only says whether to re-advertise
        # after a disconnection.
        await self.device.start_advertising(
            advertising_type=AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE,
            auto_restart=connectable,
        )

    async def readvertise(self, adv: bytes, connectable: bool = False) -> None:
        await self.device.stop_advertising()
        self.device.advertising_data = adv
        await self.advertise(connectable)

    def require_encryption_to_subscribe(self, characteristic: Characteristic[Any]) -> None:
        """Make the CCCD of ``characteristic`` writable only on an encrypted link, as bonded
        health devices do: BlueZ must pair before it can subscribe."""
        for attribute in self.device.gatt_server.attributes:
            inside = characteristic.handle < attribute.handle <= characteristic.end_group_handle
            if attribute.type == GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR and inside:
                attribute.permissions |= Attribute.WRITE_REQUIRES_ENCRYPTION
                return
        raise RuntimeError(f"no CCCD for {characteristic.uuid}")


def battery_service(level: int) -> Service:
    return Service("180F", [char(0x2A19, Props.READ | Props.NOTIFY, bytes([level]))])


def heart_rate_service() -> tuple[Service, Characteristic[Any]]:
    measurement = char(0x2A37, Props.NOTIFY)
    return Service("180D", [measurement, char(0x2A38, Props.READ, b"\x01")]), measurement


def pulse_oximeter_service() -> tuple[Service, Characteristic[Any]]:
    continuous = char(0x2A5F, Props.NOTIFY)
    features = char(0x2A60, Props.READ, b"\x00\x00")
    return Service("1822", [continuous, features]), continuous


def blood_pressure_service() -> tuple[Service, Characteristic[Any]]:
    measurement = char(0x2A35, Props.INDICATE)
    return Service("1810", [measurement, char(0x2A49, Props.READ, b"\x00\x00")]), measurement
