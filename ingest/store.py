"""The store protocol: the one edge between ingest and wherever readings are kept.

Implementations: ``ingest.influx_v1.InfluxV1Store`` (InfluxDB 1.x HTTP API, and the /write and
/query compatibility endpoints of 2.x/3.x), ``ingest.influx_v2.InfluxV2Store`` (influxdb-client,
InfluxDB 2.x and 1.8+), ``ingest.sqlite_store.SqliteStore`` (embedded, no server).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from homevitals.vocab.readings import AlertDecision, Event, Reading
from homevitals.vocab.wire import Reject

__all__ = ["Row", "Storable", "Store"]

# What a store keeps: readings, events, and the messages some stage rejected (dead-letter), so
# that nothing is ever silently dropped.
Storable = Reading | Event | Reject | AlertDecision

# One stored point: "time" (aware UTC datetime), "time_ns" (int), the tags and the fields.
Row = dict[str, Any]


class Store(Protocol):
    def write(self, items: Sequence[Storable]) -> None:
        """Store every item or none of them; raise ``StoreError`` (with ``retryable``) on failure.

        Writing an item that is already stored (a redelivery) overwrites it: never a second row.
        """

    def query_readings(
        self, measurement: str, patient: str | None, start: datetime, end: datetime
    ) -> list[Row]:
        """Points of one measurement (``"event"`` for events) with ``start <= time < end``,
        oldest first, optionally for one patient. For tests, reports and rule-state rebuild."""

    def close(self) -> None:
        """Release connections and files. Idempotent."""
