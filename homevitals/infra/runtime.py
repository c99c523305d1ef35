"""One daemon runner for every stage: signals -> start -> health -> watchdog -> wait -> stop.

Each app declares, publicly, the threads and tasks it needs (``workers()``) and the conditions
under which it does its job (``conditions()``). The runner owns the rest:

- liveness (``/healthz``) is every worker alive *and making progress*: a loop stamps a
  ``Progress`` each time round, a handler stamps it when it starts on a message and marks it idle
  when done; a worker that is busy but has not stamped for ``stall_seconds`` (plus what it said
  its current step may take) is stalled;
- readiness (``/readyz``) is every stated condition (broker session, subscription, the store
  accepting writes ...);
- systemd (Type=notify): ``READY=1`` once ready (or, alive but still waiting for the broker or
  the store, after ``ready_grace`` seconds, so that systemd's start timeout does not kill a daemon
  that can only wait), ``WATCHDOG=1`` only while every worker makes progress, ``STATUS=`` with
  what is wrong, ``STOPPING=1`` at shutdown. A daemon whose handling has stalled stops feeding the
  watchdog and systemd restarts it (``WatchdogSec=`` with ``Restart=``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from homevitals.infra.metrics import HealthServer, Metric, Verdict
from homevitals.infra.sdnotify import SystemdNotifier
from homevitals.vocab.config import MetricsConfig

__all__ = [
    "Condition",
    "Declared",
    "LoopThread",
    "Progress",
    "Runner",
    "Worker",
    "task_worker",
    "thread_worker",
]

logger = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 30.0
# systemd's default TimeoutStartSec is 90 s: READY=1 comes before it even while the broker is away.
READY_GRACE_SECONDS = 60.0


class Progress:
    """A worker's progress stamp (monotonic time), written by the worker, read by the runner.

    ``beat(allow)``: busy, and progressing now; ``allow`` is how much longer than the stall limit
    the step it starts may take (a write with a timeout, a back-off wait). ``idle()``: waiting for
    work, which may last forever. A fresh stamp is busy from its creation."""

    __slots__ = ("_allow", "_busy", "_last", "_since")

    def __init__(self) -> None:
        self._allow = 0.0
        self._last = self._since = time.monotonic()
        self._busy = True

    def beat(self, allow: float = 0.0) -> None:
        self._allow = allow
        self._last = now = time.monotonic()
        if not self._busy:
            self._since = now
            self._busy = True

    def idle(self) -> None:
        self._busy = False

    def busy_for(self, now: float | None = None) -> float:
        """Seconds since the worker last went from idle to busy (0 while idle)."""
        return ((now or time.monotonic()) - self._since) if self._busy else 0.0

    def stalled(self, stall_seconds: float, now: float | None = None) -> float | None:
        """Seconds since the last stamp, if that is past the limit while busy; else None."""
        age = (now or time.monotonic()) - self._last
        return age if self._busy and age > stall_seconds + self._allow else None


@dataclass(frozen=True)
class Worker:
    """A thread or task the daemon needs. ``problem(stall_seconds)`` is None while it is alive and
    making progress, else one line saying what is wrong."""

    name: str
    problem: Callable[[float], str | None]


@dataclass(frozen=True)
class Condition:
    """A readiness condition: ``problem()`` is None while it holds, else why not."""

    name: str
    problem: Callable[[], str | None]


class Declared(Protocol):
    """What an app tells the runner about itself."""

    def workers(self) -> Sequence[Worker]: ...

    def conditions(self) -> Sequence[Condition]: ...


def _progress_problem(progress: Progress | None, stall: float) -> str | None:
    if progress is None:
        return None
    age = progress.stalled(stall)
    return None if age is None else f"no progress for {age:.0f} s (stalled)"


def thread_worker(
    name: str,
    thread: threading.Thread | Callable[[], threading.Thread | None],
    progress: Progress | None = None,
) -> Worker:
    """A thread (or a function giving it, for one started later) that must run and progress."""

    def problem(stall: float) -> str | None:
        t = thread() if callable(thread) and not isinstance(thread, threading.Thread) else thread
        if t is None:
            return "not started"
        if not t.is_alive():
            return "not running (the thread has ended)"
        return _progress_problem(progress, stall)

    return Worker(name, problem)


class LoopThread:
    """A stage's own daemon thread: ``_run`` loops until ``stop``; ``_wake`` cuts its waits
    short (set by ``stop`` too). ``worker()`` is what the runner watches: alive and making
    ``progress``."""

    def __init__(self, name: str, join_seconds: float) -> None:
        self.name = name
        self.progress = Progress()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._join_seconds = join_seconds
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def worker(self) -> Worker:
        return thread_worker(self.name, self._thread, self.progress)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_seconds)

    def _run(self) -> None:
        raise NotImplementedError


def task_worker(
    name: str, task: Callable[[], asyncio.Task[object] | asyncio.Task[None] | None],
    progress: Progress | None = None,
) -> Worker:
    """An asyncio task, found when asked (tasks are created by the app's ``run``)."""

    def problem(stall: float) -> str | None:
        t = task()
        if t is None:
            return "not started"
        if t.done():
            exc = None if t.cancelled() else t.exception()
            return f"ended ({exc!r})" if exc is not None else "ended"
        return _progress_problem(progress, stall)

    return Worker(name, problem)


class Runner:
    """Runs one app: health endpoints, systemd notification and watchdog, signals, shutdown."""

    def __init__(
        self,
        app: Declared,
        metrics: MetricsConfig | None,
        read_metrics: Callable[[], Iterable[Metric]],
        *,
        notifier: SystemdNotifier | None = None,
        ready_grace: float = READY_GRACE_SECONDS,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.read_metrics = read_metrics
        self.stall_seconds = metrics.stall_seconds if metrics else DEFAULT_STALL_SECONDS
        self.notifier = notifier or SystemdNotifier()
        self.ready_grace = ready_grace
        self.stopping = threading.Event()
        self.health: HealthServer | None = None
        self._supervisor: threading.Thread | None = None
        self._reported: tuple[str, ...] = ()
        self._stop_sent = False

    # --- what /healthz and /readyz answer ---------------------------------------------------
    def liveness(self) -> Verdict:
        lines, ok = [], True
        for w in self.app.workers():
            problem = w.problem(self.stall_seconds)
            ok = ok and problem is None
            lines.append(f"{w.name}: {problem or 'ok'}")
        return Verdict(ok, lines)

    def readiness(self) -> Verdict:
        if self.stopping.is_set():
            return Verdict(False, ["stopping"])
        lines, ok = [], True
        for c in self.app.conditions():
            problem = c.problem()
            ok = ok and problem is None
            lines.append(f"{c.name}: {problem or 'ok'}")
        return Verdict(ok, lines)

    # --- life cycle -----------------------------------------------------------------------
    def run(self, start: Callable[[], None], stop: Callable[[], None]) -> None:
        """A threaded app: SIGTERM/SIGINT end the wait, then ``stop`` drains and closes."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        with self.serving():  # first: a health port that is taken stops us before anything runs
            start()
            self.stopping.wait()
            self._stopping()
            stop()

    async def run_async(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """An asyncio app: ``main(stop)`` runs until ``stop`` is set (SIGTERM/SIGINT) or it ends."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            self._stopping()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        with self.serving():
            try:
                await main(stop)
            finally:
                self._stopping()

    @contextmanager
    def serving(self) -> Iterator[Runner]:
        """Health endpoints and the supervisor (watchdog) while the block runs."""
        if self.metrics is not None:
            self.health = HealthServer(
                self.metrics.host, self.metrics.port, self.read_metrics,
                ready=self.readiness, live=self.liveness,
            )
            self.health.start()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        try:
            yield self
        finally:
            self._stopping()
            self._supervisor.join(timeout=5)
            if self.health is not None:
                self.health.stop()
            self.notifier.close()

    def _stopping(self) -> None:
        self.stopping.set()
        if not self._stop_sent:
            self._stop_sent = True
            self.notifier.notify("STOPPING=1", "STATUS=stopping")

    # --- the supervisor thread ------------------------------------------------------------
    def _supervise(self) -> None:
        watchdog = self.notifier.watchdog_seconds
        period = min(1.0, watchdog / 2) if watchdog else 1.0
        started = time.monotonic()
        ready_sent = False
        while not self.stopping.wait(period):
            live, ready = self.liveness(), self.readiness()
            self._report(live, ready)
            if self.stopping.is_set():
                break
            if live.ok and watchdog:
                self.notifier.notify("WATCHDOG=1")
            if not ready_sent and live.ok and (
                ready.ok or time.monotonic() - started >= self.ready_grace
            ):
                ready_sent = self.notifier.notify("READY=1", f"STATUS={_status(live, ready)}")

    def _report(self, live: Verdict, ready: Verdict) -> None:
        """Log and tell systemd (STATUS=) when the set of what is wrong changes."""
        wrong = tuple(line for v in (live, ready) for line in v.lines if not line.endswith(": ok"))
        names = tuple(line.split(":", 1)[0] for line in wrong)
        if names == self._reported:
            return
        self._reported = names
        if not live.ok:
            fed = " (systemd's watchdog is no longer fed)" if self.notifier.watchdog_seconds else ""
            logger.error("not alive: %s%s", "; ".join(x for x in live.lines
                                                      if not x.endswith(": ok")), fed)
        elif wrong:
            # The names only: each stage logs its own trouble once (the store's error, a lost
            # connection); /readyz and systemd's STATUS carry the reasons.
            logger.warning("not ready: %s", ", ".join(names))
        else:
            logger.info("alive and ready")
        self.notifier.notify(f"STATUS={_status(live, ready)}")


def _status(live: Verdict, ready: Verdict) -> str:
    if not live.ok:
        return "stalled: " + "; ".join(x for x in live.lines if not x.endswith(": ok"))
    if not ready.ok:
        return "waiting: " + "; ".join(x for x in ready.lines if not x.endswith(": ok"))
    return "alive and ready"
