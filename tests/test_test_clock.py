"""The test-only clock hook of the daemons: off unless a test names an offset file, and a move of
the offset wakes a worker that sleeps on it until a due time (as a SimulatedClock does)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from daemons import TestClock

from homevitals.vocab.clock import TEST_CLOCK_ENV, OffsetFileClock, SystemClock, daemon_clock


def test_a_daemon_runs_on_the_system_clock_unless_a_test_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(TEST_CLOCK_ENV, raising=False)
    assert isinstance(daemon_clock(), SystemClock)
    assert caplog.records == []
    moved = TestClock(tmp_path)
    for key, value in moved.env().items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.WARNING, logger="homevitals.vocab.clock"):
        clock = daemon_clock()
    assert isinstance(clock, OffsetFileClock)
    assert [r.getMessage() for r in caplog.records] == [
        f"test clock: wall time plus the offset in {moved.path} ({TEST_CLOCK_ENV} is for tests"
        " only)"]


def test_moving_the_offset_wakes_a_sleeper_at_its_due_time(tmp_path: Path) -> None:
    moved = TestClock(tmp_path)
    clock = OffsetFileClock(str(moved.path))
    start = clock.now()
    due = start + timedelta(hours=1)
    woke: list[float] = []

    def sleeper() -> None:
        clock.sleep_until(due, threading.Event(), cap=60)
        woke.append(time.monotonic())

    thread = threading.Thread(target=sleeper)
    thread.start()
    moved.advance(30 * 60)  # half-way: still asleep
    thread.join(0.3)
    assert woke == []
    moved.advance(31 * 60)
    moved_at = time.monotonic()
    thread.join(10)
    assert woke and woke[0] - moved_at < 5, "the sleeper did not wake when the clock passed due"
    assert clock.now() - start >= timedelta(minutes=61)
