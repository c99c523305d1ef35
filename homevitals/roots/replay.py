"""``homevitals replay SCENARIO --out DIR``: a scenario through the pipeline in simulated time.

Composition root (like ``cli`` and ``demo``): the four daemons' own App classes run in one process
on an embedded broker and the embedded store, one gateway per home (``replay_homes``). Only the
radio (a ``ScriptedRadio`` per home: the household's devices, which each gateway's ``Central``
connects to and downloads from as on the Pi), the clock (``SimulatedClock``) and the notifier
(console, into memory) differ from production.

Simulated time means something here: the clock never runs ahead of the pipeline. After every
value, heartbeat, scheduler tick or fault, the driver waits (bounded) until the pipeline is quiet
- every gateway queue flushed, every message seen by ingest and rules, ingest's backlog written,
the rules' outbox of decisions acknowledged and seen by alerts, no SMS due - before it moves the
clock on (``Pipeline.settle``). So each stage reads the clock at the simulated moment the value
belongs to, and the same scenario and seed give the same files, byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.gateway.app import GatewayApp
from homevitals.infra.embedded import EmbeddedBroker
from homevitals.ingest.main import build_store
from homevitals.ingest.service import IngestService
from homevitals.roots.replay_faults import Duplication
from homevitals.roots.replay_homes import Homes
from homevitals.roots.replay_output import Collected, collect, write_outputs
from homevitals.roots.scripted_gateway import with_addresses
from homevitals.rules.app import RulesApp
from homevitals.simulators.scenario import LoadedScenario, load_scenario
from homevitals.simulators.timeline import (
    Outage,
    ScriptedReply,
    TimedValue,
    Timeline,
    build_timeline,
)
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, StoreKind
from homevitals.vocab.errors import HomevitalsError
from homevitals.vocab.topics import Topics

__all__ = ["Pipeline", "run_replay", "server_config"]

logger = logging.getLogger(__name__)

SETTLE_SECONDS = 30.0  # per step; a stall is logged and counted, never fatal


def server_config(cfg: Config, workdir: Path, port: int, protocol: str) -> Config:
    """``cfg`` pointed at the embedded broker, with every database in ``workdir``.

    Wall-clock timers are switched off (the rules' and the alerts' timer threads): the replay
    driver takes their passes in simulated time instead. Ingest writes each message at once
    instead of waiting to fill a batch."""
    store = cfg.store
    if store.kind == StoreKind.SQLITE:
        store = store.model_copy(update={"path": str(workdir / "store.sqlite")})
    return cfg.model_copy(
        update={
            "mqtt": cfg.mqtt.model_copy(
                update={"host": "127.0.0.1", "port": port, "protocol": protocol}
            ),
            "store": store,
            "ingest": cfg.ingest.model_copy(update={"batch_seconds": 0.001}),
            "rules": cfg.rules.model_copy(
                update={
                    "state_path": str(workdir / "rules-state.sqlite"),
                    "tick_seconds": 0.0,
                }
            ),
            "alerts": cfg.alerts.model_copy(
                update={
                    "outbox_path": str(workdir / "alerts-ledger.sqlite"),
                    "notifier": "console",
                    "sweep_seconds": 1e9,
                    "webhook": None,
                }
            ),
        }
    )


class _Seen:
    """Counts what a stage has finished handling, by topic kind (paho thread only writes)."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.counts: Counter[str] = Counter()

    def wrap(self, handler: Callable[..., None]) -> Callable[..., None]:
        def counted(*args: Any) -> None:
            handler(*args)
            msg: mqtt.MQTTMessage = args[-1]
            parsed = self.topics.parse(msg.topic)
            self.counts[parsed.kind if parsed else "other"] += 1

        return counted


class Pipeline:
    """The server side (ingest, rules, alerts) in one process, and when it is quiet."""

    def __init__(
        self, cfg: Config, clock: SimulatedClock, sms: TextIO, seed: int | None = None
    ) -> None:
        self.cfg, self.clock = cfg, clock
        topics = Topics(cfg.mqtt.topic_prefix)
        self.store = build_store(cfg.store)
        self.ingest = IngestService(cfg, self.store)
        self.rules = RulesApp(cfg, clock, timer_thread=False)
        # Acknowledgement codes from the scenario's seed, so the SMS texts are reproducible.
        codes = None if seed is None else random.Random(f"ack-codes\x1f{seed}").randrange
        # The alerts' timer takes its passes at the driver's ticks (``tick``), after everything
        # else of that moment, as the scenarios' expectations are written: the same code as the
        # timer thread's (``DueWorker.step``), on the simulated clock.
        self.alerts = AlertsApp(cfg, ConsoleNotifier(sms), clock, ack_codes=codes,
                                timer_thread=False)
        self.ingest_seen, self.rules_seen, self.alerts_seen = (_Seen(topics) for _ in range(3))
        # Counting wrappers around each stage's message handler: the composition root's view of
        # "handled", without a hook in the stages themselves.
        on_message = self.ingest.client.on_message
        assert on_message is not None  # IngestService sets it in its constructor
        self.ingest.client.on_message = self.ingest_seen.wrap(on_message)
        self.rules.subscriber.handle = self.rules_seen.wrap(self.rules.subscriber.handle)
        self.alerts.subscriber.handle = self.alerts_seen.wrap(self.alerts.subscriber.handle)
        self.expect: Counter[str] = Counter()  # reading+event, deadletter, status, heartbeat
        self.gateways: list[GatewayApp] = []  # the ones connected to the broker
        self.stalls = 0

    def start(self) -> None:
        self.ingest.start()
        self.rules.start()
        self.alerts.start()
        self.wait_subscribed()

    def wait_subscribed(self, seconds: float = 60.0) -> None:
        events = [
            self.ingest.subscribed,
            self.rules.subscriber.subscribed,
            self.alerts.subscriber.subscribed,
        ]
        deadline = time.monotonic() + seconds
        for e in events:
            if not e.wait(max(0.0, deadline - time.monotonic())):
                raise HomevitalsError(f"the pipeline did not subscribe within {seconds:.0f} s")

    def stop(self) -> None:
        self.alerts.stop()
        self.rules.stop()
        self.ingest.stop()
        self.store.close()

    def busy(self) -> str | None:
        """What the pipeline is still doing, or None when it is quiet."""
        for g in self.gateways:
            if len(g.queue) or g.publisher.inflight:
                return f"gateway {g.home.id} queue {len(g.queue)}"
        i, r, a, e = (
            self.ingest_seen.counts,
            self.rules_seen.counts,
            self.alerts_seen.counts,
            self.expect,
        )
        if i["reading"] + i["event"] < e["data"] or i["deadletter"] < e["deadletter"]:
            return "ingest has not received everything"
        if not self.ingest.backlog.empty() or self.ingest.written < sum(i.values()):
            return "ingest backlog not written"
        if r["reading"] + r["event"] < e["data"] or r["status"] < e["status"]:
            return "rules have not seen everything"
        if r["heartbeat"] < e["heartbeat"]:
            return "rules have not seen every heartbeat"
        if len(self.rules.outbox) or sum(a.values()) < self.rules.pump.acked:
            return "alert decisions in flight"
        if self.alerts.ledger.due(self.clock.now()):
            return "SMS due"
        if self.alerts.budget.digest_due(self.clock.now()):
            return "digest SMS due"
        return None

    def settle(self, seconds: float = SETTLE_SECONDS) -> bool:
        """Wait until quiet twice in a row (a counter may trail its queue by a statement)."""
        deadline, delay, quiet = time.monotonic() + seconds, 0.0002, 0
        while quiet < 2:
            why = self.busy()
            quiet = quiet + 1 if why is None else 0
            if why is not None and time.monotonic() > deadline:
                self.stalls += 1
                logger.warning(
                    "pipeline not quiet after %.0f s at %s: %s", seconds, self.clock.now(), why
                )
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005) if why is not None else 0.0002
        return True

    def tick(self) -> None:
        """Scheduled work at the simulated now: missing data and silent gateways (one pass of the
        rules' timer), escalations and reminders (one pass of the alerts' timer): each the same
        code as the timer thread's (``DueWorker.step``), on the simulated clock."""
        self.rules.timers.step()
        self.alerts.timers.step()

    def reply(self, n: int, phone: str, text: str) -> tuple[str, str | None]:
        """A care-team SMS reply, as the Twilio webhook hands it over once its signature checked.

        ``{code}`` in the text stands for the code of the newest open alert this phone was told
        about (codes are drawn when an alert opens, so a scenario cannot know them)."""
        if "{code}" in text:
            told = [
                h
                for h in self.alerts.ledger.history()
                if h.get("recipient") == phone
                and h.get("sent_at")
                and h.get("alert_state") not in ("resolved",)
            ]
            newest = max(told, key=lambda h: str(h["sent_at"]), default=None)
            text = text.replace("{code}", str(newest.get("ack_code") or "") if newest else "")
        params = {"MessageSid": f"SM{n:032d}", "From": phone, "Body": text}
        return text, self.alerts.on_inbound(params)


class Replay:
    def __init__(
        self, sc: LoadedScenario, tl: Timeline, workdir: Path, broker: str, sms: TextIO
    ) -> None:
        self.sc, self.tl, self.workdir, self.broker_kind = sc, tl, workdir, broker
        self.clock = SimulatedClock(tl.start)
        self.sms = sms
        self.replies: list[tuple[ScriptedReply, str | None]] = []
        self.duplication = Duplication()

    def run(self) -> Collected:
        with EmbeddedBroker(self.broker_kind) as b:
            self.broker: EmbeddedBroker = b
            # Scenario files need not give BLE addresses: the radio finds devices by address.
            self.cfg = server_config(with_addresses(self.sc.config), self.workdir, b.port,
                                     b.protocol)
            self.pipeline = Pipeline(self.cfg, self.clock, self.sms, self.sc.model.seed)
            self.pipeline.start()
            try:
                self.homes = Homes(self.cfg, self.clock, self.workdir, self.pipeline,
                                   self.duplication)
                asyncio.run(self._drive())
                self.duplication.close()
                return collect(
                    self.pipeline.store,
                    self.pipeline.alerts.ledger,
                    self.tl,
                    self.replies,
                    self.homes.delivered,
                    self.pipeline.stalls,
                )
            finally:
                self.pipeline.stop()
                if self.broker is not b:
                    self.broker.close()

    async def _drive(self) -> None:
        for h in self.homes.homes.values():
            await self.homes.switch(h, True)
        steps: list[tuple[datetime, float, object]] = []
        for o in self.tl.outages:
            if o.kind == "gateway_crash":  # frozen, the values of that moment queued, killed
                again = 2.7 if o.end == o.start else 0
                steps += [(o.start, 1, ("freeze", o)), (o.start, 2.5, ("kill", o)),
                          (o.end, again, ("restart", o))]
            else:
                steps += [(o.start, 1, ("begin", o)), (o.end, 0, ("end", o))]
        steps += [(tv.value.at, 2, tv) for tv in self.tl.values]
        steps += [(r.at, 3, r) for r in self.tl.replies]
        t = self.tl.start + self.tl.tick
        while t <= self.tl.end:
            steps.append((t, 4, "tick"))
            t += self.tl.tick
        for at, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            if at > self.clock.now():
                self.clock.set(at)
            await self._step(step)
        await asyncio.to_thread(self.pipeline.settle)
        await self.homes.stop_all()

    async def _step(self, step: object) -> None:
        if isinstance(step, TimedValue):
            await self.homes.send(step)
        elif isinstance(step, ScriptedReply):
            text, answer = self.pipeline.reply(len(self.replies) + 1, step.phone, step.text)
            self.replies.append((dataclasses.replace(step, text=text), answer))
        elif step == "tick":
            self.homes.heartbeats()
            await asyncio.to_thread(self.pipeline.settle)
            self.pipeline.tick()
        elif isinstance(step, tuple):
            await self._outage(step[0], step[1])
        await asyncio.to_thread(self.pipeline.settle)

    async def _outage(self, what: str, o: Outage) -> None:
        delta = 1 if what == "begin" else -1
        homes = self.homes
        if o.kind == "gateway_crash":
            assert o.home is not None  # the timeline names the home of each crash
            await homes.crash(what, o.home)
            return
        if o.kind == "duplicate_delivery":
            topics = Topics(self.cfg.mqtt.topic_prefix)
            for hid in [o.home] if o.home else list(homes.homes):
                await asyncio.to_thread(self.duplication.switch, hid, delta, self.broker.port,
                                       topics)
            return
        if o.kind == "gateway_offline":
            for hid in [o.home] if o.home else list(homes.homes):
                homes.offline[hid] += delta
            await homes.reconcile()
            return
        if what == "begin":
            homes.broker_up = False
            await homes.reconcile()
            for e in (
                self.pipeline.ingest.subscribed,
                self.pipeline.rules.subscriber.subscribed,
                self.pipeline.alerts.subscriber.subscribed,
            ):
                e.clear()
            await asyncio.to_thread(self.broker.close)
            return
        await asyncio.to_thread(self._restart_broker)
        homes.broker_up = True
        await homes.reconcile()

    def _restart_broker(self) -> None:
        again = EmbeddedBroker(self.broker.kind)
        again.port = self.broker.port  # the same address: every client reconnects on its own
        again.__enter__()
        self.broker = again
        self.pipeline.wait_subscribed()


def _workdir() -> tempfile.TemporaryDirectory[str]:
    # Throwaway databases: tmpfs spares the fsync of every SQLite commit (synchronous=FULL).
    shm = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory inside it, not a fixed name
    return tempfile.TemporaryDirectory(
        prefix="homevitals-replay-", dir=str(shm) if shm.is_dir() else None
    )


def run_replay(
    scenario: str,
    out_dir: Path,
    *,
    seed: int | None = None,
    broker: str = "auto",
    workdir: Path | None = None,
    stream: TextIO | None = None,
) -> int:
    """Replay ``scenario`` (a path or a shipped name) and write the three files to ``out_dir``."""
    out = stream or sys.stdout
    sc = load_scenario(scenario)
    if seed is not None:
        sc = LoadedScenario(
            sc.model.model_copy(update={"seed": seed}), sc.config, sc.source, sc.lines
        )
    tl = build_timeline(sc)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = _workdir() if workdir is None else None
    work = Path(tmp.name) if tmp is not None else workdir
    assert work is not None
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        replay = Replay(sc, tl, work, broker, io.StringIO())
        collected = replay.run()
    finally:
        if tmp is not None:
            tmp.cleanup()
    out.write(write_outputs(out_dir, sc, tl, collected, time.monotonic() - started))
    out.write(f"  pipeline: embedded {replay.broker.kind} broker, {sc.config.store.kind} store\n")
    return 0
