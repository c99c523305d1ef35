"""The audit trail as a person reads it: who was told what, when, and who acknowledged.

``homevitals alerts history --patient P`` prints one block per alert: its header (rule, severity,
opened, acknowledged by whom and how, resolved), one line per SMS with its state and Twilio's
delivery report, and the log of every step taken (escalations, retries, cancellations).
"""

from __future__ import annotations

__all__ = ["HISTORY_SQL", "format_history"]

HISTORY_SQL = (
    "SELECT a.alert_id, a.patient, a.rule, a.severity, a.state AS alert_state, a.opened_at,"
    " a.resolved_at, a.ack_code, a.acked_at, a.acked_by, n.kind, n.name, n.role, n.recipient,"
    " n.state AS sms_state, n.sent_at, n.sid, n.body, n.error, n.delivery"
    " FROM alerts a LEFT JOIN notifications n ON n.alert_id = a.alert_id"
    " /*where*/ ORDER BY a.opened_at, a.alert_id, n.id"
)


def _header(h: dict[str, object]) -> list[str]:
    lines = [
        f"alert {str(h['alert_id'])[:8]}  {h['patient']}  {h['rule']}  {h['severity']}"
        f"  {h['alert_state']}  opened {h['opened_at']}  code ACK {h['ack_code'] or '-'}"
    ]
    if h["acked_at"]:
        lines.append(f"  acknowledged {h['acked_at']} by {h['acked_by']}")
    if h["resolved_at"]:
        lines.append(f"  closed: resolved at {h['resolved_at']}")
    return lines


def format_history(rows: list[dict[str, object]]) -> str:
    """The audit trail as text: one block per alert, one line per message sent about it."""
    lines: list[str] = []
    current = None
    log: list[str] = []
    for h in rows:
        if h["alert_id"] != current:
            lines += log
            current = h["alert_id"]
            lines += _header(h)
            entries = h.get("log")
            log = []
            if isinstance(entries, list) and entries:
                log = ["  log:"] + [f"    {e}" for e in entries]
        if h["kind"] is None:
            continue
        delivery = f" ({h['delivery']})" if h["delivery"] else ""
        lines.append(
            f"  {h['kind']:<12}  {h['sms_state']:<9}  {h['sent_at'] or '-':<27}  to {h['name']}"
            f" ({h['role']}, {h['recipient']})  sid {h['sid'] or '-'}{delivery}"
        )
        lines.append(f"                {h['body']}")
        if h["error"]:
            lines.append(f"                error: {h['error']}")
    lines += log
    return "\n".join(lines) if lines else "no alerts"
