"""The audit trail of the alert ledger (alerts/ledger.py), read back: every alert, who was
told what and when, and who acknowledged (written by ``LedgerBase._log``)."""

from __future__ import annotations

from homevitals.alerts.history import HISTORY_SQL
from homevitals.alerts.ledger_base import LedgerBase

__all__ = ["AuditTrail"]


class AuditTrail(LedgerBase):
    def history(self, patient: str | None = None) -> list[dict[str, object]]:
        """The audit trail: every alert, who was told what and when, and who acknowledged."""
        q, args = HISTORY_SQL, ()  # type: tuple[str, tuple[object, ...]]
        if patient:
            q = q.replace("/*where*/", "WHERE a.patient = ?")
            args = (patient,)
        with self._lock:
            cur = self._db.execute(q, args)
            cols = list(cur.keys())
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            logs = self._db.execute("SELECT alert_id, time, entry FROM log ORDER BY id").fetchall()
        by_alert: dict[str, list[str]] = {}
        for alert_id, t, entry in logs:
            by_alert.setdefault(str(alert_id), []).append(f"{t}  {entry}")
        for r in rows:
            r["log"] = by_alert.get(str(r["alert_id"]), [])
        return rows
