"""``homevitals demo``: the demo household through the whole pipeline in one process.

Composition root (like ``cli``): the only module besides ``cli`` that wires stages together.
The four daemons' own App classes run side by side on an embedded broker and the embedded store,
exactly as they run apart in production; only the radio (the household's scripted devices, which
the gateway connects to and downloads from as on the Pi), the clock (simulated, a day in about a
second) and the notifier (console) differ.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from homevitals.alerts.app import AlertsApp
from homevitals.gateway.app import GatewayApp
from homevitals.infra.embedded import EmbeddedBroker
from homevitals.ingest.store import Store
from homevitals.roots.replay import Pipeline, server_config
from homevitals.roots.scripted_gateway import run_script
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.simulators.household import DEMO_START, demo_config, demo_script
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, StoreKind

__all__ = ["local_paths", "run_demo"]

logger = logging.getLogger(__name__)


def local_paths(cfg: Config, workdir: Path, port: int, protocol: str) -> Config:
    """The demo config pointed at a work folder and the embedded broker."""
    assert cfg.gateway is not None
    store = (
        cfg.store
        if cfg.store.kind != StoreKind.SQLITE
        else cfg.store.model_copy(update={"path": str(workdir / "store.sqlite")})
    )
    return cfg.model_copy(
        update={
            "mqtt": cfg.mqtt.model_copy(
                update={"host": "127.0.0.1", "port": port, "protocol": protocol}
            ),
            "store": store,
            "gateway": cfg.gateway.model_copy(
                update={"queue_path": str(workdir / "gateway-queue.sqlite")}
            ),
            "rules": cfg.rules.model_copy(
                update={"state_path": str(workdir / "rules-state.sqlite")}
            ),
            "alerts": cfg.alerts.model_copy(
                update={"outbox_path": str(workdir / "alerts-ledger.sqlite")}
            ),
        }
    )


def _wait(what: str, done: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(done) and done():
            return
        time.sleep(0.05)
    raise TimeoutError(f"demo: {what} did not happen within {seconds:.0f} s")


def run_demo(workdir: Path | None = None, broker: str = "auto", out: TextIO = sys.stdout) -> int:
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="homevitals-demo-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    base = demo_config()
    home = base.homes[0]
    script, expected = demo_script(home.zone)
    # 11:00 local on the demo day, as a UTC instant (the clock does its arithmetic in UTC).
    clock = SimulatedClock(datetime.combine(DEMO_START, clock_time(11), home.zone).astimezone(UTC))
    try:
        with EmbeddedBroker(broker) as b:
            cfg = local_paths(base, workdir, b.port, b.protocol)
            out.write(
                f"homevitals demo: household {home.id} ({home.timezone}); broker {b.kind} on "
                f"127.0.0.1:{b.port}; store {cfg.store.kind} in {workdir}\n\n"
            )
            return _run(cfg, clock, script, len(expected), out)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(
    cfg: Config, clock: SimulatedClock, script: list[ScheduledValue], n_expected: int, out: TextIO
) -> int:
    # The replay's pipeline: the same daemons, plus the settle step that keeps the simulated
    # clock from running ahead of them, so the alert history shows the right simulated times.
    cfg = server_config(cfg, Path(cfg.store.path).parent, cfg.mqtt.port, cfg.mqtt.protocol)
    pipeline = Pipeline(cfg, clock, out, seed=1)  # the demo prints the same codes every run
    store, rules, alerts = pipeline.store, pipeline.rules, pipeline.alerts
    pipeline.start()
    try:
        asyncio.run(_play(cfg, clock, script, pipeline))
        pipeline.gateways.clear()
        home = cfg.homes[0]
        start, end = clock.now() - timedelta(days=3), clock.now() + timedelta(days=1)
        _wait(
            "all readings stored",
            lambda: (
                len(store.query_readings("glucose", None, start, end))
                + len(store.query_readings("blood_pressure", None, start, end))
                >= n_expected - 2
            ),
            30,
        )
        _wait("alerts sent", lambda: len(rules.outbox) == 0 and alerts.idle(), 30)
        time.sleep(0.3)
        _wait("alerts sent", lambda: len(rules.outbox) == 0 and alerts.idle(), 30)
        _summary(store, alerts, home.zone, start, end, out)
    finally:
        pipeline.stop()
    return 0


async def _play(
    cfg: Config, clock: SimulatedClock, script: list[ScheduledValue], pipeline: Pipeline
) -> None:
    """The household's day through the gateway, each value settled before the clock moves."""
    assert cfg.gateway is not None
    radio = ScriptedRadio(cfg.home(cfg.gateway.home), clock)
    gateway = GatewayApp(cfg, radio, clock)
    pipeline.gateways.append(gateway)

    async def settle() -> None:
        counts, rejects = gateway.gateway.counts, gateway.gateway.rejects
        pipeline.expect["data"] = counts["readings"] + counts["events"]
        pipeline.expect["deadletter"] = sum(rejects.values())
        await asyncio.to_thread(pipeline.settle)

    pipeline.stalls += await run_script(gateway, radio, clock, script, settle, drain_seconds=30)


def _summary(
    store: Store, alerts: AlertsApp, zone: ZoneInfo, start: datetime, end: datetime, out: TextIO
) -> None:
    out.write("\nReadings stored:\n")
    rows = []
    for m in ("glucose", "blood_pressure"):
        rows += [(m, r) for r in store.query_readings(m, None, start, end)]
    for m, r in sorted(rows, key=lambda x: x[1]["time"]):
        t = r["time"].astimezone(zone)
        vals = (
            f"{r['glucose']:g} mmol/L"
            if m == "glucose"
            else f"{r['systolic']:g}/{r['diastolic']:g} mmHg, pulse {r.get('pulse', 0):g} bpm"
        )
        out.write(f"  {t:%a %d %b %H:%M} {r['patient']:>6} {m:<15} {vals}\n")
    out.write("\nAlert history (who was told what, when):\n")
    for h in alerts.ledger.history():
        sent = h["sent_at"] or h["opened_at"]
        at = datetime.fromisoformat(str(sent).replace("Z", "+00:00")).astimezone(zone)
        out.write(
            f"  {at:%a %d %b %H:%M} {h['rule']:<18} {h['severity']:<8} {h['kind']:<8} -> "
            f"{h['name']} ({h['role']}, {h['recipient']}): {h['sms_state']}\n"
        )
