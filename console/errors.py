"""The console's exception family."""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["ConsoleError"]


class ConsoleError(HomevitalsError):
    """A console problem a person can act on (a bad password, a taken user name, a locked DB)."""
