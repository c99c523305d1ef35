"""The SMS on the patient's own phone (issue 20): lay words in the patient's language, the value
as their device shows it, the action to take (with its source in the template data), and no code
but the one to answer with. Every text is fitted into ``MAX_SEGMENTS`` SMS segments of its
encoding (GSM-7 160/153, UCS-2 70/67: Chinese is UCS-2), dropping first "your doctor is being
told", then the ACK code (a plain "OK" still works), then the advice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from homevitals.alerts.segments import sms_length
from homevitals.alerts.templates import Language, language
from homevitals.alerts.text import format_amount, local_time
from homevitals.vocab.readings import AlertDecision

__all__ = ["MAX_SEGMENTS", "direction_of", "patient_reply", "patient_text"]

# Two segments: room for the action in any language, and still one message on every phone
# (concatenated SMS); a third would be billed and read as a wall of text.
MAX_SEGMENTS = 2

_HEAD = {
    ("alert", "low"): "low",
    ("alert", "high"): "high",
    ("update", "low"): "lower",
    ("update", "high"): "higher",
}


def direction_of(rule: Any) -> str:
    """"low" for a rule on a value below a bound or falling, "high" above or rising, else ""."""
    if getattr(rule, "below", None) is not None or getattr(rule, "fall", None) is not None:
        return "low"
    if getattr(rule, "above", None) is not None or getattr(rule, "rise", None) is not None:
        return "high"
    return ""


def _fit(candidates: list[str]) -> str:
    return next((c for c in candidates if sms_length(c).segments <= MAX_SEGMENTS), candidates[-1])


def _reading(d: AlertDecision, lang: Language, at: str, glucose_unit: str) -> dict[str, str]:
    value = "" if d.value is None else format_amount(d.value, d.unit, glucose_unit)
    return {"what": lang.label(d.field, d.measurement), "value": value, "at": at}


def patient_text(
    kind: str,
    d: AlertDecision,
    zone: ZoneInfo,
    ack_code: str,
    *,
    lang: str = "en",
    glucose_unit: str = "mmol/L",
    direction: str = "",
    doctor_told: bool = False,
    at: datetime | None = None,
) -> str:
    """``kind``: ``alert`` (the first SMS), ``update`` (it deepened), ``reminder``, ``resolved``
    or ``acknowledged`` (someone of the care team answered, at ``at``)."""
    words = language(lang)
    p = words.patient
    when = local_time(d.observed_at or d.time, zone, d.time)
    fields = _reading(d, words, when, glucose_unit)
    if kind == "acknowledged":
        t = at or d.time
        return p["acknowledged"].format_map({"at": local_time(t, zone, t)})
    if kind == "resolved":
        key = "resolved" if d.value is not None else "resolved_plain"
        return p[key].format_map(fields)
    if d.value is None:
        head = p["missing"].format_map(fields)
    elif d.predicted is not None and kind != "update":  # issue 19: a forecast, said as one
        head = p["predicted_low"].format_map({
            **fields, "predicted": format_amount(d.predicted, d.unit, glucose_unit),
            "minutes": str(round(d.horizon_minutes or 0)),
        })
    else:
        head = p[_HEAD.get(("update" if kind == "update" else "alert", direction), "other")]
        head = head.format_map(fields)
    if kind == "reminder":
        head = p["reminder"] + head
    advice = words.advice_for(d.measurement, direction)
    tip = advice.text if advice is not None and d.value is not None else ""
    told = p["doctor_told"] if doctor_told else ""
    code = p["ack_code"].format_map({"code": ack_code}) if ack_code else p["ack"]
    return _fit([
        head + tip + told + code,
        head + tip + code,
        head + tip + p["ack"],
        head + told + code,
        head + p["ack"],
    ])


def patient_reply(lang: str, again: bool = False) -> str:
    """The answer to the patient's "OK"."""
    return language(lang).patient["thanks_again" if again else "thanks"]
