"""The rules stage's one timer (``homevitals/infra/due_worker.py``): it sleeps on the injected clock
until this worker's earliest missing-data or silent-gateway check is due (a row of the rules'
state, ``due_checks``, written by ``rules/watch.py``), then judges the patients whose checks are
due (``RuleEngine.run_due``) in one transaction with the decisions. It replaced APScheduler's
fixed tick (issue 16): nothing is judged more often than a check can come due, a home that goes
silent is noticed at its due time rather than at the next tick, and a replay drives the same
code at its ticks (``step``)."""

from __future__ import annotations

from collections.abc import Callable

from homevitals.infra import due_worker
from homevitals.rules.engine import RuleEngine

__all__ = ["RulesTimer"]


class RulesTimer(due_worker.DueWorker):
    def __init__(
        self, engine: RuleEngine, cap_seconds: float, on_new: Callable[[], None]
    ) -> None:
        super().__init__(
            "rules-timers", engine.clock, engine.run_due, engine.next_due, cap_seconds, on_new
        )
        self.engine = engine
