"""The rules daemon's Prometheus metrics (served by the runner on /metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homevitals.infra.deadletter import SERVER_REASONS
from homevitals.infra.metrics import Metric, counter, gauge

if TYPE_CHECKING:
    from homevitals.rules.app import RulesApp

__all__ = ["rules_metrics"]


def rules_metrics(app: RulesApp) -> list[Metric]:
    return [
        counter("homevitals_rules_decisions_total", "alert decisions made, by state and outcome",
                {k: v for k, v in app.engine.counts.items()}, "kind"),
        counter("homevitals_rules_rejected_total",
                "messages the rules dead-lettered, by reason",
                {**dict.fromkeys(SERVER_REASONS, 0), **app.dead.counts}, "reason"),
        counter("homevitals_rules_published_total", "decisions handed to the broker",
                app.pump.published),
        counter("homevitals_rules_acknowledged_total", "decisions the broker acknowledged",
                app.pump.acked),
        gauge("homevitals_rules_outbox", "decisions waiting for the broker", len(app.outbox)),
        gauge("homevitals_rules_connected", "1 while connected to the broker",
              app.subscriber.watch.connected),
        *_partition_metrics(app),
    ]


def _partition_metrics(app: RulesApp) -> list[Metric]:
    """The cluster profile's ownership (docs/cluster.md "Rules ownership"); none on MQTT."""
    source = app.source
    if source is None:
        return []
    return [
        gauge("homevitals_rules_partitions_owned",
              "partitions this worker has handled a message of since it connected",
              len(source.owned)),
        counter("homevitals_rules_partitioned_total",
                "messages this worker re-keyed by home into the partitions",
                source.counts["partitioned"]),
    ]
