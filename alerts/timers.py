"""The alerts stage's one timer: a worker that sleeps on the injected clock until the next due
escalation step or reminder, then takes what is due (issue 16, "One model of time").

Due times are rows in the alert ledger (``alerts.next_step_at``: the alert, its step, when the
next one is due; the SMS each step creates are rows unique per alert, kind and recipient). Nothing
else remembers a timer: no job store, no wall-clock wake-up to overwrite in a replay. The worker
reads the earliest due time, sleeps until then on the clock (``homevitals.clock.sleep_until``),
and is woken early when a decision adds a due time, an ACK removes one, or the clock moves (a
simulated clock wakes its sleepers). ``cap_seconds`` bounds one sleep in wall time, so a due time
written by another process (the CLI, the console, another alert worker on a shared database) is
seen within that long. Taking a step is safe however often it runs: each is a conditional
transaction in the ledger (``Escalator.run_due``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from homevitals.alerts.escalation import Escalator
from homevitals.clock import sleep_until
from homevitals.runtime import Progress, Worker, thread_worker

__all__ = ["DueWorker"]

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0


class DueWorker:
    def __init__(
        self, escalator: Escalator, cap_seconds: float, on_new: Callable[[], None]
    ) -> None:
        self.escalator = escalator
        self.cap_seconds = cap_seconds
        self.on_new = on_new
        self.progress = Progress()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-timers", daemon=True)

    def kick(self) -> None:
        """A due time was added or removed: look again now."""
        self._wake.set()

    def worker(self) -> Worker:
        return thread_worker("alerts-timers", self._thread, self.progress)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.progress.beat()
            self._wake.clear()  # before reading: a kick during the pass is not lost
            ok, nxt = self.step()
            self.progress.idle()
            if ok:
                sleep_until(self.escalator.clock, nxt, self._wake, self.cap_seconds)
            else:  # the ledger is away (a failover): try again in a second of wall time
                self._stop.wait(_RETRY_SECONDS)

    def step(self) -> tuple[bool, datetime | None]:
        """Take everything due now: (done, when the next step is due; None: none)."""
        try:
            if self.escalator.run_due():
                self.on_new()
            return True, self.escalator.ledger.next_due()
        except Exception:  # the timer's edge (a failover, a bug): log, keep the worker alive
            logger.exception("taking due escalation steps failed; trying again")
            return False, None
