"""BleakRadio's own bookkeeping, without a radio: when a device that hung up may be called again.

The whole bleak path runs against BlueZ in the BLE VM (tests/test_ble_vm.py); this checks the
rule that came out of it in isolation: an advertisement within ``SETTLE_SECONDS`` of the end of a
connection (a device's last breath before it sleeps) does not start a connection."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from homevitals.gateway import bleak_transport
from homevitals.gateway.bleak_transport import BleakRadio
from homevitals.vocab.config import DeviceConfig

ADDRESS = "C0:11:22:33:44:02"
CUFF = DeviceConfig(id="bp-1", kind="blood_pressure", patient="ana", address=ADDRESS.lower())


async def _returns(radio: BleakRadio, within: float) -> bool:
    try:
        await asyncio.wait_for(radio.advertising(CUFF), within)
    except TimeoutError:
        return False
    return True


def test_first_advertisement_is_enough_to_connect() -> None:
    async def story() -> bool:
        radio = BleakRadio()
        waiting = asyncio.ensure_future(_returns(radio, 1.0))
        await asyncio.sleep(0.05)  # the waiter starts waiting first (an order, not a timer)
        radio.sighted(SimpleNamespace(address=ADDRESS))
        return await waiting

    assert asyncio.run(story())


def test_an_advertisement_right_after_hanging_up_is_not_a_call_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]  # BleakRadio's monotonic clock, moved by the test instead of slept through
    monkeypatch.setattr(bleak_transport, "time", SimpleNamespace(monotonic=lambda: now[0]))

    async def story() -> tuple[bool, bool]:
        radio = BleakRadio()
        radio._ended[ADDRESS] = now[0]  # noqa: SLF001 - a connection just ended
        radio.sighted(SimpleNamespace(address=ADDRESS))  # its trailing advertisement
        trailing = await _returns(radio, 0.3)
        waiting = asyncio.ensure_future(_returns(radio, 2.0))
        await asyncio.sleep(0)  # the waiter starts waiting
        now[0] += bleak_transport.SETTLE_SECONDS + 0.1  # past the settle time
        radio.sighted(SimpleNamespace(address=ADDRESS))  # it advertises again: call it
        return trailing, await waiting

    assert asyncio.run(story()) == (False, True)
