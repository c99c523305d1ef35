"""The words a doctor reads on a phone at 3 a.m.: short, exact, unambiguous.

Every alert SMS names the patient, the value with its unit, the local time in the patient's own
time zone, the reason, any flag the device raised about the measurement, and the short code to
acknowledge it by replying ("ACK 4821").
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from homevitals.readings import AlertDecision, AlertState

__all__ = [
    "display_name", "ack_text", "alert_text", "escalation_text", "reminder_text", "update_text"
]

_FLAG_WORDS = {
    "body_movement": "body movement",
    "cuff_too_loose": "cuff too loose",
    "irregular_pulse": "irregular pulse",
    "pulse_above_range": "pulse above range",
    "pulse_below_range": "pulse below range",
    "improper_position": "improper measurement position",
}


def display_name(name: str, patient_id: str, number: str | None, privacy: str) -> str:
    """How an SMS names the patient. ``initials``: an SMS can be read over a shoulder or on a lock
    screen, so a health centre may choose to send only initials and its own patient number."""
    if privacy != "initials":
        return name
    initials = "".join(f"{part[0].upper()}." for part in name.replace("-", " ").split() if part)
    return f"{initials} (patient {number or patient_id})"


def _at(t: datetime, zone: ZoneInfo) -> str:
    when = t.astimezone(zone)
    return f"{when:%H:%M} on {when:%d %b %Y} ({zone.key})"


def _what(d: AlertDecision, patient_name: str, at: str) -> str:
    if d.measurement == "event":
        return f"{patient_name} pressed the call button at {at}"
    if d.measurement == "gateway":
        return f"{patient_name}: the home gateway has not been heard from since {at}"
    if d.value is None:
        return f"{patient_name}: no {d.measurement} reading since {at}"
    return f"{patient_name}: {d.field} {d.value:g} {d.unit} at {at}"


def alert_text(
    d: AlertDecision, patient_name: str, zone: ZoneInfo, ack_code: str | None = None
) -> str:
    at = _at(d.observed_at or d.time, zone)
    if d.state == AlertState.RESOLVED:
        value = f" {d.field} {d.value:g} {d.unit}" if d.value is not None else ""
        ref = f" (alert ACK {ack_code})" if ack_code else f" Ref {d.alert_id[:8]}"
        return f"homevitals ALL CLEAR: {patient_name}:{value} at {at}. {d.reason}.{ref}"
    sev = str(d.severity).upper()
    text = f"homevitals {sev}: {_what(d, patient_name, at)}. {d.reason}."
    if d.flags:
        text += " Device flags: " + ", ".join(_FLAG_WORDS.get(f, f) for f in d.flags) + "."
    if ack_code:
        return f"{text} Reply ACK {ack_code} to acknowledge."
    return f"{text} Ref {d.alert_id[:8]}"


def escalation_text(
    d: AlertDecision, patient_name: str, zone: ZoneInfo, ack_code: str, not_acked_by: list[str]
) -> str:
    who = ", ".join(not_acked_by) or "the care team"
    return f"ESCALATED, not acknowledged by {who}. " + alert_text(d, patient_name, zone, ack_code)


def reminder_text(
    d: AlertDecision, patient_name: str, zone: ZoneInfo, ack_code: str, n: int
) -> str:
    return f"REMINDER {n}, still not acknowledged. " + alert_text(d, patient_name, zone, ack_code)


def ack_text(
    d: AlertDecision, patient_name: str, zone: ZoneInfo, ack_code: str, by: str, at: datetime
) -> str:
    return (
        f"homevitals: {by} acknowledged the {str(d.severity).upper()} alert about {patient_name}"
        f" (ACK {ack_code}) at {_at(at, zone)}. No action needed from you."
    )


def update_text(
    d: AlertDecision, patient_name: str, zone: ZoneInfo, ack_code: str | None = None
) -> str:
    """The one SMS when an episode's severity rises (issue 14): the same alert and ACK code,
    what it is now, and why. Never a second alert."""
    now = _what(d, patient_name, _at(d.observed_at or d.time, zone))
    ref = f"Same alert: reply ACK {ack_code}." if ack_code else f"Ref {d.alert_id[:8]}"
    return f"homevitals UPDATE, now {str(d.severity).upper()}: {now}. {d.reason}. {ref}"
