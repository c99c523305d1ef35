"""A gateway over a scripted household's radio, driven in simulated time.

Composition root (like ``cli``, ``demo`` and ``replay``): it wires the gateway's ``GatewayApp``
(whose ``Central`` connects, downloads and reconnects exactly as on the Pi) to a
``ScriptedRadio`` from the simulators, and moves the simulated clock only once the gateway has
taken everything the devices handed over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from homevitals.gateway.app import GatewayApp
from homevitals.gateway.central import Central
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, DeviceKind

__all__ = ["play", "run_script", "settled", "with_addresses"]

logger = logging.getLogger(__name__)

SETTLE_SECONDS = 30.0  # wall clock, per step: a stall is logged, never fatal


def with_addresses(cfg: Config) -> Config:
    """``cfg`` with a BLE address for every radio device that has none (scenario files need
    not name them): a locally administered address derived from the home and device ids."""
    homes = []
    for home in cfg.homes:
        devices = [
            d if d.address or d.kind == DeviceKind.GPIO_BUTTON else d.model_copy(
                update={"address": _address(home.id, d.id)})
            for d in home.devices
        ]
        homes.append(home.model_copy(update={"devices": devices}))
    return cfg.model_copy(update={"homes": homes})


def _address(home: str, device: str) -> str:
    digest = hashlib.sha256(f"{home}\x1f{device}".encode()).digest()[:5]
    return ":".join(f"{b:02X}" for b in (0xC2, *digest))  # 0b11 top bits: static random


async def settled(central: Central, radio: ScriptedRadio,
                  timeout: float = SETTLE_SECONDS) -> bool:
    """Wait until every device has handed over what it holds and the gateway's connection
    manager has set every connection up (subscribed, read, downloaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await radio.settled(deadline - loop.time()):
        if central.idle.is_set():
            return True
        try:
            await asyncio.wait_for(central.idle.wait(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            break
    logger.warning("the gateway did not settle within %.0f s (setting up %s)", timeout,
                   sorted(central.in_setup) or "nothing")
    return False


async def play(
    app: GatewayApp,
    radio: ScriptedRadio,
    clock: SimulatedClock,
    script: Sequence[ScheduledValue],
    after_each: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Hand the script's values over in time order, the clock jumping to each; returns how many
    steps did not settle."""
    stalls = 0 if await settled(app.central, radio) else 1
    for value in sorted(script, key=lambda v: v.at):
        if value.at > clock.now():
            clock.set(value.at)
        radio.send(value)
        stalls += 0 if await settled(app.central, radio) else 1
        if after_each is not None:
            await after_each()
    return stalls


async def run_script(
    app: GatewayApp,
    radio: ScriptedRadio,
    clock: SimulatedClock,
    script: Sequence[ScheduledValue],
    after_each: Callable[[], Awaitable[None]] | None = None,
    *,
    drain_seconds: float = 30.0,
) -> int:
    """Run ``app`` while the script plays, then stop it (it drains its queue for up to
    ``drain_seconds``); returns how many steps did not settle."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop, drain_seconds=drain_seconds), name="gateway")
    try:
        return await play(app, radio, clock, script, after_each)
    finally:
        stop.set()
        await task
