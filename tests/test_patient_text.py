"""The patient's own SMS (issue 20), every template of every shipped language rendered once,
exactly, with its encoding and SMS segments (GSM-7 160/153, UCS-2 70/67: TS 23.038/23.040), and
the template files' checks: a template can only name its allowed plain fields.

Adding a language: add ``alerts/templates/<tag>.yaml`` and one test here listing its texts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from homevitals.alerts.patient_text import MAX_SEGMENTS, patient_reply, patient_text
from homevitals.alerts.segments import sms_length
from homevitals.alerts.templates import TemplateError, available, language, parse_language
from homevitals.vocab.readings import AlertDecision

ROOT = Path(__file__).resolve().parents[1]
Z = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 11, 21, 3, 15, tzinfo=Z)


def d(**kw: Any) -> AlertDecision:
    base = {"alert_id": "a" * 32, "state": "firing", "home": "h", "patient": "p", "rule": "r",
            "severity": "medium", "reason": "x", "time": T, "observed_at": T}
    return AlertDecision(**{**base, **kw})


GLU = d(measurement="glucose", field="glucose", value=3.6, unit="mmol/L")
DEEP = d(measurement="glucose", field="glucose", value=2.8, unit="mmol/L", severity="high")
BP = d(measurement="blood_pressure", field="systolic", value=196, unit="mmHg", severity="high")
SPO2 = d(measurement="spo2", field="spo2", value=88, unit="%", severity="high")
HR = d(measurement="heart_rate", field="heart_rate", value=135, unit="bpm")
MISS = d(measurement="glucose", field="", value=None)


def rendered(lang: str) -> list[str]:
    """Every patient template of ``lang``: a low with its advice (mmol/L; mg/dL with a 6-digit
    code), a deeper low, a reminder, a high BP with its advice, a low SpO2 and a heart rate (no
    advice), missing data, the all clears, the care team's answer, the shortened form without
    a code, and the replies to the patient's OK."""
    return [
        patient_text("alert", GLU, Z, "4821", lang=lang, direction="low"),
        patient_text("alert", GLU, Z, "482193", lang=lang, direction="low", glucose_unit="mg/dL"),
        patient_text("update", DEEP, Z, "4821", lang=lang, direction="low", doctor_told=True),
        patient_text("reminder", GLU, Z, "4821", lang=lang, direction="low"),
        patient_text("alert", BP, Z, "4821", lang=lang, direction="high", doctor_told=True),
        patient_text("update", BP, Z, "4821", lang=lang, direction="high"),
        patient_text("alert", SPO2, Z, "4821", lang=lang, direction="low"),
        patient_text("alert", HR, Z, "4821", lang=lang),
        patient_text("alert", MISS, Z, "4821", lang=lang),
        patient_text("resolved", GLU, Z, "4821", lang=lang),
        patient_text("resolved", MISS, Z, "4821", lang=lang),
        patient_text("acknowledged", GLU, Z, "", lang=lang, at=T),
        patient_text("alert", GLU, Z, "", lang=lang, direction="low"),
        patient_reply(lang), patient_reply(lang, again=True),
    ]


def _check(lang: str, expected: list[tuple[str, str, int]]) -> None:
    texts = rendered(lang)
    assert [(t, sms_length(t).encoding, sms_length(t).segments) for t in texts] == expected
    assert all(sms_length(t).segments <= MAX_SEGMENTS for t in texts)


def test_english_texts_and_their_segments() -> None:
    _check("en", [
        ("homevitals: your glucose is low: 3.6 mmol/L at 03:15. Take 15 g of fast"
         " sugar (4 glucose tablets or 150 ml juice), check again in 15 min. Reply OK"
         " or ACK 4821", "GSM-7", 1),
        ("homevitals: your glucose is low: 65 mg/dL at 03:15. Take 15 g of fast sugar"
         " (4 glucose tablets or 150 ml juice), check again in 15 min. Reply OK or"
         " ACK 482193", "GSM-7", 1),
        ("homevitals: your glucose is lower now: 2.8 mmol/L at 03:15. Take 15 g of"
         " fast sugar (4 glucose tablets or 150 ml juice), check again in 15 min."
         " Your doctor is being told. Reply OK or ACK 4821", "GSM-7", 2),
        ("REMINDER: homevitals: your glucose is low: 3.6 mmol/L at 03:15. Take 15 g"
         " of fast sugar (4 glucose tablets or 150 ml juice), check again in 15 min."
         " Reply OK or ACK 4821", "GSM-7", 2),
        ("homevitals: your blood pressure is high: 196 mmHg at 03:15. Sit quietly for"
         " 5 minutes, then measure again. Your doctor is being told. Reply OK or ACK"
         " 4821", "GSM-7", 1),
        ("homevitals: your blood pressure is higher now: 196 mmHg at 03:15. Sit"
         " quietly for 5 minutes, then measure again. Reply OK or ACK 4821", "GSM-7", 1),
        ("homevitals: your oxygen level is low: 88% at 03:15. Reply OK or ACK 4821", "GSM-7", 1),
        ("homevitals: please check your heart rate: 135 bpm at 03:15. Reply OK or ACK"
         " 4821", "GSM-7", 1),
        ("homevitals: no glucose reading from you since 03:15. Please check the"
         " device. Reply OK or ACK 4821", "GSM-7", 1),
        ("homevitals: your glucose is back to 3.6 mmol/L at 03:15. All clear.", "GSM-7", 1),
        ("homevitals: all clear at 03:15.", "GSM-7", 1),
        ("homevitals: at 03:15 your care team saw the alert and is on it.", "GSM-7", 1),
        ("homevitals: your glucose is low: 3.6 mmol/L at 03:15. Take 15 g of fast"
         " sugar (4 glucose tablets or 150 ml juice), check again in 15 min. Reply OK", "GSM-7", 1),
        ("homevitals: thank you, your OK is noted. If you do not feel better, call"
         " your doctor.", "GSM-7", 1),
        ("homevitals: your OK was already noted.", "GSM-7", 1),
    ])


def test_simplified_chinese_texts_and_their_segments() -> None:
    _check("zh-Hans", [
        ("homevitals：您的血糖偏低：3.6 mmol/L（03:15）。请马上吃或喝15克快速糖（4片葡"
         "萄糖片或150毫升果汁），15分钟后再测。请回复OK或ACK 4821", "UCS-2", 2),
        ("homevitals：您的血糖偏低：65 mg/dL（03:15）。请马上吃或喝15克快速糖（4片葡萄"
         "糖片或150毫升果汁），15分钟后再测。请回复OK或ACK 482193", "UCS-2", 2),
        ("homevitals：您的血糖更低了：2.8 mmol/L（03:15）。请马上吃或喝15克快速糖（4片"
         "葡萄糖片或150毫升果汁），15分钟后再测。已通知您的医生。请回复OK或ACK 4821", "UCS-2", 2),
        ("提醒：homevitals：您的血糖偏低：3.6 mmol/L（03:15）。请马上吃或喝15克快速糖"
         "（4片葡萄糖片或150毫升果汁），15分钟后再测。请回复OK或ACK 4821", "UCS-2", 2),
        ("homevitals：您的血压偏高：196 mmHg（03:15）。请安静坐5分钟后再测一次。已通知"
         "您的医生。请回复OK或ACK 4821", "UCS-2", 1),
        ("homevitals：您的血压更高了：196 mmHg（03:15）。请安静坐5分钟后再测一次。请回"
         "复OK或ACK 4821", "UCS-2", 1),
        ("homevitals：您的血氧偏低：88%（03:15）。请回复OK或ACK 4821", "UCS-2", 1),
        ("homevitals：请注意您的心率：135 bpm（03:15）。请回复OK或ACK 4821", "UCS-2", 1),
        ("homevitals：自03:15起没有收到您的血糖数据，请检查设备。请回复OK或ACK 4821", "UCS-2", 1),
        ("homevitals：您的血糖已恢复到3.6 mmol/L（03:15），警报解除。", "UCS-2", 1),
        ("homevitals：03:15警报解除。", "UCS-2", 1),
        ("homevitals：医护人员已于03:15看到警报，正在处理。", "UCS-2", 1),
        ("homevitals：您的血糖偏低：3.6 mmol/L（03:15）。请马上吃或喝15克快速糖（4片葡"
         "萄糖片或150毫升果汁），15分钟后再测。请回复OK", "UCS-2", 2),
        ("homevitals：谢谢，已收到您的回复。如仍感觉不适，请联系您的医生。", "UCS-2", 1),
        ("homevitals：已经收到您的回复。", "UCS-2", 1),
    ])


def test_every_shipped_language_has_a_test_above_and_every_advice_its_source() -> None:
    assert available() == ["en", "zh-Hans"]
    for tag in available():
        assert {a.id for a in language(tag).advice} == {"glucose-low", "blood-pressure-high"}
        for a in language(tag).advice:
            assert ("ADA Standards of Care" in a.source) == (a.id == "glucose-low")
            assert ("ESH" in a.source) == (a.id == "blood-pressure-high")
    assert language("en").care_team is not None  # the care team reads English


EN = (ROOT / "alerts" / "templates" / "en.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('low: "homevitals: your {what}', 'low: "homevitals: your {what.__class__}'),
         "patient.low: {what.__class__} is not allowed: only plain names"),
        (('low: "homevitals: your {what}', 'low: "homevitals: your {what[0]}'),
         "patient.low: {what[0]} is not allowed"),
        (('low: "homevitals: your {what}', 'low: "homevitals: your {name}'),
         "patient.low: unknown field {name} (this key allows: at, value, what)"),
        (('low: "homevitals: your {what}', 'low: "homevitals: your {what!r}'),
         "patient.low: {what} may not carry a conversion or format spec"),
        (('ack: " Reply ACK {code}"', 'ack: " Reply ACK {code:>{width}}"'),
         "care_team.ack: {code} may not carry a conversion or format spec"),
        (('  thanks_again:', '  thanks_agian:'), "patient.thanks_agian: unknown key"),
        (('    source: >-\n      2023 ESH', '    sauce: >-\n      2023 ESH'),
         "advice.1: needs exactly the keys direction, id, measurement, source, text"),
    ],
)
def test_a_template_reaching_beyond_its_fields_is_refused_at_load(
    change: tuple[str, str], message: str
) -> None:
    text = EN.replace(*change, 1)
    assert text != EN
    with pytest.raises(TemplateError) as err:
        parse_language(text, "alerts/templates/en.yaml")
    assert str(err.value).startswith("alerts/templates/en.yaml")
    assert message in str(err.value), str(err.value)


def test_a_language_without_templates_is_named() -> None:
    with pytest.raises(TemplateError, match=r"no SMS templates for language 'fr' \(shipped: en,"
                                            r" zh-Hans; add alerts/templates/<tag>.yaml\)"):
        language("fr")
