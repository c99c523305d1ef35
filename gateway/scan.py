"""``homevitals scan``: nearby devices and the health services they offer, as config lines.

The kind is told by the services a device advertises (Bluetooth SIG assigned numbers, "GATT
Services"): Glucose 0x1808, Blood Pressure 0x1810, Continuous Glucose Monitoring 0x181F, Heart
Rate 0x180D, Pulse Oximeter 0x1822, Health Thermometer 0x1809, Weight Scale 0x181D; an iTag
advertises its vendor service 0xFFE0; a BTHome button sends service data for 0xFCD2. Many
devices advertise no service at all until a button is pressed: press it while scanning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime

from homevitals.gateway.gatt import Advert, AdvertData, Radio, short_uuid

__all__ = ["KIND_BY_SERVICE", "bleak_adverts", "describe", "radio_adverts"]

KIND_BY_SERVICE = {
    "1808": "glucose_meter",
    "1810": "blood_pressure",
    "181F": "cgm",
    "180D": "heart_rate",
    "1822": "pulse_oximeter",
    "1809": "thermometer",
    "181D": "scale",
    "FFE0": "itag_button",
    "FCD2": "call_button",
}


def _kind(advert: Advert) -> str | None:
    for uuid in (*advert.service_uuids, *advert.service_data):
        kind = KIND_BY_SERVICE.get(short_uuid(uuid))
        if kind is not None:
            return kind
    return None


def describe(adverts: Iterable[Advert]) -> str:
    """YAML ``devices:`` lines for the health devices seen (strongest signal first)."""
    best: dict[str, Advert] = {}
    for a in adverts:
        seen = best.get(a.address)
        if seen is None or (a.rssi or -999) > (seen.rssi or -999) or not seen.service_data:
            best[a.address] = a
    found = [(a, k) for a in best.values() if (k := _kind(a)) is not None]
    found.sort(key=lambda ak: -(ak[0].rssi or -999))
    if not found:
        return ("# no health devices seen: wake them (take a measurement, press the button)"
                " and scan again\n")
    lines = ["devices:"]
    counts: dict[str, int] = {}
    for advert, kind in found:
        counts[kind] = counts.get(kind, 0) + 1
        ident = f"{kind.replace('_', '-')}-{counts[kind]}"
        services = ",".join(sorted({short_uuid(u) for u in advert.service_uuids}
                                   | {short_uuid(u) for u in advert.service_data}))
        lines.append(f'  - {{id: {ident}, kind: {kind}, patient: CHANGE-ME,'
                     f' address: "{advert.address}"}}'
                     f"  # {advert.name or 'unnamed'}, RSSI {advert.rssi}, services {services}")
    return "\n".join(lines) + "\n"


async def radio_adverts(radio: Radio, seconds: float) -> list[Advert]:
    seen: list[Advert] = []
    task = asyncio.create_task(radio.scan(seen.append))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return seen


async def bleak_adverts(seconds: float) -> list[Advert]:
    """One scan with bleak (``BleakScanner.discover(return_adv=True)``)."""
    from bleak import BleakScanner  # only the Pi needs bleak

    from homevitals.gateway.bleak_transport import radio_unavailable

    try:
        found = await BleakScanner.discover(timeout=seconds, return_adv=True)
    except Exception as exc:  # noqa: BLE001 - sorted by radio_unavailable, else re-raised
        raise (radio_unavailable(exc) or exc) from exc
    now = datetime.now(UTC)
    return [
        AdvertData(address=str(device.address), received_at=now, name=adv.local_name,
                   rssi=adv.rssi, service_uuids=tuple(short_uuid(u) for u in adv.service_uuids),
                   service_data={short_uuid(u): bytes(v) for u, v in adv.service_data.items()})
        for device, adv in found.values()
    ]
