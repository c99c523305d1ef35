"""Dead letters of the server stages that sit behind a ``Subscriber`` (rules, alerts).

A message a stage cannot use is never redelivered forever and never dropped unseen: it becomes a
dead letter (the reason, the error and its class, a bounded prefix of the payload with its size
and SHA-256), written to the stage's durable outbox before the message is acknowledged. The
stage's pump publishes it on ``{prefix}/v1/deadletter/{stage}/{reason}``, where ingest stores it
in the ``rejected`` measurement like its own. Counts by reason feed the stage's metrics.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from homevitals.infra.outbox import MessageQueue
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.origin import ORIGIN_REASONS
from homevitals.vocab.topics import Topics

__all__ = ["DeadLetters", "SERVER_REASONS"]

logger = logging.getLogger(__name__)

# Every reason a server stage dead-letters a message for, so that each metric series exists at
# 0 from the start and the first rejection shows in increase().
SERVER_REASONS = (*wire.WIRE_REASONS, *ORIGIN_REASONS, "handler_error")


class DeadLetters:
    def __init__(self, stage: str, outbox: MessageQueue, topics: Topics, clock: Clock) -> None:
        self.stage = stage
        self.outbox = outbox
        self.topics = topics
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.on_kept: Callable[[], None] = lambda: None  # e.g. wake the outbox pump

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def keep(
        self, topic: str, payload: bytes | bytearray, reason: str, error: str, error_class: str = ""
    ) -> None:
        """Durable when this returns (one SQLite commit); then the message may be acknowledged."""
        reject = wire.make_reject(
            stage=self.stage,
            reason=reason,
            error=error,
            error_class=error_class,
            topic=topic,
            payload=payload,
            time=self.clock.now(),
        )
        self.outbox.put(self.topics.deadletter(self.stage, reason), wire.encode(reject))
        self.counts[reason] += 1
        self.on_kept()
        logger.warning(
            "%s: message on %.200s dead-lettered (%s): %.500s", self.stage, topic, reason, error
        )
