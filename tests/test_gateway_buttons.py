"""Call buttons: BTHome v2 adverts (de-duplicated by packet id), an iTag that notifies 0xFFE1,
and a button wired to the Pi's GPIO (gpiozero with its MockFactory pins). A press carries its
real press time, also when it is delivered late."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway_helpers import Rig, home
from gpiozero.pins.mock import MockFactory

from homevitals.gateway.gatt import RawValue
from homevitals.gateway.gpio_button import GpioButtons
from homevitals.simulators.devices import BthomeButton, ItagButton, SimulatedRadio
from homevitals.vocab.clock import SystemClock

BTHOME = {"id": "button-1", "kind": "call_button", "address": "C0:11:22:33:44:03"}
ITAG = {"id": "itag-1", "kind": "itag_button", "address": "FF:FF:11:22:33:44"}


def test_bthome_press_is_one_event_however_often_it_is_advertised(tmp_path: Path) -> None:
    button = BthomeButton(BTHOME["address"], battery=77)
    radio = SimulatedRadio([button], advert_interval=0.02)
    rig = Rig(tmp_path / "q.sqlite", home(BTHOME), radio)
    button.press()
    asyncio.run(rig.run_until(lambda: rig.gateway.counts["duplicate_adverts"] >= 5))
    button.press("double_press")
    asyncio.run(rig.run_until(lambda: len(rig.events()) == 2))
    events = rig.events()
    assert [e.detail for e in events] == ["press", "double_press"]
    assert rig.gateway.battery["button-1"] == 77
    rig.close()


def test_bthome_press_delivered_late_keeps_its_own_time_stamp(tmp_path: Path) -> None:
    # BTHome object 0x50 "timestamp" (seconds, UTC): the press happened 40 minutes before the
    # gateway heard about it.
    rig = Rig(tmp_path / "q.sqlite", home(BTHOME), SimulatedRadio([]))
    pressed = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    data = bytes([0x44, 0x00, 0x09, 0x3A, 0x01, 0x50]) + int(pressed.timestamp()).to_bytes(4,
                                                                                          "little")
    rig.gateway.deliver(RawValue("button-1", "bthome", data, pressed + timedelta(minutes=40)))
    (event,) = rig.events()
    assert event.time == pressed and event.received_at == pressed + timedelta(minutes=40)
    # Without a time stamp, the press time is when the radio heard it, not when it is published.
    heard = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    rig.gateway.deliver(RawValue("button-1", "bthome", bytes.fromhex("44000a3a01"), heard))
    assert rig.events()[1].time == heard
    rig.close()


def test_itag_press_while_connected(tmp_path: Path) -> None:
    tag = ItagButton(ITAG["address"])
    rig = Rig(tmp_path / "q.sqlite", home(ITAG), SimulatedRadio([tag]))

    async def scenario() -> None:
        await rig.run_until(lambda: tag.session is not None and rig.gateway.battery != {})
        before = datetime.now(UTC)

        async def press_soon() -> None:
            await asyncio.sleep(0.05)  # the press comes while the run is going (an order)
            assert tag.press()

        press = asyncio.create_task(press_soon())
        await rig.run_until(lambda: len(rig.events()) == 1)
        await press
        assert before <= rig.events()[0].time <= datetime.now(UTC)

    asyncio.run(scenario())
    assert rig.events()[0].detail == "press" and rig.gateway.battery["itag-1"] == 64
    rig.close()


def test_gpio_button_press_with_gpiozero_mock_pins(tmp_path: Path) -> None:
    factory = MockFactory()
    device = {"id": "wall-button", "kind": "gpio_button", "gpio_pin": 17}
    rig = Rig(tmp_path / "q.sqlite", home(device), SimulatedRadio([]))
    watcher = GpioButtons(SystemClock(), pin_factory=factory, bounce_time=0.01)
    pressed_at: list[datetime] = []

    async def scenario() -> None:
        task = asyncio.create_task(watcher.run(rig.home.devices, rig.gateway.deliver))
        while "wall-button" not in watcher.buttons:
            await asyncio.sleep(0.01)  # a wait-until poll
        pin = factory.pin(17)
        pressed_at.append(datetime.now(UTC))
        pin.drive_low()  # pulled up; a press connects the pin to ground
        await asyncio.sleep(0.05)  # the press lasts 50 ms (gpiozero debounces on the wall)
        pin.drive_high()
        deadline = time.monotonic() + 5
        while not rig.events() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # a wait-until poll
        task.cancel()

    asyncio.run(scenario())
    (event,) = rig.events()
    assert event.device == "wall-button" and event.detail == "press" and event.raw == "01"
    assert pressed_at[0] <= event.time <= pressed_at[0] + timedelta(seconds=1)
    rig.close()
