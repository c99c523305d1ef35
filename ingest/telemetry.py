"""The ingest daemon's Prometheus metrics (served by the runner on /metrics)."""

from __future__ import annotations

from prometheus_client.core import HistogramMetricFamily

from homevitals.infra.deadletter import SERVER_REASONS
from homevitals.infra.metrics import Metric, counter, gauge
from homevitals.ingest.service import IngestService

__all__ = ["REJECT_REASONS", "ingest_metrics"]


# Every reason ingest dead-letters a message for (docs/wire-format.md), so that each series
# exists at 0 from the start and the first rejection shows in increase().
REJECT_REASONS = (*SERVER_REASONS, "store_rejected")


def ingest_metrics(s: IngestService) -> list[Metric]:
    return [
        counter("homevitals_ingest_received_total", "MQTT messages received", s.counts["received"]),
        counter("homevitals_ingest_written_total", "items written to the store", s.written),
        counter(
            "homevitals_ingest_rejected_total", "messages rejected, by reason",
            {**dict.fromkeys(REJECT_REASONS, 0), **s.rejects}, "reason"
        ),
        counter("homevitals_ingest_write_retries_total", "store writes retried", s.retries),
        counter(
            "homevitals_ingest_deadletter_unpublished_total",
            "rejects paho would not publish on the dead-letter topic (still stored)",
            s.counts["deadletter_unpublished"],
        ),
        gauge(
            "homevitals_ingest_backlog",
            "messages received, not yet written and acknowledged",
            s.held,
        ),
        HistogramMetricFamily(
            "homevitals_ingest_batch_write_seconds",
            "time to write one batch to the store",
            buckets=s.write_latency.cumulative(),
            sum_value=s.write_latency.total,
        ),
        gauge(
            "homevitals_ingest_connected", "1 while connected to the broker", s.connected
        ),
        *s.broker_watch.metrics(),
    ]
