"""The rules, alerts and gateway daemons' health as an operator and systemd see it, against the
real Mosquitto: each thread or task each of them declared is wedged or stopped in turn, and
/healthz says which, while systemd's watchdog (a socket bound by the test) stops being fed."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notify import NotifySocket, get, wait_status
from servers import free_port
from test_health_ingest import WEDGE_TOPIC, _publish_raw, _wedge_on_topic

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.alerts.telemetry import alerts_metrics
from homevitals.gateway.app import GatewayApp
from homevitals.infra.mqtt import connection
from homevitals.infra.runtime import Declared, Runner
from homevitals.infra.sdnotify import SystemdNotifier
from homevitals.rules.app import RulesApp
from homevitals.rules.telemetry import rules_metrics
from homevitals.simulators.devices import radio_for_home
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import Config
from homevitals.vocab.readings import AlertDecision, AlertState, Severity

STALL = 1.5
ALERT_WEDGE = "homevitals/v1/alert/home-novak/wedge"
METRICS = {"port": 0, "stall_seconds": STALL}


def _base(tmp: Path, broker: int) -> dict[str, Any]:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": broker}
    return base


class Gate:
    """Wraps a callable so that it hangs while the gate is closed (and the test holds it)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def around(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            if not self.open.is_set():
                self.entered.set()
                self.open.wait(60)
            return fn(*args, **kwargs)

        return gated


class GatedClient:
    """What the outbox pump uses of paho's client, with a gated ``publish``."""

    def __init__(self, publish: Callable[..., Any]) -> None:
        self.publish = publish


@contextmanager
def _supervised(app: Declared, metrics: Any, read: Any, *, abstract: bool = True
                ) -> Iterator[tuple[int, NotifySocket]]:
    systemd = NotifySocket(abstract=abstract)
    runner = Runner(app, metrics, read, notifier=SystemdNotifier(systemd.env(1.0)))
    try:
        with runner.serving():
            assert runner.health is not None
            yield runner.health.port, systemd
    finally:
        systemd.close()


def _stalls(port: int, systemd: NotifySocket, *lines: str) -> None:
    """/healthz turns 503 naming ``lines`` and systemd gets no more WATCHDOG=1."""
    wait_status(port, "/healthz", 503, "not alive", *lines)
    assert systemd.pings(1.5) == 0


def _recovers(port: int, systemd: NotifySocket, *lines: str) -> None:
    wait_status(port, "/healthz", 200, *lines)
    systemd.wait_pings(2, 1.5)


def test_rules_handler_pump_timer_and_paho_thread(tmp_path: Path, mosquitto: Any) -> None:
    base = _base(tmp_path, mosquitto.port)
    base["rules"].update(state_path=str(tmp_path / "rules.sqlite"), tick_seconds=0.5,
                         client_id=f"rules-{tmp_path.name}", metrics=METRICS)
    cfg = Config.model_validate(base)
    app = RulesApp(cfg)
    release, pump, tick = threading.Event(), Gate(), Gate()
    held = _wedge_on_topic(app.subscriber.client, release)
    app.pump.client = GatedClient(pump.around(app.pump.client.publish))
    app.timers.run_due = tick.around(app.timers.run_due)
    app.start()
    try:
        with _supervised(app, cfg.rules.metrics, lambda: rules_metrics(app)) as (port, systemd):
            systemd.wait_for("READY=1")
            body = wait_status(port, "/healthz", 200, "mqtt-network: ok", "mqtt-handler: ok",
                               "pump-rules: ok", "rules-timers: ok")
            assert body.startswith("ok\n")
            systemd.wait_pings(2, 1.5)
            wait_status(port, "/readyz", 200, "broker: ok", "subscription: ok")

            _publish_raw(mosquitto.port, WEDGE_TOPIC, tmp_path.name)
            assert held.wait(10)
            _stalls(port, systemd, f"mqtt-handler: stuck in on_message ({WEDGE_TOPIC})")
            release.set()
            _recovers(port, systemd, "mqtt-handler: ok")

            pump.open.clear()
            app.outbox.put("homevitals-test/health/pump", b"{}")
            app.pump.notify()
            assert pump.entered.wait(10)
            _stalls(port, systemd, "pump-rules: no progress for", "mqtt-handler: ok")
            pump.open.set()
            _recovers(port, systemd, "pump-rules: ok")

            tick.open.clear()
            assert tick.entered.wait(10)
            _stalls(port, systemd, "rules-timers: no progress for")
            tick.open.set()
            _recovers(port, systemd, "rules-timers: ok")

            connection(app.subscriber.client).halt()
            _stalls(port, systemd, "mqtt-network: not running (the thread has ended)")
            wait_status(port, "/readyz", 503, "broker: paho's network thread has ended")
            assert "homevitals_rules_connected 0.0" in get(port, "/metrics")[1]
    finally:
        for gate in (pump, tick):
            gate.open.set()
        release.set()
        app.stop(drain_seconds=1)


class GatedNotifier(ConsoleNotifier):
    def __init__(self, gate: Gate) -> None:
        super().__init__(io.StringIO())
        self.send = gate.around(self.send)  # type: ignore[method-assign]


def _firing(patient: str) -> bytes:
    t = datetime.now(UTC)
    return wire.encode(AlertDecision(
        f"a-health-{t.timestamp()}", AlertState.FIRING, "home-novak", patient, "night-low-glucose",
        Severity.HIGH, "Night-time low glucose", t, "glucose", "glucose", 3.4, "mmol/L", t,
    ))


def test_alerts_sender_webhook_and_handler(tmp_path: Path, mosquitto: Any) -> None:
    base = _base(tmp_path, mosquitto.port)
    base["alerts"] = {
        "notifier": "console", "client_id": f"alerts-{tmp_path.name}",
        "outbox_path": str(tmp_path / "ledger.sqlite"), "metrics": METRICS,
        # Twilio's timeout bounds how long one send may take before the sender counts as stalled.
        "twilio": {"from_number": "+15005550006", "timeout_seconds": 0.5},
        "webhook": {"port": free_port(), "public_url": "https://example.org/hv"},
    }
    cfg = Config.model_validate(base)
    send = Gate()
    app = AlertsApp(cfg, GatedNotifier(send), SystemClock(), auth_token="test-token")
    release = threading.Event()
    held = _wedge_on_topic(app.subscriber.client, release, ALERT_WEDGE)
    app.start()
    try:
        with _supervised(app, cfg.alerts.metrics, lambda: alerts_metrics(app),
                         abstract=False) as (port, systemd):
            assert "STATUS=alive and ready" in systemd.wait_for("READY=1").split("\n")
            wait_status(port, "/healthz", 200, "mqtt-network: ok", "mqtt-handler: ok",
                        "alerts-sender: ok", "alerts-timers: ok", "twilio-webhook: ok")
            systemd.wait_pings(2, 1.5)

            send.open.clear()
            _publish_raw(mosquitto.port, "homevitals/v1/alert/home-novak/ana", tmp_path.name,
                         _firing("ana"))
            assert send.entered.wait(10), "the sender did not start on the SMS"
            _stalls(port, systemd, "alerts-sender: no progress for", "mqtt-handler: ok")
            send.open.set()
            _recovers(port, systemd, "alerts-sender: ok")

            _publish_raw(mosquitto.port, ALERT_WEDGE, tmp_path.name)
            assert held.wait(10)
            _stalls(port, systemd, f"mqtt-handler: stuck in on_message ({ALERT_WEDGE})")
            release.set()
            _recovers(port, systemd, "mqtt-handler: ok")

            assert app.webhook is not None
            app.webhook.stop()
            _stalls(port, systemd, "twilio-webhook: not running")
    finally:
        send.open.set()
        release.set()
        app.stop()


def test_gateway_event_loop_pump_and_paho_thread(tmp_path: Path, mosquitto: Any) -> None:
    base = _base(tmp_path, mosquitto.port)
    base["gateway"].update(queue_path=str(tmp_path / "gw.sqlite"), metrics=METRICS,
                           client_id=f"gw-{tmp_path.name}")
    cfg = Config.model_validate(base)
    app = GatewayApp(cfg, radio_for_home(cfg.home("home-novak"), interval=0.2), SystemClock())
    pump = Gate()
    app.publisher.pump.client = GatedClient(pump.around(app.publisher.pump.client.publish))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(app.run(stop, drain_seconds=1)), name="gw-test"
    )
    with _supervised(app, app.gcfg.metrics, app.metrics) as (port, systemd):
        thread.start()
        try:
            systemd.wait_for("READY=1")
            wait_status(port, "/healthz", 200, "mqtt-network: ok", "pump-gw-home-novak: ok",
                        "event-loop: ok", "transport: ok", "heartbeat: ok")
            systemd.wait_pings(2, 1.5)
            wait_status(port, "/readyz", 200, "broker: ok")

            # A blocking call on the asyncio loop: the radio, buttons and heartbeats all stop.
            loop.call_soon_threadsafe(time.sleep, 4.0)
            _stalls(port, systemd, "event-loop: no progress for")
            _recovers(port, systemd, "event-loop: ok")

            pump.open.clear()
            assert pump.entered.wait(10), "the simulated devices queued nothing"
            _stalls(port, systemd, "pump-gw-home-novak: no progress for", "event-loop: ok")
            pump.open.set()
            _recovers(port, systemd, "pump-gw-home-novak: ok")

            connection(app.publisher.client).halt()
            _stalls(port, systemd, "mqtt-network: not running (the thread has ended)")
            wait_status(port, "/readyz", 503, "broker: paho's network thread has ended")
            assert "homevitals_gateway_connected 0.0" in get(port, "/metrics")[1]
        finally:
            pump.open.set()
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
            loop.close()
