"""Dead letters on the wire: a value or message some stage could not accept, kept with the
reason, a bounded prefix of its bytes, their size and SHA-256 (docs/wire-format.md)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from homevitals.vocab.errors import WireError
from homevitals.vocab.wire_time import format_time

__all__ = ["DEADLETTER_KEEP", "Reject", "decode_reject", "make_reject"]

# A dead letter keeps this much of the payload it names (hex, so twice as many characters),
# with the whole payload's size and SHA-256: enough to see what was sent, bounded in size, and
# small enough that the dead letter itself always fits under MAX_PAYLOAD.
DEADLETTER_KEEP = 4 * 1024
_ERROR_KEEP = 1000  # characters of an error message kept in a dead letter

class Reject(dict[str, Any]):
    """A value or message some stage could not accept, kept with the reason (dead-letter)."""


def make_reject(
    *,
    stage: str,
    reason: str,
    error: str,
    topic: str,
    payload: bytes | bytearray,
    time: datetime,
    error_class: str = "",
    extra: dict[str, Any] | None = None,
) -> Reject:
    """A dead letter: what was wrong, where and when, and the bytes themselves (their first
    DEADLETTER_KEEP bytes when larger, with the whole payload's size and SHA-256)."""
    body: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "error": error[:_ERROR_KEEP],
        "topic": topic[:_ERROR_KEEP],
        "payload_hex": bytes(payload[:DEADLETTER_KEEP]).hex(),
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "time": format_time(time),
    }
    if len(payload) > DEADLETTER_KEEP:
        body["payload_truncated"] = True
    if error_class:
        body["error_class"] = error_class
    return Reject({**(extra or {}), **body})


def decode_reject(o: dict[str, Any]) -> Reject:
    """A decoded dead letter (the wire decoder's errors, word for word)."""
    for key in ("stage", "reason", "error"):
        if key not in o:
            raise WireError("missing_field", f"missing field {key!r}")
        if not isinstance(o[key], str):
            raise WireError("bad_field", f"field {key!r} must be str, got {o[key]!r}")
    return Reject({k: v for k, v in o.items() if k not in ("v", "type")})
