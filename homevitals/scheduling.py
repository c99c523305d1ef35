"""The rules' fixed-interval tick: APScheduler 3.11 with a SQLite job store.

The alerts stage has no job store since issue 16: its due times are ledger rows and one timer
thread waits on the injected clock (``alerts/timers.py``). Here, APScheduler keeps the role it is
the better tool for, a fixed-interval tick (a server extra, never imported on the Pi).

Design (docs/rules-and-alerts.md, "Timers"): APScheduler decides *when to wake up*; the stage's
own durable state and its injected ``Clock`` decide *what is due*. A job only names an owner and a
key ("rules", "tick"); when it fires, the owner re-reads its state and acts only on what the
clock says is due, so a job that fires twice, late, or after a restart does no harm. Jobs live in
a ``SQLAlchemyJobStore`` on SQLite and so survive a restart; ``misfire_grace_time=None`` makes a
job that came due while the process was down run as soon as it is back (APScheduler 3.x user
guide, "Missed job executions and coalescing"), ``coalesce=True`` runs a backlog once.

Jobs are stored by textual reference (``homevitals.scheduling:fire``), never as pickled bound
methods: APScheduler 3 cannot serialise those, and nothing from the store is ever more than an
owner name and a key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from homevitals.clock import Clock
from homevitals.runtime import Progress, Worker

__all__ = ["JobScheduler", "default_path", "fire"]

logger = logging.getLogger(__name__)

_HANDLERS: dict[str, Callable[[str], None]] = {}
_HANDLERS_LOCK = threading.Lock()


def fire(owner: str, key: str) -> None:
    """The one job function in every store: hand ``key`` to the running owner."""
    with _HANDLERS_LOCK:
        handler = _HANDLERS.get(owner)
    if handler is None:
        logger.warning("timer %s/%s fired but %s is not running here", owner, key, owner)
        return
    try:
        handler(key)
    except Exception:  # a timer's supervisor: log, keep the scheduler alive
        logger.exception("timer %s/%s failed", owner, key)


class JobScheduler:
    """One owner's persistent timers: a periodic tick and one-shot wake-ups by key."""

    def __init__(
        self,
        owner: str,
        path: str | Path,
        on_fire: Callable[[str], None],
        clock: Clock,
        tick_seconds: float = 0.0,
    ) -> None:
        self.owner = owner
        self.on_fire = on_fire
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.job = Progress()  # busy while a job runs; idle between jobs
        self.job.idle()
        self._job_key = ""
        self._last_tick = time.monotonic()
        self._sched = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{Path(path)}")},
            executors={"default": ThreadPoolExecutor(1)},  # one at a time: owners need no locks
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )

    def _run_job(self, key: str) -> None:
        self._job_key = key
        self.job.beat()
        try:
            self.on_fire(key)
        finally:
            self.job.idle()
            if key == "tick":
                self._last_tick = time.monotonic()

    def worker(self) -> Worker:
        """For the runner: the scheduler runs, no job is stuck, and the tick keeps coming."""
        return Worker(f"scheduler-{self.owner}", self._problem)

    def _problem(self, stall: float) -> str | None:
        if not self._sched.running:
            return "not running"
        stuck = self.job.stalled(stall)
        if stuck is not None:
            return f"stuck in job {self._job_key!r} for {stuck:.0f} s (stalled)"
        late = time.monotonic() - self._last_tick
        if self.tick_seconds > 0 and late > self.tick_seconds + stall:
            return (f"no tick for {late:.0f} s (due every {self.tick_seconds:g} s): the"
                    " scheduler's threads have stopped")
        return None

    def start(self) -> None:
        with _HANDLERS_LOCK:
            _HANDLERS[self.owner] = self._run_job
        self._last_tick = time.monotonic()
        self._sched.start()
        if self.tick_seconds > 0:
            self._sched.add_job(
                fire,
                "interval",
                seconds=self.tick_seconds,
                args=[self.owner, "tick"],
                id=f"{self.owner}:tick",
                replace_existing=True,
            )
        else:
            self.cancel("tick")

    def wake_at(self, key: str, due: datetime, now: datetime | None = None) -> None:
        """Fire ``key`` ``due - now`` of wall time from here (``now``: the injected clock's time
        the caller judged by). A simulated clock that races ahead is not chased: what is due is
        judged again by that clock whenever any timer fires."""
        wall = datetime.now(UTC) + max(due - (now or self.clock.now()), timedelta(0))
        self._sched.add_job(
            fire,
            "date",
            run_date=wall,
            args=[self.owner, key],
            id=f"{self.owner}:{key}",
            replace_existing=True,
        )

    def cancel(self, key: str) -> None:
        try:
            self._sched.remove_job(f"{self.owner}:{key}")
        except JobLookupError:
            pass

    def jobs(self) -> list[tuple[str, datetime | None]]:
        return [(j.id, j.next_run_time) for j in self._sched.get_jobs()]

    def stop(self) -> None:
        with _HANDLERS_LOCK:
            if _HANDLERS.get(self.owner) == self._run_job:
                del _HANDLERS[self.owner]
        if self._sched.running:
            self._sched.shutdown(wait=False)


def default_path(base: str, suffix: str = ".jobs.sqlite") -> str:
    """The job store next to a stage's own database."""
    return str(Path(base).with_suffix("")) + suffix
