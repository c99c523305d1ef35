"""The exception family shared by every stage.

Each stage raises its own subclass (``GatewayError``, ``IngestError`` ...); third-party errors are
converted where they enter (``raise IngestError(...) from exc``).
"""

from __future__ import annotations

__all__ = ["ConfigError", "HomevitalsError", "WireError"]


class HomevitalsError(Exception):
    """Base of every error homevitals raises on purpose."""


class WireError(HomevitalsError):
    """A message does not follow the wire schema.

    ``reason`` is a short, stable key used to count rejects (``bad_json``, ``missing_field`` ...);
    the message names what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(HomevitalsError):
    """The configuration is invalid. ``problems`` lists every error as ``file: key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
