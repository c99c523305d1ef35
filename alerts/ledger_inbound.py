"""The inbound SMS log of the alert ledger (alerts/ledger.py): each Twilio MessageSid once."""

from __future__ import annotations

from datetime import datetime

from homevitals.alerts.ledger_base import LedgerBase
from homevitals.vocab import wire

__all__ = ["InboundLog"]


class InboundLog(LedgerBase):
    def inbound_first(self, sid: str, sender: str, body: str, now: datetime) -> bool:
        """True the first time a MessageSid is seen (Twilio retries a webhook that timed out),
        and again while no outcome was recorded for it: an attempt that died half-way (the
        database failed over between the two) is handled by Twilio's retry."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO inbound(message_sid, time, sender, body) VALUES (?,?,?,?)"
                " ON CONFLICT DO NOTHING",
                (sid, wire.format_time(now), sender, body),
            )
            if cur.rowcount:
                return True
            row = db.execute("SELECT outcome FROM inbound WHERE message_sid=?", (sid,)).fetchone()
        return row is not None and row[0] is None

    def inbound_outcome(self, sid: str, outcome: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE inbound SET outcome=? WHERE message_sid=?", (outcome, sid))
