"""The alert ledger's history with each alert's reading: composition-root glue for reports and
the console (issue 15), which may not import the alerts stage themselves.

``Ledger.history`` lists alerts by when they opened; a report places them by the reading that
raised them (``observed_at``), which may be hours earlier when a gateway sent its backlog late.
"""

from __future__ import annotations

from homevitals.alerts.ledger import Ledger
from homevitals.vocab import wire

__all__ = ["history_with_readings"]


def history_with_readings(ledger: Ledger, patient: str | None) -> list[dict[str, object]]:
    """``ledger.history(patient)`` rows, each with ``observed_at``, ``value`` and ``unit`` of
    its alert's decision (``observed_at`` None when the rule named no reading)."""
    rows = ledger.history(patient)
    decoded: dict[str, tuple[object, object, object]] = {}
    for r in rows:
        alert_id = str(r["alert_id"])
        if alert_id not in decoded:
            row = ledger.alert(alert_id)
            d = row.decoded() if row is not None else None
            decoded[alert_id] = (
                wire.format_time(d.observed_at) if d is not None and d.observed_at else None,
                d.value if d is not None else None, d.unit if d is not None else "")
        r["observed_at"], r["value"], r["unit"] = decoded[alert_id]
    return rows
