"""Clocks passed into every component, so a scenario replays in simulated time.

A worker that waits for a due time waits on its clock (``sleep_until``), never on the wall: the
system clock sleeps the difference, a simulated clock until it is moved past the due time. So the
same waiting code runs live, in a replay and in a test that advances the clock instead of
sleeping (issue 16, "One model of time")."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SimulatedClock", "SystemClock", "WaitingClock", "sleep_until"]


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


def sleep_until(clock: Clock, due: datetime | None, wake: threading.Event, cap: float) -> None:
    """Wait on ``clock`` if it can; a clock that only tells the time is waited on in wall time."""
    if isinstance(clock, WaitingClock):
        clock.sleep_until(due, wake, cap)
        return
    wait = cap if due is None else (due - clock.now()).total_seconds()
    wake.wait(max(0.0, min(cap, wait)))


def monotonic() -> float:
    return time.monotonic()
