"""Growing, jittered retry delays, so that a fleet does not retry in lock-step.

"Decorrelated jitter" from Marc Brooker, "Exponential Backoff And Jitter" (AWS Architecture Blog,
2015): each delay is drawn between the base and three times the previous delay, capped. After a
broker restart a thousand gateways that lost their connection in the same second come back spread
over the first seconds instead of all at once, and spread wider at every failed attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``next()`` gives the delay before the next attempt; ``reset()`` after a success."""

    base: float = 1.0
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    _previous: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap (got {self.base}, {self.cap})")

    def next(self) -> float:
        previous = self.base if self._previous is None else self._previous
        delay = min(self.cap, self.rng.uniform(self.base, previous * 3))
        self._previous = delay
        return delay

    def reset(self) -> None:
        self._previous = None
