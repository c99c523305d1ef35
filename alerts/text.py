"""The words a doctor reads on a phone at 3 a.m.: short, exact, unambiguous.

Every alert SMS names the patient, the value with its unit, the local time in the patient's own
time zone, the reason, and any flag the device raised about the measurement.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from homevitals.readings import AlertDecision, AlertState

__all__ = ["alert_text"]

_FLAG_WORDS = {
    "body_movement": "body movement",
    "cuff_too_loose": "cuff too loose",
    "irregular_pulse": "irregular pulse",
    "pulse_above_range": "pulse above range",
    "pulse_below_range": "pulse below range",
    "improper_position": "improper measurement position",
}


def alert_text(d: AlertDecision, patient_name: str, zone: ZoneInfo) -> str:
    when = (d.observed_at or d.time).astimezone(zone)
    at = f"{when:%H:%M} on {when:%d %b %Y} ({zone.key})"
    ref = f"Ref {d.alert_id[:8]}"
    if d.state == AlertState.RESOLVED:
        value = f" {d.field} {d.value:g} {d.unit}" if d.value is not None else ""
        return f"homevitals ALL CLEAR: {patient_name}:{value} at {at}. {d.reason}. {ref}"
    sev = str(d.severity).upper()
    if d.measurement == "event":
        what = f"{patient_name} pressed the call button at {at}"
    else:
        what = f"{patient_name}: {d.field} {d.value:g} {d.unit} at {at}"
    text = f"homevitals {sev}: {what}. {d.reason}."
    if d.flags:
        text += " Device flags: " + ", ".join(_FLAG_WORDS.get(f, f) for f in d.flags) + "."
    return f"{text} {ref}"
