"""The alerts stage's one timer (``homevitals/infra/due_worker.py``): it sleeps on the
injected clock until the next due escalation step or reminder, then takes what is due.

Due times are rows in the alert ledger (``alerts.next_step_at``: the alert, its step, when the
next one is due; the SMS each step creates are rows unique per alert, kind and recipient). Taking
a step is safe however often it runs: each is a conditional transaction in the ledger
(``Escalator.run_due``).
"""

from __future__ import annotations

from collections.abc import Callable

from homevitals.alerts.escalation import Escalator
from homevitals.infra import due_worker

__all__ = ["DueWorker"]


class DueWorker(due_worker.DueWorker):
    def __init__(
        self, escalator: Escalator, cap_seconds: float, on_new: Callable[[], None]
    ) -> None:
        super().__init__(
            "alerts-timers", escalator.clock, escalator.run_due, escalator.ledger.next_due,
            cap_seconds, on_new,
        )
        self.escalator = escalator
