"""How a failing store write is logged: once per distinct problem, a reminder every ten
minutes while it lasts, and one line when writes recover.

A database that is missing or refuses our credentials stays so until an operator acts: a line
per retry (every 30 s at most, for days) hides the one line that says what to run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["WriteTrouble"]

logger = logging.getLogger(__name__)


class WriteTrouble:
    def __init__(self, remind_seconds: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.remind_seconds = remind_seconds
        self.clock = clock
        self.problem: str | None = None  # the failure being reported, None while writes work
        self._since = self._logged = 0.0
        self._failures = 0

    def failed(self, points: int, error: Exception, delay: float) -> None:
        now, text = self.clock(), str(error)
        if self.problem is None:
            self._since = now
        self._failures += 1
        if text != self.problem:
            logger.error("write of %d points failed; retrying in %.1f s, then with growing"
                         " delays (logged again if the problem changes, else every %.0f min): %s",
                         points, delay, self.remind_seconds / 60, text)
            self._logged = now
        elif now - self._logged >= self.remind_seconds:
            logger.error("writes still failing after %d attempts in %.0f s: %s",
                         self._failures, now - self._since, text)
            self._logged = now
        else:
            logger.debug("write of %d points failed again; retrying in %.1f s", points, delay)
        self.problem = text

    def succeeded(self, points: int) -> None:
        if self.problem is None:
            return
        logger.warning("writes recovered: %d points written after %d failed attempts in %.0f s",
                       points, self._failures, self.clock() - self._since)
        self.problem, self._failures = None, 0
