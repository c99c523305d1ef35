"""Helpers for the gateway tests: a home config, the gateway service over a real durable queue
(SQLite on disk), and running the connection manager against simulated peripherals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homevitals.gateway.central import Central
from homevitals.gateway.gatt import Radio
from homevitals.gateway.service import Gateway
from homevitals.infra.outbox import DurableQueue
from homevitals.vocab import wire
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import DeviceConfig, HomeConfig, parse_config
from homevitals.vocab.readings import Event, Reading
from homevitals.vocab.topics import Topics

HOME = "home-test"
ZONE = "Europe/Ljubljana"


def home(*devices: dict[str, Any]) -> HomeConfig:
    cfg = parse_config(
        "homes:\n  - id: home-test\n    timezone: Europe/Ljubljana\n    patients:\n"
        "      - {id: ana, name: Ana, care_team: [{name: Dr. K, role: family_doctor,"
        " phone: '+15550100001'}]}\n"
    )
    return cfg.homes[0].model_copy(
        update={"devices": [DeviceConfig(patient="ana", **d) for d in devices]})


class Rig:
    """The gateway service on a queue file, and a Central over ``radio``."""

    def __init__(self, path: Path, home_cfg: HomeConfig, radio: Radio, *,
                 racp_timeout: float = 5.0) -> None:
        self.queue = DurableQueue(path)
        self.gateway = Gateway(home_cfg, self.queue, Topics(), SystemClock())
        self.central = Central(radio, self.gateway, SystemClock(), connect_timeout=1.0,
                               racp_timeout=racp_timeout, min_backoff=0.05, max_backoff=0.2)
        self.home = home_cfg

    def messages(self) -> list[Any]:
        return [wire.decode(m.payload) for m in self.queue.peek(100_000)]

    def readings(self) -> list[Reading]:
        return [m for m in self.messages() if isinstance(m, Reading)]

    def glucose(self) -> list[Reading]:
        return [r for r in self.readings() if r.measurement.value == "glucose"]

    def events(self) -> list[Event]:
        return [m for m in self.messages() if isinstance(m, Event)]

    def rejects(self) -> list[dict[str, Any]]:
        return [m for m in self.messages() if isinstance(m, wire.Reject)]

    async def run_until(self, done: Callable[[], bool], timeout: float = 15.0) -> None:
        task = asyncio.create_task(self.central.run(self.home.devices, self.gateway.deliver))
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not done():
                if task.done():
                    task.result()
                    raise AssertionError("the connection manager ended")
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"timed out after {timeout} s; have"
                                         f" {len(self.glucose())} glucose readings,"
                                         f" rejects {dict(self.gateway.rejects)}")
                await asyncio.sleep(0.02)  # a wait-until poll
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        self.queue.close()
