"""The patient's own phone in the alert service (issue 20), through the Escalator and the
AlertsApp's inbound-SMS handler with the real SQLite ledger and a simulated clock: the patient's
OK covers their step only (the doctor is still told when it has not cleared), the audit trail
names the role, and the configuration checks the patient's number and language."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.budget import AlarmBudget
from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.alerts.templates import TemplateError
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, parse_config
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import AlertDecision

DOCTOR, BACKUP, PATIENT = "+15550100001", "+15550100003", "+15550100009"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
RULES = {"definitions": [  # the shipped glucose lows (their direction picks the advice)
    r for r in yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs" / "rules-defaults.yaml").read_text()
    )["definitions"] if r.get("episode") == "glucose-low"
]}


def config(**patient: Any) -> Config:
    return parse_config(yaml.safe_dump({"rules": RULES, "homes": [{
        "id": "home-1", "timezone": "Europe/Ljubljana",
        "devices": [{"id": "cgm-1", "kind": "cgm", "patient": "ana",
                     "address": "C0:11:22:33:44:04"}],
        "patients": [{"id": "ana", "name": "Ana Novak", "phone": PATIENT, **patient,
                      "care_team": [
                          {"name": "Dr. K", "role": "family_doctor", "phone": DOCTOR},
                          {"name": "Dr. V", "role": "backup_doctor", "phone": BACKUP}]}],
    }]}))


def low(rule: str = "hypo-level-1", severity: str = "medium", value: float = 3.6) -> AlertDecision:
    return AlertDecision(
        alert_id="a" + "1" * 31, state="firing", home="home-1", patient="ana",  # type: ignore[arg-type]
        rule=rule, severity=severity, reason="Low glucose, level 1",  # type: ignore[arg-type]
        time=T0, measurement="glucose", field="glucose", value=value, unit="mmol/L",
        observed_at=T0, episode="glucose-low",
    )


def sms(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(str(h["recipient"]), str(h["role"]), str(h["kind"]))
            for h in ledger.history() if h["kind"]]


def test_the_patients_ok_does_not_stop_the_doctor_when_it_has_not_cleared(
    tmp_path: Path,
) -> None:
    cfg = config()
    clock = SimulatedClock(T0)
    ledger = Ledger(tmp_path / "ledger.sqlite", lambda n: 4821 - 1000)
    esc = Escalator(cfg, ledger, clock)
    assert esc.on_decision(low()) == 1
    assert sms(ledger) == [(PATIENT, "patient", "firing")]
    [(_, due)] = ledger.scheduled()
    assert due == "2026-11-21T02:30:00.000000Z"  # escalate_after_patient_minutes: 30
    clock.advance(timedelta(minutes=3))
    row, noted = esc.patient_ok(cfg.homes[0].patients[0], PATIENT, None)
    assert noted and row is not None and row.acked_at is None  # the episode is not acknowledged
    assert esc.patient_ok(cfg.homes[0].patients[0], PATIENT, None)[1] is False  # once
    clock.advance(timedelta(minutes=27))
    assert esc.run_due() == 1  # still low at 02:30: the doctor is told
    assert sms(ledger)[-1] == (DOCTOR, "family_doctor", "escalation-1")
    body = str(ledger.history()[-1]["body"])
    assert body.startswith("ESCALATED, not cleared since Ana Novak answered OK. homevitals"
                           " MEDIUM: Ana Novak: glucose 3.6 mmol/L at 03:00.")
    clock.advance(timedelta(minutes=60))
    assert esc.run_due() == 1  # the backup doctor; then reminders, never to the patient
    clock.advance(timedelta(minutes=120))
    assert esc.run_due() == 2
    assert [s for s in sms(ledger) if s[2].startswith("reminder")] == [
        (DOCTOR, "family_doctor", "reminder-1"), (BACKUP, "backup_doctor", "reminder-1")]
    log = "\n".join(ledger.history()[0]["log"])  # type: ignore[arg-type]
    assert "acknowledged by Ana Novak (patient, +15550100009) via SMS reply" in log


def test_without_a_patient_phone_the_doctor_is_first(tmp_path: Path) -> None:
    cfg = config(phone=None)
    ledger = Ledger(tmp_path / "ledger.sqlite", lambda n: 4821 - 1000)
    esc = Escalator(cfg, ledger, SimulatedClock(T0))
    esc.on_decision(low())
    assert sms(ledger) == [(DOCTOR, "family_doctor", "firing")]
    [(_, due)] = ledger.scheduled()
    assert due == "2026-11-21T03:00:00.000000Z"  # then the backup doctor after 60 minutes


def test_with_a_family_member_a_level_1_low_never_reaches_a_doctor(tmp_path: Path) -> None:
    # Issue 14 tuning: level 1 is treated by the person and their family (ADA 2024, section 6;
    # ISPAD 2022): unanswered, the family is reminded; the doctor hears of it if it deepens.
    family = "+15550100002"
    cfg = config()
    team = [*cfg.homes[0].patients[0].care_team,
            cfg.homes[0].patients[0].care_team[0].model_copy(
                update={"name": "Petra", "role": "family_member", "phone": family})]
    patient = cfg.homes[0].patients[0].model_copy(update={"care_team": team})
    cfg = cfg.model_copy(update={"homes": [cfg.homes[0].model_copy(
        update={"patients": [patient]})]})
    clock = SimulatedClock(T0)
    ledger = Ledger(tmp_path / "ledger.sqlite", lambda n: 4821 - 1000)
    esc = Escalator(cfg, ledger, clock)
    esc.on_decision(low())
    assert sms(ledger) == [(PATIENT, "patient", "firing"), (family, "family_member", "firing")]
    lay = str(ledger.history()[0]["body"])  # the person's own SMS: no doctor is told yet
    assert lay.startswith("homevitals: your glucose is low") and "doctor" not in lay, lay
    for _ in range(8):
        clock.advance(timedelta(hours=1))
        esc.run_due()
    assert {s[0] for s in sms(ledger)} == {PATIENT, family}  # reminders, never a doctor
    assert [s[2] for s in sms(ledger) if s[0] == family] == [
        "firing", "reminder-1", "reminder-2", "reminder-3"]
    esc.on_decision(replace(low("hypo-level-2", "high", 2.8), state="updated"))  # type: ignore[arg-type]
    assert DOCTOR not in {s[0] for s in sms(ledger)}  # level 2: the family first (fifth round)
    clock.advance(timedelta(minutes=10))
    esc.run_due()
    assert (DOCTOR, "family_doctor", "escalation-1") in sms(ledger)  # still level 2: the doctor


def test_a_level_2_low_goes_to_the_patient_and_the_doctor_10_minutes_later(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite", lambda n: 4821 - 1000)
    clock = SimulatedClock(T0)
    esc = Escalator(config(), ledger, clock)
    esc.on_decision(low("hypo-level-2", "high", 2.8))
    assert sms(ledger) == [(PATIENT, "patient", "firing")]  # issue 14, fifth round
    lay = str(ledger.history()[0]["body"])
    assert lay.startswith("homevitals: your glucose is low: 2.8 mmol/L at 03:00. Take 15 g")
    assert "doctor" not in lay  # he is told only if it lasts
    clock.advance(timedelta(minutes=10))
    esc.run_due()
    assert sms(ledger)[-1] == (DOCTOR, "family_doctor", "escalation-1")
    # An urgent low (one CGM reading below 2.2) tells the patient and the doctor at once.
    urgent = replace(low("hypo-level-2-urgent", "high", 2.1), alert_id="a" + "3" * 31,
                     conditions=("hypo-level-2-urgent",))
    esc.on_decision(urgent)
    assert sms(ledger)[-2:] == [(PATIENT, "patient", "firing"), (DOCTOR, "family_doctor", "firing")]
    told = [h for h in ledger.history() if h["kind"]]
    assert "Your doctor is being told." in str(told[-2]["body"])


@pytest.mark.parametrize(
    ("patient", "message"),
    [
        ({"phone": "0038640111222"}, "phone '0038640111222' is not an E.164 number"),
        ({"phone": DOCTOR}, "phone +15550100001 is also a care-team number"),
        ({"language": "Chinese!"}, "language 'Chinese!' is not a language tag"),
    ],
)
def test_the_patients_phone_and_language_are_checked(
    patient: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**patient)


def test_the_patient_is_not_a_care_team_role() -> None:
    with pytest.raises(ConfigError, match="the patient is not a care-team member"):
        parse_config(yaml.safe_dump({"homes": [{"id": "h", "timezone": "UTC", "patients": [
            {"id": "ana", "name": "Ana", "care_team": [
                {"name": "Dr. K", "role": "family_doctor", "phone": DOCTOR},
                {"name": "Ana", "role": "patient", "phone": PATIENT}]}]}]}))


def _app(tmp: Path, **patient: Any) -> AlertsApp:
    data = yaml.safe_load(yaml.safe_dump(config(**patient).model_dump(mode="json")))
    data["alerts"] = {"notifier": "console", "client_id": f"alerts-{tmp.name}"[:60],
                      "outbox_path": str(tmp / "ledger.sqlite")}
    return AlertsApp(Config.model_validate(data), ConsoleNotifier(io.StringIO()),
                     SimulatedClock(T0))


def _close(app: AlertsApp) -> None:
    app.budget.close()
    app.ledger.close()
    app.outbox.close()


def test_the_patients_number_is_heard_on_the_inbound_webhook(tmp_path: Path) -> None:
    app = _app(tmp_path, language="zh-Hans")
    try:
        def inbound(n: int, body: str, sender: str = PATIENT) -> str | None:
            return app.on_inbound({"MessageSid": f"SM{n:032d}", "From": sender, "Body": body})

        thanks = "homevitals：谢谢，已收到您的回复。如仍感觉不适，请联系您的医生。"
        assert inbound(1, "好") == thanks  # nothing open: thanks, and nothing noted
        app.escalator.on_decision(low())
        assert inbound(2, "what?") == "homevitals：如已看到警报，请回复OK。"
        assert inbound(3, "ACK 9999") == thanks  # not her alert's code: nothing noted
        assert inbound(4, " ok! ") == thanks
        row = app.ledger.alert(low().alert_id)
        assert row is not None and row.patient_acked_at is not None and row.acked_at is None
        assert inbound(5, f"ACK {row.ack_code}") == "homevitals：已经收到您的回复。"
        assert inbound(6, "OK", "+15550100077") is None  # on no care team and no patient's phone
        log = [e for h in app.ledger.history() for e in h["log"]]  # type: ignore[attr-defined]
        assert sum("(patient, +15550100009) via SMS reply" in e for e in log) == 1
    finally:
        _close(app)


def test_a_patient_language_without_templates_stops_the_alerts_daemon(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no SMS templates for language 'sl'"):
        _app(tmp_path, language="sl")


def test_the_patients_sms_are_never_folded_and_an_escalation_keeps_their_privacy(
    tmp_path: Path,
) -> None:
    data = config().model_dump(mode="json")
    data["alerts"] = {"privacy": "initials", "outbox_path": str(tmp_path / "ledger.sqlite")}
    cfg = Config.model_validate(data)
    clock = SimulatedClock(T0)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    budget = AlarmBudget(tmp_path / "ledger.sqlite", cfg)
    esc = Escalator(cfg, ledger, clock)
    for i in range(6):  # six lows within the hour: more than sms_per_hour (4)
        esc.on_decision(replace(low(), alert_id=f"a{i:031d}"))
    due = ledger.due(clock.now())
    assert [n.recipient for n in due] == [PATIENT] * 6
    assert all(budget.admit(n, clock.now()) for n in due)
    clock.advance(timedelta(minutes=30))
    esc.run_due()
    escalations = [str(h["body"]) for h in ledger.history() if h["kind"] == "escalation-1"]
    assert len(escalations) == 6
    assert all(b.startswith("ESCALATED, not acknowledged by A.N. (patient ana).")
               and "Ana Novak" not in b for b in escalations)
    budget.close()
    ledger.close()
