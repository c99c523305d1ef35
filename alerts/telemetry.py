"""The alerts daemon's Prometheus metrics (served by the runner on /metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homevitals.infra.deadletter import SERVER_REASONS
from homevitals.infra.metrics import Metric, counter, gauge

if TYPE_CHECKING:
    from homevitals.alerts.app import AlertsApp

__all__ = ["alerts_metrics"]


def alerts_metrics(app: AlertsApp) -> list[Metric]:
    return [
        # A gauge: SMS leave "pending" and "sending", so these go down as well as up.
        gauge("homevitals_alerts_notifications", "SMS in the ledger by state (sent, failed,"
              " pending ...)", app.ledger.state_counts(), "state"),
        counter("homevitals_alerts_sms_sent_total", "SMS the provider took, since start",
                app.sms["sent"]),
        counter("homevitals_alerts_sms_failed_total", "SMS given up on, since start",
                app.sms["failed"]),
        counter("homevitals_alerts_rejected_total",
                "decisions the alert service dead-lettered, by reason",
                {**dict.fromkeys(SERVER_REASONS, 0), **app.dead.counts}, "reason"),
        counter("homevitals_alerts_sms_folded_total",
                "SMS held back by the alarm budget and folded into a digest",
                app.budget.folded_total()),
        gauge("homevitals_alerts_pending", "SMS waiting to be sent", app.ledger.pending_count()),
        gauge("homevitals_alerts_connected", "1 while connected to the broker",
              app.subscriber.watch.connected),
    ]
