"""What the stages of the cluster profile share to read a RabbitMQ cluster over AMQP 0-9-1
(``pika``, the ``cluster`` extra): the connection parameters from an ``amqp`` section, the MQTT
plugin's mapping between topics and routing keys, and the errors that mean "the broker is gone".

Gateways publish over MQTT to any node; the MQTT plugin routes each message to ``amq.topic``
with the topic as routing key, each '/' made a '.' (rabbit_mqtt_util:mqtt2amqp; a '.' stays,
which is why the cluster profile's ids may not contain one: homevitals.vocab.config checks that).
Used by ``ingest/amqp_source.py`` and ``rules/amqp_source.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import pika
import pika.exceptions

from homevitals.infra.backoff import Backoff
from homevitals.infra.runtime import Progress
from homevitals.vocab.config import read_secret
from homevitals.vocab.config_base import AmqpConnection

__all__ = [
    "EXPECTED", "MAX_PREFETCH", "Delivered", "close_quietly", "connection_params", "keep_consuming",
    "mqtt_filter_to_binding", "routing_key_to_topic",
]

logger = logging.getLogger(__name__)

# The MQTT plugin's mapping between topics and routing keys (rabbit_mqtt_util:mqtt2amqp).
_TO_KEY = str.maketrans("/+", ".*")
_TO_TOPIC = str.maketrans(".", "/")
MAX_PREFETCH = 65_535  # AMQP 0-9-1 basic.qos prefetch-count is a short
EXPECTED = (pika.exceptions.AMQPError, OSError)  # the broker or the connection is gone


class Delivered(NamedTuple):
    """A message as a stage reads it (paho's ``MQTTMessage`` has the same two attributes)."""

    topic: str
    payload: bytes


def routing_key_to_topic(key: str) -> str:
    return key.translate(_TO_TOPIC)


def mqtt_filter_to_binding(topic_filter: str) -> str:
    """An MQTT topic (filter) as an ``amq.topic`` routing (binding) key: '+' is '*', '#' stays."""
    return topic_filter.translate(_TO_KEY)


def connection_params(cfg: AmqpConnection, what: str) -> list[pika.URLParameters]:
    """One parameter set per node of ``cfg.urls`` (pika tries them in turn); ``what`` names the
    section in an error about its password (e.g. ``rules.amqp.password``)."""
    password = read_secret(cfg.password_env, cfg.password_file, what)
    out = []
    for url in cfg.urls:
        params = pika.URLParameters(url)
        if password is not None:
            params.credentials = pika.PlainCredentials(params.credentials.username, password)
        params.heartbeat = cfg.heartbeat_seconds
        params.blocked_connection_timeout = 60
        out.append(params)
    return out


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be gone (after an error on it)."""
    if conn is not None and conn.is_open:
        try:
            conn.close()
        except EXPECTED as exc:
            logger.debug("closing the old connection: %s", exc)


def keep_consuming(
    consume: Callable[[], None], lost: Callable[[], None], stop: threading.Event,
    progress: Progress, what: str,
) -> None:
    """A consumer thread's loop: ``consume`` until ``stop``. When the broker or the connection
    goes, ``lost`` forgets what the connection held, and it tries again after a growing
    delay (the health watch is told the delay is allowed)."""
    backoff = Backoff(1.0, 30.0)
    while not stop.is_set():
        progress.beat()
        try:
            consume()
            backoff.reset()
        except EXPECTED as exc:
            lost()
            delay = backoff.next()
            progress.beat(allow=delay)
            logger.warning("%s lost its broker (%s: %s); again in %.1f s",
                           what, type(exc).__name__, exc, delay)
            stop.wait(delay)
    lost()
