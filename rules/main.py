"""The rules daemon's one entry point: it builds the stage's app (``rules/app.py``: the threads
and what they do) and runs it under the one runner (``homevitals.infra.runtime``)."""

from __future__ import annotations

from homevitals.infra.runtime import Runner
from homevitals.rules.app import RulesApp
from homevitals.rules.telemetry import rules_metrics
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config

__all__ = ["run_rules"]


def run_rules(cfg: Config, clock: Clock | None = None) -> None:
    app = RulesApp(cfg, clock)
    Runner(app, cfg.rules.metrics, lambda: rules_metrics(app)).run(app.start, app.stop)
