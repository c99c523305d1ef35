"""Clocks passed into every component, so a scenario replays in simulated time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SimulatedClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("simulated clock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, t: datetime) -> None:
        with self._lock:
            if t < self._now:
                raise ValueError(f"simulated time cannot go back from {self._now} to {t}")
            self._now = t.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.set(self.now() + delta)


def monotonic() -> float:
    return time.monotonic()
