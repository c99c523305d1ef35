"""The ingest stage's exception family.

Every error ingest raises on purpose is an ``IngestError``. Store failures carry ``retryable`` so
the consumer can decide between "keep the batch and try again later" (server down, overloaded,
timed out) and "this batch will never be accepted" (bad line protocol, bad credentials, no such
database): retrying the second kind forever would block every later reading behind it.
"""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["IngestError", "StoreError", "retryable_status"]


class IngestError(HomevitalsError):
    """Base of every error the ingest stage raises on purpose."""


class StoreError(IngestError):
    """A store could not accept or answer a request.

    The message names the URL (never credentials), the HTTP status when there was one, and the
    server's own error text. ``status`` is ``None`` when no HTTP answer arrived at all.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        cause_class: str = "",
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.cause_class = cause_class or type(self).__name__


def retryable_status(status: int) -> bool:
    """5xx and 429 are the server's trouble and pass; 4xx means this request is wrong."""
    return status >= 500 or status == 429
