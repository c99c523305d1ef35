"""Clocks passed into every component, so a scenario replays in simulated time.

A worker that waits for a due time waits on its clock (``sleep_until``), never on the wall: the
system clock sleeps the difference, a simulated clock until it is moved past the due time. So the
same waiting code runs live, in a replay and in a test that advances the clock instead of
sleeping (issue 16, "One model of time")."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "OffsetFileClock",
    "SimulatedClock",
    "SystemClock",
    "TEST_CLOCK_ENV",
    "WaitingClock",
    "daemon_clock",
    "sleep_until",
]

logger = logging.getLogger(__name__)

# Test-only: names a file whose number (seconds) is added to the wall time of a daemon's clock.
# Never set in production; a daemon that sees it says so in its log.
TEST_CLOCK_ENV = "HOMEVITALS_TEST_CLOCK_FILE"


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


@runtime_checkable
class WaitingClock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, due: datetime | None, wake: threading.Event, cap: float) -> None:
        """Return at ``due`` by this clock, when ``wake`` is set, or after ``cap`` wall seconds
        (a safety net: another process may have added an earlier due time)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, due: datetime | None, wake: threading.Event, cap: float) -> None:
        wait = cap if due is None else (due - self.now()).total_seconds()
        wake.wait(max(0.0, min(cap, wait)))


class SimulatedClock:
    """A clock that only moves when told to. Thread-safe; moving it wakes every sleeper."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("simulated clock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self._sleepers: set[threading.Event] = set()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, t: datetime) -> None:
        with self._lock:
            if t < self._now:
                raise ValueError(f"simulated time cannot go back from {self._now} to {t}")
            self._now = t.astimezone(UTC)
            sleepers = list(self._sleepers)
        for wake in sleepers:  # each re-reads its due time against the new now
            wake.set()

    def advance(self, delta: timedelta) -> None:
        self.set(self.now() + delta)

    def sleep_until(self, due: datetime | None, wake: threading.Event, cap: float) -> None:
        with self._lock:
            if due is not None and self._now >= due:
                return
            self._sleepers.add(wake)
        try:
            wake.wait(cap)
        finally:
            with self._lock:
                self._sleepers.discard(wake)


class OffsetFileClock:
    """Wall time plus an offset read from a file: how a test moves a daemon's clock (a separate
    process) forward instead of sleeping. Moving it wakes sleepers within ``_LOOK_SECONDS``, as a
    SimulatedClock wakes its own; a missing or empty file is no offset."""

    _LOOK_SECONDS = 0.05

    def __init__(self, path: str) -> None:
        self.path = path

    def offset(self) -> timedelta:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return timedelta()
        return timedelta(seconds=float(text or 0))

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def sleep_until(self, due: datetime | None, wake: threading.Event, cap: float) -> None:
        end = time.monotonic() + cap
        while not wake.is_set():
            left = end - time.monotonic()
            if due is not None:
                left = min(left, (due - self.now()).total_seconds())
            if left <= 0:
                return
            wake.wait(min(left, self._LOOK_SECONDS))  # the test may have moved the offset


def daemon_clock() -> SystemClock | OffsetFileClock:
    """The clock a daemon runs on: the system's, unless a test named an offset file."""
    path = os.environ.get(TEST_CLOCK_ENV)
    if not path:
        return SystemClock()
    logger.warning("test clock: wall time plus the offset in %s (%s is for tests only)",
                   path, TEST_CLOCK_ENV)
    return OffsetFileClock(path)


def sleep_until(clock: Clock, due: datetime | None, wake: threading.Event, cap: float) -> None:
    """Wait on ``clock`` if it can; a clock that only tells the time is waited on in wall time."""
    if isinstance(clock, WaitingClock):
        clock.sleep_until(due, wake, cap)
        return
    wait = cap if due is None else (due - clock.now()).total_seconds()
    wake.wait(max(0.0, min(cap, wait)))


def monotonic() -> float:
    return time.monotonic()
