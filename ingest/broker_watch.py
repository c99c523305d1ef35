"""Mosquitto's own counters, watched by ingest so that a broker dropping messages is seen.

Once a client's queue holds ``max_queued_messages``, Mosquitto drops further QoS 1 messages for it
without telling anyone but its own log ("Outgoing messages are being dropped"): readings and
alerts are lost while every daemon looks healthy. Mosquitto counts the drops in ``$SYS``
(mosquitto(8), "BROKER STATUS", sent every ``sys_interval`` seconds). This watch reads that count
and the number of messages in the broker's store, exports both
(``homevitals_broker_messages_dropped``, ``homevitals_broker_messages_stored``) and logs a
WARNING whenever the drop count grows. A client of its own (QoS 0, clean session) keeps it apart
from ingest's manual-acknowledgement session. A broker without these topics (not Mosquitto, or
``sys_interval 0``) leaves both metrics out.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt

from homevitals.infra.metrics import Metric, gauge
from homevitals.infra.mqtt import connect_async, disconnect, make_client, reason_failed
from homevitals.vocab.config import MqttConfig
from homevitals.vocab.topics import BROKER_DROPPED, BROKER_STORED

__all__ = ["BrokerWatch"]

logger = logging.getLogger(__name__)


class BrokerWatch:
    def __init__(self, cfg: MqttConfig, client_id: str) -> None:
        self.cfg = cfg
        self.dropped: int | None = None  # the broker's count since it started
        self.stored: int | None = None
        self.client = make_client(cfg, f"{client_id}-broker-watch")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect_async(self.client, self.cfg)

    def stop(self) -> None:
        disconnect(self.client)

    def metrics(self) -> list[Metric]:
        out = []
        if self.dropped is not None:
            out.append(gauge("homevitals_broker_messages_dropped",
                             "messages the MQTT broker dropped since it started ($SYS)",
                             self.dropped))
        if self.stored is not None:
            out.append(gauge("homevitals_broker_messages_stored",
                             "messages held in the MQTT broker's store ($SYS)", self.stored))
        return out

    def _on_connect(
        self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any = None
    ) -> None:
        if reason_failed(rc):
            logger.error("broker refused the connection of the broker watch: %s", rc)
            return
        client.subscribe([(BROKER_DROPPED, 0), (BROKER_STORED, 0)])

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            value = int(msg.payload)
        except ValueError:
            logger.debug("not a count on %s: %r", msg.topic, msg.payload[:40])
            return
        if msg.topic == BROKER_STORED:
            self.stored = value
        elif msg.topic == BROKER_DROPPED:
            self._count_dropped(value)

    def _count_dropped(self, value: int) -> None:
        before, self.dropped = self.dropped, value
        # A count below the last one: the broker restarted and counts from 0 again.
        new = value if before is None or value < before else value - before
        if new > 0:
            logger.warning(
                "the MQTT broker dropped %d messages (%d since it started): a client's queue was"
                " full (max_queued_messages), so readings or alerts were lost (docs/broker.md)",
                new, value,
            )
