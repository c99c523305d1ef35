"""The gateway daemon's one entry point: wires transport, decoder, durable queue and publisher."""

from __future__ import annotations

import asyncio
import logging
import signal

from homevitals import wire
from homevitals.clock import Clock
from homevitals.config import Config
from homevitals.errors import ConfigError
from homevitals.gateway.central import Central
from homevitals.gateway.gatt import Radio
from homevitals.gateway.gpio_button import GpioButtons
from homevitals.gateway.ha_discovery import discovery_messages
from homevitals.gateway.publisher import Publisher
from homevitals.gateway.service import Gateway
from homevitals.gateway.transport import BleTransport, RawValue
from homevitals.outbox import DurableQueue
from homevitals.topics import Topics

__all__ = ["GatewayApp", "run_gateway"]

logger = logging.getLogger(__name__)


class GatewayApp:
    """The gateway's parts, built from config; ``run`` drives them until stopped."""

    def __init__(
        self,
        cfg: Config,
        transport: BleTransport | Radio,
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
        self.gateway = Gateway(self.home, self.queue, self.topics, clock, self.gcfg)
        self.central: Central | None = None
        if isinstance(transport, Radio):
            self.central = Central(transport, self.gateway, clock,
                                   racp_timeout=self.gcfg.racp_timeout_seconds,
                                   **(central_options or {}))
            transport = self.central
        self.transport: BleTransport = transport
        self.gpio = GpioButtons(clock, pin_factory=gpio_pin_factory)
        ha = self.gcfg.home_assistant
        retained = discovery_messages(self.home, self.topics, ha.discovery_prefix) \
            if ha.enabled else []
        self.publisher = Publisher(
            cfg.mqtt,
            self.queue,
            self.topics,
            self.home.id,
            clock,
            client_id=self.gcfg.client_id,
            max_inflight=self.gcfg.max_inflight,
            retained_on_connect=retained,
        )

    def deliver(self, raw: RawValue) -> None:
        self.gateway.deliver(raw)
        self.publisher.notify()

    def heartbeat(self) -> wire.Heartbeat:
        devices = {
            d: {"last_seen": wire.format_time(t), "battery": self.gateway.battery.get(d)}
            for d, t in self.gateway.last_seen.items()
        }
        return wire.Heartbeat(
            home=self.home.id,
            time=wire.format_time(self.clock.now()),
            queue_depth=len(self.queue),
            inflight=self.publisher.inflight,
            devices=devices,
            counts=dict(self.gateway.counts),
            rejects=dict(self.gateway.rejects),
            dropped=self.queue.dropped + self.gateway.refused,
        )

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.gcfg.heartbeat_seconds)
            self.publisher.publish_direct(
                self.topics.heartbeat(self.home.id), wire.encode(self.heartbeat())
            )

    async def run(self, stop: asyncio.Event | None = None, *, drain_seconds: float = 30.0) -> None:
        """Run until ``stop`` is set or the transport ends (a finished simulation), then flush."""
        self.publisher.start()
        stop = stop or asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                transport = tg.create_task(
                    self.transport.run(self.home.devices, self.deliver), name="transport"
                )
                gpio = tg.create_task(self.gpio.run(self.home.devices, self.deliver), name="gpio")
                beats = tg.create_task(self._heartbeats(), name="heartbeat")
                stopper = tg.create_task(stop.wait(), name="stop")
                await asyncio.wait({transport, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for t in (transport, gpio, beats, stopper):
                    t.cancel()
        finally:
            await asyncio.to_thread(self.publisher.stop, drain_seconds)
            logger.info(
                "gateway stopped: %d published, %d acknowledged, %d still queued on disk",
                self.publisher.published,
                self.publisher.acked,
                len(self.queue),
            )
            self.queue.close()


def run_gateway(cfg: Config, transport: BleTransport | Radio, clock: Clock) -> None:
    """Daemon entry: SIGTERM/SIGINT stop the transport, flush the queue and announce offline.

    A real transport runs until stopped; a simulated one ends with its script, and then the
    gateway flushes its queue and exits."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await GatewayApp(cfg, transport, clock).run(stop)

    asyncio.run(main())
