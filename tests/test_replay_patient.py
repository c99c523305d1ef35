"""Issue 20's stories, replayed through the whole pipeline (the real gateway, Mosquitto, ingest,
rules and alerts) in simulated time with the shipped routes: the patient's own phone is told
first about a level-1 low, in words they can act on, and the family doctor only when it is not
answered and not cleared, or deepens; the call button never goes to the patient. Every SMS is
counted per person and its text read as the person would see it."""

from __future__ import annotations

import json
from pathlib import Path

from homevitals.alerts.segments import sms_length
from homevitals.roots.replay import run_replay

DOCTOR, PATIENT = "+15550100001", "+15550100009"


def _replay(name: str, tmp_path: Path) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    out = tmp_path / "out"
    summary = tmp_path / "summary.txt"
    assert run_replay(name, out, stream=summary.open("w")) == 0
    text = summary.read_text()
    assert "MISSED" not in text and "UNEXPECTED" not in text, text
    sms = [json.loads(x) for x in (out / "notifications.jsonl").read_text().splitlines()]
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    return sms, alerts


def _sent(sms: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(n["time"][11:16], n["to"], n["kind"]) for n in sms]


def test_a_low_the_patient_answers_and_recovers_from_never_wakes_the_doctor(
    tmp_path: Path,
) -> None:
    sms, alerts = _replay("patient-low-ok", tmp_path)
    assert _sent(sms) == [("02:00", PATIENT, "firing"), ("02:10", PATIENT, "resolved")]
    code = str(alerts[0]["ack_code"])
    assert sms[0]["text"] == (
        "homevitals：您的血糖偏低：3.6 mmol/L（03:00）。请马上吃或喝15克快速糖（4片葡萄糖片或150"
        f"毫升果汁），15分钟后再测。请回复OK或ACK {code}"
    )
    assert sms[0]["role"] == "patient"
    assert sms_length(sms[0]["text"]).segments == 2  # UCS-2: 67 per segment
    assert sms[1]["text"] == "homevitals：您的血糖已恢复到4.5 mmol/L（03:10），警报解除。"
    # Her "好" is her step's acknowledgement, with her role, in the audit trail; not the episode's.
    assert alerts[0]["acked_by"] is None
    assert any("acknowledged by Li Wei (patient, +15550100009) via SMS reply: the patient's"
               " step only" in line for line in alerts[0]["log"])  # type: ignore[union-attr]
    reply = json.loads((tmp_path / "out" / "replies.jsonl").read_text())
    assert reply["role"] == "patient"
    assert reply["answer"] == "homevitals：谢谢，已收到您的回复。如仍感觉不适，请联系您的医生。"


def test_a_low_the_patient_does_not_answer_goes_to_the_doctor_after_30_minutes(
    tmp_path: Path,
) -> None:
    sms, alerts = _replay("patient-low-ignored", tmp_path)
    assert _sent(sms) == [
        ("02:00", PATIENT, "firing"), ("02:30", DOCTOR, "escalation-1"),
        ("02:45", PATIENT, "resolved"), ("02:45", DOCTOR, "resolved"),
    ]
    code = str(alerts[0]["ack_code"])
    assert sms[0]["text"] == (
        "homevitals: your glucose is low: 3.6 mmol/L at 03:00. Take 15 g of fast sugar"
        " (4 glucose tablets or 150 ml juice), check again in 15 min. Reply OK or ACK " + code
    )
    assert sms[1]["text"].startswith(
        "ESCALATED, not acknowledged by Ana Novak. homevitals MEDIUM: Ana Novak: glucose 3.6"
        " mmol/L")
    assert sms[2]["text"] == "homevitals: your glucose is back to 4.6 mmol/L at 03:45. All clear."
    # The patient's texts show no internal code but the one to answer with.
    for n in (sms[0], sms[2]):
        assert "MEDIUM" not in n["text"] and "hypo" not in n["text"] and "level" not in n["text"]


def test_a_low_that_deepens_after_the_patients_ok_tells_the_doctor_if_it_lasts(
    tmp_path: Path,
) -> None:
    sms, alerts = _replay("patient-low-deepens", tmp_path)
    assert _sent(sms) == [
        ("02:00", PATIENT, "firing"),
        ("02:15", PATIENT, "update-high"), ("02:25", DOCTOR, "escalation-1"),
        ("02:28", PATIENT, "acknowledged"),
        ("02:45", PATIENT, "resolved"), ("02:45", DOCTOR, "resolved"),
    ]
    code = str(alerts[0]["ack_code"])
    assert sms[1]["text"] == (
        "homevitals: your glucose is lower now: 2.8 mmol/L at 03:15. Take 15 g of fast"
        " sugar (4 glucose tablets or 150 ml juice), check again in 15 min."
        f" Reply OK or ACK {code}"  # the doctor: only if it lasts 10 minutes (fifth round)
    )
    assert sms[2]["text"].startswith("homevitals HIGH: Ana Novak: glucose 2.8 mmol/L")
    assert sms[3]["text"] == "homevitals: at 03:28 your care team saw the alert and is on it."
    assert str(alerts[0]["acked_by"]).startswith("Dr. Marko Kranjc (family_doctor")


def test_the_call_button_is_never_sent_to_the_patient(tmp_path: Path) -> None:
    sms, _ = _replay("patient-call-button", tmp_path)
    assert _sent(sms) == [("01:40", DOCTOR, "firing")]
    assert not any(n["to"] == PATIENT for n in sms)
