"""The gateway's parts, wired: radio -> Central -> decoder -> durable queue -> publisher, with its
heartbeats, health workers and metrics. The daemon's entry point is ``gateway/main.py``."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from functools import partial
from pathlib import Path

from homevitals.gateway.central import Central
from homevitals.gateway.gatt import Radio, RawValue
from homevitals.gateway.gpio_button import GpioButtons
from homevitals.gateway.ha_discovery import discovery_messages
from homevitals.gateway.publisher import Publisher
from homevitals.gateway.service import Gateway
from homevitals.infra.metrics import Metric, counter, gauge
from homevitals.infra.outbox import DurableQueue
from homevitals.infra.runtime import Condition, Progress, Worker, task_worker
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config, DeviceKind
from homevitals.vocab.errors import ConfigError, HomevitalsError
from homevitals.vocab.topics import Topics

__all__ = ["REJECT_REASONS", "GatewayApp", "import_sequence_marks"]

logger = logging.getLogger(__name__)


def import_sequence_marks(path: str, queue: DurableQueue) -> int:
    """Carry over the marks of the deprecated ``gateway.sequence_state_path`` file (earlier
    bleak gateways kept each meter's last RACP sequence number there, outside the readings'
    transaction). A meter that already has a mark in the queue database keeps it. Returns how
    many were imported; the old file is only read."""
    if not Path(path).is_file():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT device, last FROM sequences").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError([f"gateway.sequence_state_path: {path}: {exc}"]) from exc
    finally:
        db.close()
    imported = 0
    for device, last in rows:
        key = f"racp:{device}:last_sequence"  # racp.py's mark, written with the readings
        if queue.get_state(key) is None:
            queue.set_state(key, str(int(last)))
            imported += 1
    logger.info("imported %d glucose sequence marks from %s (deprecated"
                " gateway.sequence_state_path; the marks now live in the queue database)",
                imported, path)
    return imported


class GatewayApp:
    """The gateway's parts, built from config; ``run`` drives them until stopped."""

    def __init__(
        self,
        cfg: Config,
        radio: Radio,
        clock: Clock,
        *,
        gpio_pin_factory: object = None,
        central_options: dict[str, float] | None = None,
    ) -> None:
        if cfg.gateway is None:
            raise ConfigError(["gateway: section missing (the gateway needs gateway.home)"])
        self.cfg = cfg
        self.gcfg = cfg.gateway
        self.home = cfg.home(cfg.gateway.home)
        self.clock = clock
        self.topics = Topics(cfg.mqtt.topic_prefix)
        # drop_new_readings is done by the service before the queue would evict anything.
        self.queue = DurableQueue(self.gcfg.queue_path, self.gcfg.queue_max_messages)
        if self.gcfg.sequence_state_path:
            import_sequence_marks(self.gcfg.sequence_state_path, self.queue)
        self.gateway = Gateway(self.home, self.queue, self.topics, clock, self.gcfg)
        # The one BLE edge: real (bleak) and simulated households alike run the connection
        # manager, the RACP download and the reconnect backoff.
        self.central = Central(radio, self.gateway, clock,
                               racp_timeout=self.gcfg.racp_timeout_seconds,
                               **(central_options or {}))
        self.gpio = GpioButtons(clock, pin_factory=gpio_pin_factory)
        ha = self.gcfg.home_assistant
        retained = discovery_messages(self.home, self.topics, ha.discovery_prefix) \
            if ha.enabled else []
        self.publisher = Publisher(
            cfg.mqtt_for("gateway"),
            self.queue,
            self.topics,
            self.home.id,
            clock,
            client_id=self.gcfg.client_id,
            max_inflight=self.gcfg.max_inflight,
            retained_on_connect=retained,
        )
        self.gateway.on_queued = self.publisher.notify
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.loop_progress = Progress()

    def workers(self) -> list[Worker]:
        """paho's thread, the queue pump, the asyncio loop (it must keep turning: a blocking call
        on it stops the radio) and the radio, heartbeat and (with wired buttons) GPIO tasks."""
        tasks = ["transport", "heartbeat"]  # "transport": the radio task, named as /healthz has
        if any(d.kind == DeviceKind.GPIO_BUTTON for d in self.home.devices):
            tasks.append("gpio")  # without wired buttons, that task has nothing to do and ends
        return [
            *self.publisher.watch.workers(),
            self.publisher.pump.worker(),
            task_worker("event-loop", lambda: self.tasks.get("pulse"), self.loop_progress),
            *(task_worker(name, partial(self.tasks.get, name)) for name in tasks),
        ]

    def conditions(self) -> list[Condition]:
        """Ready while connected: readings queue on disk meanwhile, nothing is lost."""
        return self.publisher.watch.conditions(subscribed=False)

    def deliver(self, raw: RawValue) -> None:
        self.gateway.deliver(raw)
        self.publisher.notify()

    def heartbeat(self) -> wire.Heartbeat:
        snap = self.gateway.snapshot()
        devices = {
            d: {"last_seen": wire.format_time(t), "battery": snap.battery.get(d)}
            for d, t in snap.last_seen.items()
        }
        return wire.Heartbeat(
            home=self.home.id,
            time=wire.format_time(self.clock.now()),
            queue_depth=len(self.queue),
            inflight=self.publisher.inflight,
            devices=devices,
            counts=snap.counts,
            rejects=snap.rejects,
            dropped=self.queue.dropped + snap.refused,
        )

    def metrics(self) -> list[Metric]:
        """What /metrics shows (read in the health server's thread)."""
        snap = self.gateway.snapshot()
        out = [
            *(counter(f"homevitals_gateway_{name}_total", doc, snap.counts.get(key, 0))
              for key, name, doc in _VALUE_COUNTS),
            counter("homevitals_gateway_rejected_total",
                    "values rejected (dead-lettered), by reason",
                    {**dict.fromkeys(REJECT_REASONS, 0), **snap.rejects}, "reason"),
            counter("homevitals_gateway_dropped_total",
                    "messages dropped at the queue bound (queue_full policy)",
                    self.queue.dropped + snap.refused),
            gauge("homevitals_gateway_queue_depth", "messages waiting on disk", len(self.queue)),
            counter("homevitals_gateway_published_total", "messages handed to the broker",
                    self.publisher.published),
            counter("homevitals_gateway_acknowledged_total",
                    "messages the broker acknowledged (then deleted from disk)",
                    self.publisher.acked),
            gauge("homevitals_gateway_inflight", "published, not yet acknowledged",
                  self.publisher.inflight),
            gauge("homevitals_gateway_connected", "1 while connected to the broker",
                  self.publisher.watch.connected),
            gauge("homevitals_gateway_device_last_seen_timestamp_seconds",
                  "when a value or advertisement of each device last arrived (Unix time)",
                  {d: t.timestamp() for d, t in snap.last_seen.items()}, "device"),
            gauge("homevitals_gateway_device_battery_ratio", "last battery level reported (0-1)",
                  {d: level / 100 for d, level in snap.battery.items()}, "device"),
            counter("homevitals_gateway_ble_sessions_total",
                    "BLE sessions that ended normally", self.central.sessions),
            counter("homevitals_gateway_ble_failures_total",
                    "BLE connects or sessions that failed (retried with backoff)",
                    self.central.failures),
        ]
        return out

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.gcfg.heartbeat_seconds)
            self.publisher.publish_direct(
                self.topics.heartbeat(self.home.id), wire.encode(self.heartbeat())
            )

    async def _pulse(self) -> None:
        while True:
            self.loop_progress.beat()
            await asyncio.sleep(1.0)

    async def run(self, stop: asyncio.Event | None = None, *, drain_seconds: float = 30.0) -> None:
        """Run until ``stop`` is set (or the radio fails), then flush."""
        self.publisher.start()
        stop = stop or asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                t = self.tasks
                t["transport"] = tg.create_task(
                    self.central.run(self.home.devices, self.deliver), name="transport"
                )
                t["transport"].add_done_callback(_log_radio_death)
                t["gpio"] = tg.create_task(self.gpio.run(self.home.devices, self.deliver),
                                           name="gpio")
                t["heartbeat"] = tg.create_task(self._heartbeats(), name="heartbeat")
                t["pulse"] = tg.create_task(self._pulse(), name="pulse")
                stopper = tg.create_task(stop.wait(), name="stop")
                await asyncio.wait({t["transport"], stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (*t.values(), stopper):
                    task.cancel()
        finally:
            await asyncio.to_thread(self.publisher.stop, drain_seconds)
            logger.info(
                "gateway stopped: %d published, %d acknowledged, %d still queued on disk",
                self.publisher.published,
                self.publisher.acked,
                len(self.queue),
            )
            self.queue.close()


# Gateway.counts keys -> one counter each (they count unlike things).
_VALUE_COUNTS = (
    ("readings", "readings", "readings decoded and queued for the broker"),
    ("events", "button_events", "call-button presses queued for the broker"),
    ("ignored", "ignored_values", "values that decoded to nothing to publish"),
    ("cgm_sessions", "cgm_sessions", "CGM session start times received"),
    ("duplicate_adverts", "duplicate_adverts",
     "repeated BTHome advertisements of one press, dropped"),
)
# Every reason the gateway dead-letters a value for, so each series exists from the start.
REJECT_REASONS = ("bad_value", "unknown_device")


def _log_radio_death(task: asyncio.Task[None]) -> None:
    """Say at once why the radio stopped: the queue drain that follows can take a while."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # the radio's own task group around one failed task
    logger.error("the radio stopped, the gateway is shutting down: %s", exc,
                 exc_info=None if isinstance(exc, HomevitalsError) else exc)
