"""The gateway's edge: see ``homevitals.transport`` (shared with the simulators)."""

from __future__ import annotations

from homevitals.transport import BleTransport, Deliver, RawValue

__all__ = ["BleTransport", "Deliver", "RawValue"]
