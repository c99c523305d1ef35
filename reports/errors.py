"""The exception family of the reports stage."""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["ReportError"]


class ReportError(HomevitalsError):
    """A report could not be made; the message names what is wrong (patient, dates, store)."""
