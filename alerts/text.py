"""The words a doctor reads on a phone at 3 a.m.: short, exact, unambiguous.

Every alert SMS names the patient, the value as the device shows it (glucose 1 decimal in mmol/L
or whole mg/dL, blood pressure, SpO2 and pulse whole, temperature 1 decimal) in the patient's
preferred glucose unit, the trend when the rule knows it, the local time in the patient's own
time zone (with the zone abbreviation or offset when the wall time is ambiguous, as in the
repeated hour when the clocks go back), the reason, any flag the device raised about the
measurement, and the short code to acknowledge it ("Reply ACK 4821").

The first SMS of an alert is fitted into one GSM-7 segment (160 characters, see
``alerts.segments``) where possible: if the full text is longer, the reason's parenthetical
detail (which repeats the threshold) is dropped first, then all of the reason after its first
colon; accents outside the GSM alphabet are taken off only if that is what it takes. The
words are data (``alerts/templates/<tag>.yaml``, loaded into ``TEMPLATES``) so that more
languages can be added without code.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from homevitals.alerts.segments import sms_length, to_gsm7
from homevitals.alerts.templates import available, language
from homevitals.vocab.readings import AlertDecision, AlertState
from homevitals.vocab.units import MGDL_PER_MMOLL

__all__ = [
    "TEMPLATES",
    "ack_text",
    "alert_text",
    "digest_line",
    "digest_text",
    "display_name",
    "escalation_text",
    "format_amount",
    "format_value",
    "local_time",
    "reminder_text",
    "update_text",
]

# The care team's words, per language, from alerts/templates/<tag>.yaml (issue 20: data, never
# code; checked when loaded, alerts/templates.py). The care team reads English.
TEMPLATES: dict[str, dict[str, str]] = {
    tag: words for tag in available() if (words := language(tag).care_team) is not None
}

_FLAG_WORDS = {
    "body_movement": "body movement",
    "cuff_too_loose": "cuff too loose",
    "irregular_pulse": "irregular pulse",
    "pulse_above_range": "pulse above range",
    "pulse_below_range": "pulse below range",
    "improper_position": "improper measurement position",
}
# How a field is named and a unit shown on a phone. "°" is outside the GSM 7-bit alphabet and
# would turn the whole SMS into UCS-2 (70 characters per segment): temperature shows as "C".
_LABELS = {
    "spo2": "SpO2",
    "heart_rate": "heart rate",
    "mean_arterial": "mean arterial",
    "rr_interval": "RR interval",
    "energy_expended": "energy",
}
_SHOWN_UNIT = {"%": "%", "°C": " C", "count": ""}
# Decimals a device shows: glucose meters and CGMs 1 in mmol/L and none in mg/dL, thermometers
# and scales 1, everything else (mmHg, bpm, %, ms, kJ) none.
_DECIMALS = {"mmol/L": 1, "°C": 1, "kg": 1}
_MMOL = re.compile(r"(\d+(?:\.\d+)?) ?mmol/L")
_PARENTHETICAL = re.compile(r" \([^()]*\)")
_CLAUSE = re.compile(r"[:;] ")
_DAY = timedelta(hours=12)


def display_name(name: str, patient_id: str, number: str | None, privacy: str) -> str:
    """How an SMS names the patient. ``initials``: an SMS can be read over a shoulder or on a lock
    screen, so a health centre may choose to send only initials and its own patient number."""
    if privacy != "initials":
        return name
    initials = "".join(f"{part[0].upper()}." for part in name.replace("-", " ").split() if part)
    return f"{initials} (patient {number or patient_id})"


def local_time(t: datetime, zone: ZoneInfo, ref: datetime | None = None) -> str:
    """"03:10"; with the date when ``t`` is 12 hours or more from ``ref`` ("20 Nov 22:00");
    with the zone abbreviation (or the offset, where the zone has no letters) when the wall time
    happens twice, in the hour the clocks go back ("02:05 CEST", then "02:05 CET")."""
    when = t.astimezone(zone)
    text = f"{when:%H:%M}"
    if ref is not None and abs(ref - t) >= _DAY:
        text = f"{when:%d %b} {text}"
    if when.replace(fold=0).utcoffset() != when.replace(fold=1).utcoffset():
        abbr, offset = when.tzname() or "", f"{when:%z}"
        text += f" {abbr}" if abbr.isalpha() else f" {offset[:3]}:{offset[3:]}"
    return text


def _number(value: float, decimals: int) -> str:
    q = Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{q + 0:f}"  # + 0 turns -0.0 into 0.0


def _in_unit(value: float, unit: str, glucose_unit: str) -> tuple[float, str]:
    if unit == "mmol/L" and glucose_unit == "mg/dL":
        return value * MGDL_PER_MMOLL, "mg/dL"
    return value, unit


def format_amount(value: float, unit: str, glucose_unit: str = "mmol/L") -> str:
    """"3.4 mmol/L", "61 mg/dL", "198 mmHg", "88%": the value as the device shows it."""
    value, unit = _in_unit(value, unit, glucose_unit)
    shown = _SHOWN_UNIT.get(unit, f" {unit}")
    return f"{_number(value, _DECIMALS.get(unit, 0))}{shown}"


def format_value(field: str, value: float, unit: str, glucose_unit: str = "mmol/L") -> str:
    """"glucose 3.4 mmol/L", "glucose 61 mg/dL", "systolic 198 mmHg", "SpO2 88%"."""
    return f"{_LABELS.get(field, field)} {format_amount(value, unit, glucose_unit)}"


def _trend(d: AlertDecision, glucose_unit: str, words: dict[str, str]) -> str:
    if d.trend is None:
        return ""
    rate, unit = _in_unit(d.trend, d.unit, glucose_unit)
    shown = _number(abs(rate), _DECIMALS.get(unit, 0))
    if Decimal(shown) == 0:
        return words["steady"]
    return words["falling" if rate < 0 else "rising"].format(rate=f"{shown} {unit}")


def _reason(reason: str, glucose_unit: str) -> str:
    """The rule's reason, its glucose thresholds in the patient's unit ("below 70 mg/dL")."""
    if glucose_unit != "mg/dL":
        return reason
    return _MMOL.sub(lambda m: f"{_number(float(m[1]) * MGDL_PER_MMOLL, 0)} mg/dL", reason)


def _fit(candidates: list[str]) -> str:
    """The first candidate that fits one SMS segment, else the shortest (the last). A text that
    is UCS-2 only for an accent ("Kovačič") costs 70 characters a segment instead of 160; as a
    last resort the accents are taken off (what a phone without them would show anyway)."""
    plain = [g for c in candidates if (g := to_gsm7(c)) is not None and g != c]
    return next((c for c in candidates + plain if sms_length(c).segments == 1), candidates[-1])


def _what(d: AlertDecision, name: str, at: str, glucose_unit: str, w: dict[str, str]) -> str:
    sev = str(d.severity).upper()
    if d.measurement == "event":
        return w["event"].format(sev=sev, name=name, at=at)
    if d.measurement == "gateway":
        return w["gateway"].format(sev=sev, name=name, at=at)
    if d.value is None:
        measurement = d.measurement.replace("_", " ")
        return w["missing"].format(sev=sev, name=name, measurement=measurement, at=at)
    if d.predicted is not None:  # issue 19: a forecast, marked as one
        return w["predicted"].format(
            sev=sev, name=name, what=_LABELS.get(d.field, d.field),
            predicted=format_amount(d.predicted, d.unit, glucose_unit),
            minutes=_number(d.horizon_minutes or 0.0, 0),
            now=format_amount(d.value, d.unit, glucose_unit),
            trend=_trend(d, glucose_unit, w), at=at,
        )
    value = format_value(d.field, d.value, d.unit, glucose_unit)
    return w["value"].format(
        sev=sev, name=name, value=value, trend=_trend(d, glucose_unit, w), at=at
    )


def alert_text(
    d: AlertDecision,
    patient_name: str,
    zone: ZoneInfo,
    ack_code: str | None = None,
    *,
    glucose_unit: str = "mmol/L",
    lang: str = "en",
) -> str:
    w = TEMPLATES[lang]
    at = local_time(d.observed_at or d.time, zone, d.time)
    flags = ""
    if d.state == AlertState.RESOLVED:
        value = "" if d.value is None else " " + format_value(
            d.field, d.value, d.unit, glucose_unit
        )
        head = w["resolved"].format(name=patient_name, value=value, at=at)
        tail = (w["resolved_ack"] if ack_code else w["ref"]).format(
            code=ack_code, ref=d.alert_id[:8]
        )
    else:
        head = _what(d, patient_name, at, glucose_unit, w)
        if d.flags:
            flags = w["flags"].format(flags=", ".join(_FLAG_WORDS.get(f, f) for f in d.flags))
        tail = (w["ack"] if ack_code else w["ref"]).format(code=ack_code, ref=d.alert_id[:8])
    reason = _reason(d.reason, glucose_unit)
    short = _PARENTHETICAL.sub("", reason)
    reasons = (reason, short, _CLAUSE.split(short, maxsplit=1)[0])
    return _fit([head + w["reason"].format(reason=r) + flags + tail for r in reasons])


def escalation_text(
    d: AlertDecision,
    patient_name: str,
    zone: ZoneInfo,
    ack_code: str,
    not_acked_by: list[str],
    *,
    glucose_unit: str = "mmol/L",
    lang: str = "en",
    answered_ok: str | None = None,
) -> str:
    """"ESCALATED, not acknowledged by ...", or, when the patient answered OK and it has not
    cleared since (issue 20), "ESCALATED, not cleared since Ana Novak answered OK."."""
    w = TEMPLATES[lang]
    who = ", ".join(not_acked_by) or w["nobody"]
    body = alert_text(d, patient_name, zone, ack_code, glucose_unit=glucose_unit, lang=lang)
    if answered_ok:
        return w["escalation_after_ok"].format(who=answered_ok) + body
    return w["escalation"].format(who=who) + body


def reminder_text(
    d: AlertDecision,
    patient_name: str,
    zone: ZoneInfo,
    ack_code: str,
    n: int,
    *,
    glucose_unit: str = "mmol/L",
    lang: str = "en",
) -> str:
    body = alert_text(d, patient_name, zone, ack_code, glucose_unit=glucose_unit, lang=lang)
    return TEMPLATES[lang]["reminder"].format(n=n) + body


def ack_text(
    d: AlertDecision,
    patient_name: str,
    zone: ZoneInfo,
    ack_code: str,
    by: str,
    at: datetime,
    *,
    lang: str = "en",
) -> str:
    return TEMPLATES[lang]["acknowledged"].format(
        by=by, sev=str(d.severity).upper(), name=patient_name, code=ack_code,
        at=local_time(at, zone, at),
    )


def _short_what(d: AlertDecision, glucose_unit: str, w: dict[str, str]) -> str:
    if d.measurement == "event":
        return w["call_button"]
    if d.measurement == "gateway":
        return w["gateway_silent"]
    if d.value is None:
        return w["no_data"].format(measurement=d.measurement.replace("_", " "))
    return format_value(d.field, d.value, d.unit, glucose_unit)


def digest_line(
    d: AlertDecision,
    kind: str,
    ack_code: str,
    at: datetime,
    zone: ZoneInfo,
    *,
    glucose_unit: str = "mmol/L",
    lang: str = "en",
) -> str:
    """One held-back SMS in short form: "03:10 HIGH glucose 3.4 mmol/L ACK 4821"."""
    w = TEMPLATES[lang]
    key = kind if kind in ("resolved", "acknowledged") else "alert"
    if kind.startswith("reminder"):
        key = "reminder"
    return w[f"line_{key}"].format(
        at=local_time(at, zone, at), sev=str(d.severity).upper(),
        what=_short_what(d, glucose_unit, w), code=ack_code,
    )


def digest_text(
    patient_name: str, lines: list[str], limit: int, *, segments: int = 3, lang: str = "en"
) -> str:
    """The digest SMS: how many were held back, and as many of them in short form as fit in
    ``segments`` SMS segments (the rest are in ``homevitals alerts history``)."""
    w = TEMPLATES[lang]
    text = ""
    for shown in range(len(lines), 0, -1):
        text = w["digest"].format(
            name=patient_name, count=len(lines), limit=limit, lines="; ".join(lines[:shown])
        )
        if shown < len(lines):
            text += w["digest_more"].format(more=len(lines) - shown)
        text += "."
        if sms_length(text).segments <= segments:
            break
    return text


def update_text(
    d: AlertDecision,
    patient_name: str,
    zone: ZoneInfo,
    ack_code: str | None = None,
    *,
    glucose_unit: str = "mmol/L",
    lang: str = "en",
) -> str:
    """The one SMS when an episode's severity rises (issue 14): the same alert and ACK code,
    what it is now and why ("UPDATE: homevitals HIGH: ... glucose 2.8 mmol/L ... level 2 ...
    Reply ACK 4821"), fitted into one segment as the first SMS is. Never a second alert."""
    prefix = TEMPLATES[lang]["update"]
    short = _PARENTHETICAL.sub("", d.reason)
    reasons = (d.reason, short, _CLAUSE.split(short, maxsplit=1)[0])
    return _fit([
        prefix + alert_text(
            replace(d, reason=r), patient_name, zone, ack_code, glucose_unit=glucose_unit,
            lang=lang,
        )
        for r in reasons
    ])
