"""The words of the SMS, per language, from data files (issue 20): ``alerts/templates/<tag>.yaml``.

A file has a ``patient`` section (lay words for the person's own phone), ``labels`` (what a
measurement is called), ``advice`` (the action to take, each with its ``source``, as the rules
name theirs), ``ok_words`` (answers that mean "seen") and, in ``en.yaml``, the ``care_team``
section (the doctor's words). Values are put in with ``str.format_map`` on a mapping of plain
strings, and every template is checked when the file is loaded: each ``{field}`` must be one of
the names its key allows, with no attribute or index access (``{x.__class__}``, ``{x[0]}``), no
conversion (``!r``) and no format spec, so a template can never reach into Python objects.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from homevitals.alerts.errors import AlertsError

__all__ = ["Advice", "Language", "TemplateError", "available", "language", "load_language"]

_WHEN = frozenset({"at"})
_READING = frozenset({"what", "value", "at"})
# The fields each key may use; a key not listed here is refused (a typo would otherwise be an
# SMS that never changes).
CARE_TEAM_FIELDS: dict[str, frozenset[str]] = {
    "event": frozenset({"sev", "name", "at"}),
    "gateway": frozenset({"sev", "name", "at"}),
    "missing": frozenset({"sev", "name", "measurement", "at"}),
    "value": frozenset({"sev", "name", "value", "trend", "at"}),
    "predicted": frozenset({"sev", "name", "what", "predicted", "minutes", "now", "trend", "at"}),
    "resolved": frozenset({"name", "value", "at"}),
    "reason": frozenset({"reason"}),
    "flags": frozenset({"flags"}),
    "ack": frozenset({"code"}),
    "ref": frozenset({"ref"}),
    "resolved_ack": frozenset({"code"}),
    "falling": frozenset({"rate"}),
    "rising": frozenset({"rate"}),
    "steady": frozenset(),
    "escalation": frozenset({"who"}),
    "escalation_after_ok": frozenset({"who"}),
    "nobody": frozenset(),
    "reminder": frozenset({"n"}),
    "update": frozenset(),
    "acknowledged": frozenset({"by", "sev", "name", "code", "at"}),
    "digest": frozenset({"name", "count", "limit", "lines"}),
    "digest_more": frozenset({"more"}),
    "line_alert": frozenset({"at", "sev", "what", "code"}),
    "line_reminder": frozenset({"at", "sev", "what", "code"}),
    "line_resolved": frozenset({"at", "what", "code"}),
    "line_acknowledged": frozenset({"at", "code"}),
    "call_button": frozenset(),
    "gateway_silent": frozenset(),
    "no_data": frozenset({"measurement"}),
}
PATIENT_FIELDS: dict[str, frozenset[str]] = {
    "low": _READING,
    "high": _READING,
    "other": _READING,
    "missing": frozenset({"what", "at"}),
    "predicted_low": frozenset({"what", "value", "predicted", "minutes", "at"}),
    "lower": _READING,
    "higher": _READING,
    "doctor_told": frozenset(),
    "ack": frozenset(),
    "ack_code": frozenset({"code"}),
    "reminder": frozenset(),
    "resolved": _READING,
    "resolved_plain": _WHEN,
    "acknowledged": _WHEN,
    "thanks": frozenset(),
    "thanks_again": frozenset(),
    "hint": frozenset(),
}
_TOP = {"language", "care_team", "patient", "ok_words", "labels", "advice"}
_ADVICE = {"id", "measurement", "direction", "text", "source"}
_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")


class TemplateError(AlertsError):
    """A template file that cannot be used: names the file, the key and the problem."""


@dataclass(frozen=True, slots=True)
class Advice:
    """What the person should do, for alerts on ``measurement`` in ``direction`` (low/high)."""

    id: str
    measurement: str
    direction: str
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class Language:
    tag: str
    patient: dict[str, str]
    labels: dict[str, str]
    advice: tuple[Advice, ...]
    ok_words: frozenset[str]
    care_team: dict[str, str] | None = None

    def advice_for(self, measurement: str, direction: str) -> Advice | None:
        return next(
            (a for a in self.advice if a.measurement == measurement and a.direction == direction),
            None,
        )

    def label(self, field: str, measurement: str) -> str:
        return self.labels.get(field) or self.labels.get(measurement) or field.replace("_", " ")


def check_template(where: str, text: str, allowed: frozenset[str]) -> None:
    """Refuse a template that names anything but a plain allowed field."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: not a valid template ({exc}): {text!r}") from exc
    for _literal, field, spec, conversion in parts:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(
                f"{where}: {{{field}}} is not allowed: only plain names such as"
                f" {{{min(allowed) if allowed else 'at'}}}, no attribute or index access"
            )
        if conversion or spec:
            raise TemplateError(f"{where}: {{{field}}} may not carry a conversion or format spec")
        if field not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise TemplateError(f"{where}: unknown field {{{field}}} (this key allows: {names})")


def _section(
    where: str, data: Any, fields: dict[str, frozenset[str]], full: bool
) -> dict[str, str]:
    if not isinstance(data, dict):
        raise TemplateError(f"{where}: must be a mapping of key: template")
    for key, text in data.items():
        if key not in fields:
            raise TemplateError(f"{where}.{key}: unknown key (known: {', '.join(fields)})")
        if not isinstance(text, str):
            raise TemplateError(f"{where}.{key}: must be a string")
        check_template(f"{where}.{key}", text, fields[key])
    missing = sorted(set(fields) - set(data)) if full else []
    if missing:
        raise TemplateError(f"{where}: missing keys {', '.join(missing)}")
    return {str(k): str(v) for k, v in data.items()}


def _advice(where: str, items: Any) -> tuple[Advice, ...]:
    out = []
    for i, a in enumerate(items or []):
        at = f"{where}.advice.{i}"
        if not isinstance(a, dict) or set(a) != _ADVICE:
            raise TemplateError(f"{at}: needs exactly the keys {', '.join(sorted(_ADVICE))}"
                                " (every instruction names its source)")
        if a["direction"] not in ("low", "high"):
            raise TemplateError(f"{at}.direction: must be low or high")
        if not str(a["source"]).strip():
            raise TemplateError(f"{at}.source: must name where the instruction comes from")
        check_template(f"{at}.text", str(a["text"]), frozenset())
        out.append(Advice(*(str(a[k]) for k in ("id", "measurement", "direction", "text",
                                                  "source"))))
    return tuple(out)


def parse_language(text: str, source: str) -> Language:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: the top level must be a mapping")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        known = ", ".join(sorted(_TOP))
        raise TemplateError(f"{source}: unknown key {unknown[0]} (known: {known})")
    tag = str(data.get("language", ""))
    if not _TAG.match(tag):
        raise TemplateError(f"{source}: language: {tag!r} is not a tag such as en or zh-Hans")
    care = data.get("care_team")
    return Language(
        tag=tag,
        patient=_section(f"{source}: patient", data.get("patient"), PATIENT_FIELDS, full=True),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        advice=_advice(source, data.get("advice")),
        ok_words=frozenset(str(w).casefold() for w in data.get("ok_words") or ["OK"]),
        care_team=None if care is None else _section(
            f"{source}: care_team", care, CARE_TEAM_FIELDS, full=True
        ),
    )


def _folder() -> Any:
    return resources.files("homevitals.alerts").joinpath("templates")


def available() -> list[str]:
    """The shipped languages: one file per tag."""
    return sorted(f.name.removesuffix(".yaml") for f in _folder().iterdir()
                  if f.name.endswith(".yaml"))


def load_language(path: str | Path) -> Language:
    p = Path(path)
    lang = parse_language(p.read_text(encoding="utf-8"), str(p))
    if lang.tag != p.name.removesuffix(".yaml"):
        raise TemplateError(f"{p}: language {lang.tag!r} does not match the file name")
    return lang


@cache
def language(tag: str) -> Language:
    """A shipped language by tag; a TemplateError naming the shipped ones if there is none."""
    if tag not in available():
        raise TemplateError(
            f"no SMS templates for language {tag!r} (shipped: {', '.join(available())};"
            " add alerts/templates/<tag>.yaml)"
        )
    ref = _folder().joinpath(f"{tag}.yaml")
    lang = parse_language(ref.read_text("utf-8"), f"alerts/templates/{tag}.yaml")
    if lang.tag != tag:
        raise TemplateError(f"alerts/templates/{tag}.yaml: language {lang.tag!r} does not"
                            " match the file name")
    return lang
