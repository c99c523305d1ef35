"""The notifier edge of the alerts stage: what it takes to send one SMS, and a console stand-in.

Implementations live one per module (``twilio_notifier`` for the real thing); the daemon's entry
point picks one and passes it in, so rules and escalation code never know which is in use.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TextIO, runtime_checkable

__all__ = ["ConsoleNotifier", "FindsSent", "Notifier", "SendResult"]


@dataclass(frozen=True)
class SendResult:
    """What the provider accepted: its message id (``sid``) and the state it reported."""

    sid: str
    status: str
    to: str
    body: str

    def __post_init__(self) -> None:
        for name in ("sid", "status", "to"):
            if not getattr(self, name):
                raise ValueError(f"SendResult.{name} must not be empty")


class Notifier(Protocol):
    """Sends one SMS. Raises ``NotifyError`` (see ``homevitals.alerts.errors``) on failure."""

    def send(self, to: str, body: str) -> SendResult: ...


@runtime_checkable
class FindsSent(Protocol):
    """Optional: a provider that can be asked whether it already took an SMS (Twilio). Without
    it, an SMS interrupted by a crash mid-send is sent again (alerts/app.py ``_reconcile``).
    Raises ``NotifyError`` when it cannot be asked now."""

    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None: ...


class ConsoleNotifier:
    """Prints each SMS instead of sending it, for demos and dry runs.

    ``stream`` defaults to the ``sys.stdout`` current at send time (not at construction), so
    redirected or captured output still sees the messages.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # itertools.count is advanced atomically under the GIL, so sids stay unique if two
        # threads send at once.
        self._counter = itertools.count(1)

    def send(self, to: str, body: str) -> SendResult:
        if not to:
            raise ValueError("ConsoleNotifier.send: 'to' must not be empty")
        sid = f"CONSOLE-{next(self._counter):04d}"
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(_format_block(to, sid, body))
        stream.flush()
        return SendResult(sid=sid, status="printed", to=to, body=body)


def _format_block(to: str, sid: str, body: str) -> str:
    """The block ConsoleNotifier prints: a header line, then the body indented by two spaces."""
    lines = body.splitlines() or [""]
    indented = "".join(f"  {line}\n" for line in lines)
    return f"SMS to {to} (sid {sid}):\n{indented}"
