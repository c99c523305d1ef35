"""The care team's web console: alert inbox, patients, dynamic health record (issue 15)."""

from homevitals.console.errors import ConsoleError

__all__ = ["ConsoleError"]
