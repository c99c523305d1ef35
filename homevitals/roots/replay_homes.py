"""The homes of ``homevitals replay``: each home's gateway over its household's scripted radio.

Composition root (part of ``replay``). Each home has one ``ScriptedRadio`` for the whole replay -
its devices keep their records across a gateway's restart - and a ``GatewayApp`` that is started,
stopped, cut off from the network (a dead port) or killed as the scenario's faults say. The
gateway's ``Central`` connects to the devices, downloads the glucose meter over RACP and reads
the CGM's session start exactly as on the Pi.

What each gateway queued is counted here, so that the pipeline knows how many messages to wait
for before the clock moves on (``Pipeline.expect``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from homevitals.gateway.app import GatewayApp
from homevitals.infra.embedded import free_port
from homevitals.roots.replay_faults import Duplication
from homevitals.roots.scripted_gateway import settled
from homevitals.simulators.devices.scripted import ScriptedRadio
from homevitals.simulators.timeline import TimedValue
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, GatewayConfig
from homevitals.vocab.errors import HomevitalsError

if TYPE_CHECKING:
    from homevitals.roots.replay import Pipeline  # the same composition root, which imports us

__all__ = ["Home", "Homes"]

logger = logging.getLogger(__name__)


@dataclass
class Home:
    id: str
    radio: ScriptedRadio
    app: GatewayApp | None = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None
    online: bool = False
    queued: Counter[str] = field(default_factory=Counter)
    counted: tuple[int, int] = (0, 0)  # the app's (readings + events, rejects) counted so far


class Homes:
    """The gateways, and what their networks and the broker allow them."""

    def __init__(self, cfg: Config, clock: SimulatedClock, workdir: Path, pipeline: Pipeline,
                 duplication: Duplication) -> None:
        self.cfg, self.clock, self.workdir, self.pipeline = cfg, clock, workdir, pipeline
        self.duplication = duplication
        self.homes = {h.id: Home(h.id, ScriptedRadio(h, clock)) for h in cfg.homes}
        self.offline: Counter[str] = Counter()
        self.broker_up = True
        self.dead_port = free_port()  # nothing listens here: a gateway whose network is down
        self.crashed: dict[str, bool] = {}  # home -> its last will is due when it is killed
        self.delivered = 0

    async def send(self, tv: TimedValue) -> None:
        """A device hands a value over; waits until the gateway has taken it."""
        h = self.homes[tv.home]
        if h.app is None:
            logger.warning("%s: gateway down, value from %s lost", tv.home, tv.value.device)
            return
        h.radio.send(tv.value)
        self.delivered += 1
        if not await settled(h.app.central, h.radio):
            self.pipeline.stalls += 1
        self._account(h)

    def _account(self, h: Home) -> None:
        """What ``h``'s gateway queued since last counted: expected at ingest if it is online."""
        assert h.app is not None
        g = h.app.gateway
        now = (g.counts["readings"] + g.counts["events"], sum(g.rejects.values()))
        data, dead = now[0] - h.counted[0], now[1] - h.counted[1]
        h.counted = now
        h.queued["data"] += data
        h.queued["deadletter"] += dead
        if h.online:
            copies = 2 if self.duplication.on(h.id) else 1
            self.pipeline.expect["data"] += data * copies
            self.pipeline.expect["deadletter"] += dead

    def heartbeats(self) -> None:
        for h in self.homes.values():
            if h.online and h.app is not None:
                app = h.app
                beat = wire.encode(app.heartbeat())
                app.publisher.publish_direct(app.topics.heartbeat(h.id), beat)
                self.pipeline.expect["heartbeat"] += 1

    async def crash(self, what: str, home: str) -> None:
        """kill -9 of a home's gateway: ``freeze`` stops its publishing so the values of this
        moment stay queued on disk, ``kill`` drops its connection without a word (the broker
        publishes the last will), ``restart`` starts it again on the same queue file."""
        h = self.homes[home]
        if what == "freeze" and h.app is not None:
            self.crashed[h.id] = h.online
            if h.online:
                h.queued["data_seen"] = h.queued["data"]
                h.queued["deadletter_seen"] = h.queued["deadletter"]
                self.pipeline.gateways.remove(h.app)
            h.online = False
            h.app.publisher.pump.set_connected(False)
        elif what == "kill" and h.app is not None and h.stop is not None and h.task is not None:
            await asyncio.to_thread(h.app.publisher.kill)
            h.stop.set()
            await h.task
            if self.crashed.get(h.id):
                self.pipeline.expect["status"] += 1  # the will: "offline"
            h.app = None
            await asyncio.to_thread(self.pipeline.settle)
        elif what == "restart":
            self.crashed.pop(h.id, None)
            await self.switch(h, self.broker_up and self.offline[h.id] == 0)

    async def reconcile(self) -> None:
        for h in self.homes.values():
            if h.id in self.crashed:
                continue  # down until its restart step
            want = self.broker_up and self.offline[h.id] == 0
            if want != h.online:
                await self.switch(h, want)

    async def switch(self, h: Home, online: bool) -> None:
        """(Re)start a home's gateway connected, or with its network down (a dead port)."""
        if h.app is not None:
            await self.stop_app(h, drain=10.0 if h.online else 0.0)
        port = self.cfg.mqtt.port if online else self.dead_port
        gcfg = GatewayConfig(
            home=h.id,
            transport="simulated",
            heartbeat_seconds=1e9,
            queue_path=str(self.workdir / f"gateway-{h.id}.sqlite"),
        )
        cfg = self.cfg.model_copy(
            update={"gateway": gcfg, "mqtt": self.cfg.mqtt.model_copy(update={"port": port})}
        )
        h.stop = asyncio.Event()
        h.app, h.counted = GatewayApp(cfg, h.radio, self.clock), (0, 0)
        h.task = asyncio.create_task(h.app.run(h.stop, drain_seconds=0.0 if not online else 10.0))
        # Connected to every device (whatever they held is queued now, counted while offline).
        if not await settled(h.app.central, h.radio):
            self.pipeline.stalls += 1
        self._account(h)
        h.online = online
        if online:
            if not await asyncio.to_thread(h.app.publisher.pump.connected.wait, 30.0):
                raise HomevitalsError(f"gateway {h.id} did not connect to the embedded broker")
            self.pipeline.gateways.append(h.app)
            self.pipeline.expect["status"] += 1  # "online", published on connect
            # What the home queued while it was offline is published now.
            self.pipeline.expect["data"] += h.queued["data"] - h.queued["data_seen"]
            self.pipeline.expect["deadletter"] += (
                h.queued["deadletter"] - h.queued["deadletter_seen"]
            )
        await asyncio.to_thread(self.pipeline.settle)

    async def stop_app(self, h: Home, drain: float) -> None:
        assert h.app is not None and h.stop is not None and h.task is not None
        connected = h.online and h.app.publisher.pump.connected.is_set()
        if h.online:
            h.queued["data_seen"] = h.queued["data"]
            h.queued["deadletter_seen"] = h.queued["deadletter"]
        h.stop.set()
        await h.task
        if h.app in self.pipeline.gateways:
            self.pipeline.gateways.remove(h.app)
        if connected:
            self.pipeline.expect["status"] += 1  # the clean stop announces "offline"
        h.app, h.online = None, False

    async def stop_all(self) -> None:
        for h in self.homes.values():
            if h.app is not None:
                await self.stop_app(h, drain=10.0)
