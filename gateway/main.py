"""The gateway daemon's one entry point: runs ``GatewayApp`` (gateway/app.py) under the runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from homevitals.gateway.app import GatewayApp
from homevitals.gateway.gatt import Radio
from homevitals.infra.runtime import Runner
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config

__all__ = ["run_gateway"]


def run_gateway(
    cfg: Config,
    radio: Radio,
    clock: Clock,
    *,
    driver: Callable[[GatewayApp], Coroutine[Any, Any, object]] | None = None,
) -> None:
    """Daemon entry: SIGTERM/SIGINT stop the radio, flush the queue and announce offline.

    ``driver`` (a scripted household, ``--simulate demo``) runs beside the gateway, which then
    stops when the driver is done: it flushes its queue and exits."""

    async def main() -> None:
        app = GatewayApp(cfg, radio, clock)

        async def run(stop: asyncio.Event) -> None:
            if driver is None:
                await app.run(stop)
                return
            task = asyncio.create_task(app.run(stop), name="gateway")
            play: asyncio.Task[object] = asyncio.create_task(driver(app), name="driver")
            try:  # a signal (or a failed radio) ends the gateway, and then the driver too
                await asyncio.wait({task, play}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.set()
                play.cancel()
                outcome = (await asyncio.gather(play, return_exceptions=True))[0]
                await task
            if isinstance(outcome, Exception):
                raise outcome  # what the driver raised

        await Runner(app, app.gcfg.metrics, app.metrics).run_async(run)

    asyncio.run(main())
