"""A stage's one timer: a worker that sleeps on the injected clock until the next due time in the
stage's own durable state, then takes what is due (issue 16, "One model of time").

The alerts stage (escalation steps and reminders, ``alerts/timers.py``) and the rules stage
(missing-data and silent-gateway checks, ``rules/timers.py``) each run one. Nothing else remembers
a timer: no job store, no wall-clock wake-up to overwrite in a replay. The worker reads the
earliest due time, sleeps until then on the clock
(``homevitals.vocab.clock.sleep_until``), and is woken
early by ``kick`` (a due time was added or removed) or when the clock moves (a simulated clock
wakes its sleepers). ``cap_seconds`` bounds one sleep in wall time, so a due time written by
another process (the CLI, the console, another worker on a shared database) is seen within that
long. Taking what is due must be safe however often it runs: the stage's ``run_due`` is a
transaction that acts only on what its state says is due. A driver (the replay) calls ``step``
instead of starting the thread: the same code, at the driver's moments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from homevitals.infra.runtime import LoopThread
from homevitals.vocab.clock import Clock, sleep_until

__all__ = ["DueWorker"]

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0


class DueWorker(LoopThread):
    """``run_due``: take what is due now (truthy: something new to publish or send);
    ``next_due``: the earliest due time (None: none)."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        run_due: Callable[[], object],
        next_due: Callable[[], datetime | None],
        cap_seconds: float,
        on_new: Callable[[], None],
    ) -> None:
        super().__init__(name, join_seconds=30)
        self.clock = clock
        self.run_due, self.next_due = run_due, next_due
        self.cap_seconds = cap_seconds
        self.on_new = on_new

    def kick(self) -> None:
        """A due time was added or removed: look again now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.progress.beat()
            self._wake.clear()  # before reading: a kick during the pass is not lost
            ok, nxt = self.step()
            self.progress.idle()
            if ok:
                sleep_until(self.clock, nxt, self._wake, self.cap_seconds)
            else:  # the database is away (a failover): try again in a second of wall time
                self._stop.wait(_RETRY_SECONDS)

    def step(self) -> tuple[bool, datetime | None]:
        """Take everything due now: (done, when the next is due; None: nothing is)."""
        try:
            if self.run_due():
                self.on_new()
            return True, self.next_due()
        except Exception:  # the timer's edge (a failover, a bug): log, keep the worker alive
            logger.exception("%s: taking what is due failed; trying again", self.name)
            return False, None
