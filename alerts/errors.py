"""The exception family of the alerts stage.

Callers decide what to do with a failed SMS from two flags, not from Twilio's codes:
``retryable`` (send the same SMS again later) and ``permanent`` (this recipient cannot be
reached this way; try another doctor or channel instead).
"""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["AlertsError", "NotifyError"]


class AlertsError(HomevitalsError):
    """Base of every error the alerts stage raises on purpose (also bad notifier set-up)."""


class NotifyError(AlertsError):
    """An SMS could not be handed to the provider.

    ``code`` is the provider's error code (Twilio's 5-digit codes) and ``status`` the HTTP status,
    each ``None`` when there was no response (connection refused, timeout). An error is never both
    ``permanent`` and ``retryable``; it may be neither (e.g. a rejected auth token: retrying will
    not help, but the recipient is not at fault either).
    """

    def __init__(
        self,
        to: str,
        detail: str,
        *,
        permanent: bool = False,
        retryable: bool = False,
        code: int | None = None,
        status: int | None = None,
    ) -> None:
        if permanent and retryable:
            raise ValueError("a NotifyError cannot be both permanent and retryable")
        super().__init__(_describe(to, detail, code, status))
        self.to = to
        self.permanent = permanent
        self.retryable = retryable
        self.code = code
        self.status = status


def _describe(to: str, detail: str, code: int | None, status: int | None) -> str:
    where = ", ".join(
        part
        for part in (
            f"Twilio error {code}" if code is not None else "",
            f"HTTP {status}" if status is not None else "",
        )
        if part
    )
    return f"SMS to {to} failed ({where}): {detail}" if where else f"SMS to {to} failed: {detail}"
