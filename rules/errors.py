"""Errors of the rules stage."""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["RulesError"]


class RulesError(HomevitalsError):
    """The rule engine cannot run (state store, configuration)."""
