"""The seam between ingest and where its messages come from, when that is not MQTT.

The default source is the MQTT session that ``IngestService`` holds itself (the embedded
profile). The cluster profile (docs/cluster.md) takes readings from a broker's own queues
instead: ``homevitals.ingest.amqp_source`` (RabbitMQ quorum queues, competing consumers). Either
way the same decode, validation, batching and write path runs, and a message is acknowledged only
after the write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from homevitals.infra.runtime import Condition, Worker

__all__ = ["Deliver", "Message", "Source"]


class Message(Protocol):
    """What ingest reads of a message: paho's ``MQTTMessage`` has both, so has a queue's."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes | bytearray: ...


# (message, delivery tag, generation of the connection that delivered it)
Deliver = Callable[[Message, int, int], None]


class Source(Protocol):
    def start(self, deliver: Deliver) -> None:
        """Connect and call ``deliver`` for each message, from the source's own thread."""

    def stop(self) -> None: ...

    def ack(self, tags: Iterable[tuple[int, int]]) -> None:
        """Acknowledge (tag, generation) pairs, from any thread; tags of an older connection are
        skipped (the broker delivers those again)."""

    def publish(self, topic: str, payload: bytes) -> None:
        """A dead letter, on the MQTT topic it would have had."""

    def workers(self) -> list[Worker]: ...

    def conditions(self) -> list[Condition]: ...
