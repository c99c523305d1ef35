"""Ingest's checks of one message, on the source's thread: wire format, origin (topic and
configuration), device clock; what fails becomes a dead letter, counted by reason and published
for anyone watching (it is stored with the batch either way)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from homevitals.ingest.source import Message
from homevitals.vocab import wire
from homevitals.vocab.errors import WireError
from homevitals.vocab.origin import Registry
from homevitals.vocab.readings import AlertDecision, Event, Reading
from homevitals.vocab.topics import ParsedTopic, Topics

__all__ = ["IngestChecks"]

logger = logging.getLogger("homevitals.ingest.service")  # the name operators' filters know

# A device clock more than this ahead of the gateway's, or before this year, is not trusted.
_CLOCK_AHEAD_LIMIT = timedelta(hours=1)
_CLOCK_EPOCH_YEAR = 2015
# Parsed topics remembered (a district has a few thousand devices); cleared past this bound.
_TOPIC_MEMO_MAX = 100_000


class IngestChecks:
    def __init__(self, topics: Topics, registry: Registry, counts: Counter[str],
                 rejects: Counter[str], publish_dead: Callable[[str, wire.Reject], None]) -> None:
        self.topics = topics
        self.registry = registry
        self.counts = counts
        self.rejects = rejects
        self.publish_dead = publish_dead
        self._memo: dict[str, ParsedTopic] = {}

    def parse_topic(self, topic: str) -> ParsedTopic | None:
        parsed = self._memo.get(topic)
        if parsed is None:
            parsed = self.topics.parse(topic)
            if parsed is not None:
                if len(self._memo) >= _TOPIC_MEMO_MAX:
                    self._memo.clear()
                self._memo[topic] = parsed
        return parsed

    def validate(self, msg: Message) -> Reading | Event | wire.Reject | AlertDecision:
        try:
            decoded = wire.decode(msg.payload)
        except WireError as exc:
            return self.reject(msg, exc.reason, str(exc))
        parsed = self.parse_topic(msg.topic)
        if isinstance(decoded, wire.Reject):
            return self._dead_letter_in(msg, parsed, decoded)
        if not isinstance(decoded, Reading | Event | AlertDecision):
            return self.reject(
                msg, "wrong_topic", f"a {type(decoded).__name__} message on topic {msg.topic}"
            )
        mismatch = self.registry.check(parsed, decoded)
        if mismatch is not None:
            return self.reject(msg, mismatch.reason, mismatch.error)
        if isinstance(decoded, Reading):
            return self._check_clock(decoded)
        return decoded

    def _dead_letter_in(
        self, msg: Message, parsed: ParsedTopic | None, reject: wire.Reject
    ) -> wire.Reject:
        """A dead letter another stage published: a gateway's (under its home) or a server
        stage's; stored as it came, and counted by stage and reason."""
        if parsed is not None and parsed.kind == "deadletter":
            home = reject.get("home", parsed.home)
            mismatch = self.registry.check_home(parsed, "deadletter", str(home))
            if mismatch is not None:
                return self.reject(msg, mismatch.reason, mismatch.error)
            self.rejects[f"gateway:{reject.get('reason', 'unknown')}"] += 1
            return reject
        if parsed is not None and parsed.kind == "server_deadletter" and parsed.leaf != "ingest":
            self.rejects[f"{parsed.leaf}:{reject.get('reason', 'unknown')}"] += 1
            return reject
        return self.reject(msg, "wrong_topic", f"a dead letter on topic {msg.topic}")

    def _check_clock(self, r: Reading) -> Reading:
        """A device clock far in the future, or reset to its epoch (year 2000 and the like after
        a battery change), would file the reading in the wrong place. The reading is kept, stored
        at the gateway's receive time, and flagged so that doctors and reports can see it."""
        if r.device_time is None:
            return r
        ahead = r.device_time - r.received_at
        if ahead <= _CLOCK_AHEAD_LIMIT and r.device_time.year >= _CLOCK_EPOCH_YEAR:
            return r
        self.counts["device_clock_suspect"] += 1
        logger.warning(
            "reading %s from %s: device time %s is implausible (received %s); stored at"
            " the receive time and flagged",
            r.reading_id,
            r.device,
            r.device_time.isoformat(),
            r.received_at.isoformat(),
        )
        return replace(r, time=r.received_at, flags=(*r.flags, "device_clock_suspect"))

    def reject(
        self, msg: Message, reason: str, error: str, error_class: str = ""
    ) -> wire.Reject:
        """Kept (stored with the batch, so acknowledged only once it is durable), counted by
        reason, and published on the dead-letter topic for anyone watching."""
        self.rejects[reason] += 1
        logger.error("rejected message on %.200s: %s", msg.topic, error[:500])
        reject = wire.make_reject(
            stage="ingest",
            reason=reason,
            error=error,
            error_class=error_class,
            topic=msg.topic,
            payload=msg.payload,
            time=datetime.now(UTC),
        )
        self.publish_dead(reason, reject)
        return reject
