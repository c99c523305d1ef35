"""A call button wired to the Raspberry Pi's GPIO, watched with gpiozero.

gpiozero runs its callbacks in its own thread; the press is time-stamped right there (the real
press time, before any queue) and handed to the asyncio loop with ``call_soon_threadsafe``.
The button pulls the pin to ground (``pull_up=True``, gpiozero's default for Button), with a
software debounce so one press is one event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from homevitals.gateway.errors import GatewayError
from homevitals.gateway.gatt import Deliver, RawValue
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import DeviceConfig, DeviceKind

__all__ = ["GpioButtons"]

logger = logging.getLogger(__name__)


class GpioButtons:
    """A watcher, beside the radio, for ``gpio_button`` devices."""

    def __init__(self, clock: Clock, *, pin_factory: Any = None,
                 bounce_time: float = 0.05) -> None:
        self.clock = clock
        self.pin_factory = pin_factory  # gpiozero's MockFactory in tests; None on the Pi
        self.bounce_time = bounce_time
        self.buttons: dict[str, Any] = {}

    async def run(self, devices: Sequence[DeviceConfig], deliver: Deliver) -> None:
        wired = [d for d in devices if d.kind == DeviceKind.GPIO_BUTTON]
        if not wired:
            return
        try:
            from gpiozero import Button  # optional: only a Pi with a wired button needs it
        except ImportError as exc:
            raise GatewayError("gpio_button devices need gpiozero: pip install"
                               " 'homevitals[gateway]' on the Raspberry Pi") from exc
        loop = asyncio.get_running_loop()
        try:
            for d in wired:
                button = Button(d.gpio_pin, pull_up=True, bounce_time=self.bounce_time,
                                pin_factory=self.pin_factory)
                button.when_pressed = self._on_press(d, loop, deliver)
                self.buttons[d.id] = button
                logger.info("%s: watching GPIO %s", d.id, d.gpio_pin)
            await asyncio.Event().wait()
        finally:
            for button in self.buttons.values():
                button.close()

    def _on_press(self, device: DeviceConfig, loop: asyncio.AbstractEventLoop,
                  deliver: Deliver) -> Any:
        def pressed() -> None:
            raw = RawValue(device.id, "gpio", b"\x01", self.clock.now())  # the press time
            loop.call_soon_threadsafe(deliver, raw)
        return pressed
