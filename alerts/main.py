"""The alerts daemon's one entry point: runs ``AlertsApp`` (alerts/app.py) under the runner."""

from __future__ import annotations

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import Notifier
from homevitals.alerts.telemetry import alerts_metrics
from homevitals.infra.runtime import Runner
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config

__all__ = ["run_alerts"]


def run_alerts(
    cfg: Config, notifier: Notifier, clock: Clock, *, auth_token: str | None = None
) -> None:
    app = AlertsApp(cfg, notifier, clock, auth_token=auth_token)
    Runner(app, cfg.alerts.metrics, lambda: alerts_metrics(app)).run(app.start, app.stop)
