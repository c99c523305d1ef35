"""Issue 14, fifth and sixth rounds: a level-2 low from the CGM tells the person and family at
once and the doctor 10 minutes later, only if the low is still at level 2 then; the doctor's
later steps stop when it falls back to level 1 (no SMS for the fall, a line in the audit trail)
and a doctor already told is not told again when it deepens back; an urgent low tells the
doctor at once. Through the Escalator with its real SQLite ledger, the shipped routes
and a simulated clock (the daemon story with Mosquitto: tests/test_replay_episodes.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.readings import AlertDecision

PATIENT, FAMILY = "+15550100009", "+15550100002"
DOCTOR, BACKUP, MANAGER = "+15550100001", "+15550100003", "+15550100004"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
AID = "a" + "2" * 31


def setup(tmp: Path) -> tuple[Escalator, Ledger, SimulatedClock]:
    cfg = parse_config(yaml.safe_dump({"homes": [{
        "id": "home-1", "timezone": "Europe/Ljubljana",
        "patients": [{"id": "ana", "name": "Ana Novak", "phone": PATIENT, "care_team": [
            {"name": "Petra", "role": "family_member", "phone": FAMILY},
            {"name": "Dr. K", "role": "family_doctor", "phone": DOCTOR},
            {"name": "Dr. V", "role": "backup_doctor", "phone": BACKUP},
            {"name": "M. Z", "role": "health_manager", "phone": MANAGER},
        ]}],
    }]}))
    clock = SimulatedClock(T0)
    ledger = Ledger(tmp / "ledger.sqlite", lambda n: 4821 - 1000)
    return Escalator(cfg, ledger, clock), ledger, clock


def low(state: str, rule: str, severity: str, value: float, *conditions: str) -> AlertDecision:
    return AlertDecision(
        alert_id=AID, state=state, home="home-1", patient="ana",  # type: ignore[arg-type]
        rule=rule, severity=severity, reason=f"{rule} reason",  # type: ignore[arg-type]
        time=T0, measurement="glucose", field="glucose", value=value, unit="mmol/L",
        observed_at=T0, episode="glucose-low", conditions=conditions,
    )


def level2(value: float = 2.8) -> AlertDecision:
    return low("firing", "hypo-level-2", "high", value, "hypo-level-1", "hypo-level-2")


def sms(ledger: Ledger) -> list[tuple[str, str]]:
    return [(str(h["recipient"]), str(h["kind"])) for h in ledger.history() if h["kind"]]


def at(clock: SimulatedClock, esc: Escalator, minutes: float) -> int:
    clock.set(T0 + timedelta(minutes=minutes))
    return esc.run_due()


def test_the_doctor_hears_of_a_level_2_low_10_minutes_after_the_family(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    assert sms(ledger) == [(PATIENT, "firing"), (FAMILY, "firing")]
    assert at(clock, esc, 9) == 0
    assert at(clock, esc, 10) == 1  # still at level 2: the doctor now
    assert sms(ledger)[-1] == (DOCTOR, "escalation-1")
    body = str(ledger.history()[-1]["body"])  # his first SMS: the alert, in one segment
    assert body.startswith("homevitals HIGH: Ana Novak: glucose 2.8 mmol/L") and "4821" in body
    assert len(body) <= 160
    assert at(clock, esc, 29) == 0
    assert at(clock, esc, 30) == 1  # then the backup doctor, 20 minutes later (sixth round)
    assert sms(ledger)[-1] == (BACKUP, "escalation-2")


def test_a_low_treated_within_10_minutes_never_reaches_the_doctor(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    clock.set(T0 + timedelta(minutes=5))
    assert esc.on_decision(low("updated", "hypo-level-1", "medium", 3.4, "hypo-level-1")) == 0
    row = ledger.alert(AID)
    assert row is not None and row.decoded().severity == "medium"
    log = ledger.history()[0]["log"]
    assert isinstance(log, list) and any("fell: high -> medium" in e for e in log)
    assert ledger.scheduled() == []
    assert at(clock, esc, 10) == 0 and at(clock, esc, 120) == 0
    esc.on_decision(low("resolved", "hypo-level-1", "medium", 4.6))
    assert sms(ledger) == [(PATIENT, "firing"), (FAMILY, "firing"),
                           (PATIENT, "resolved"), (FAMILY, "resolved")]  # no all clear to him


def test_back_at_level_1_the_backup_doctor_and_reminders_stop(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    at(clock, esc, 10)
    assert sms(ledger)[-1] == (DOCTOR, "escalation-1")
    clock.set(T0 + timedelta(minutes=20))
    assert esc.on_decision(low("updated", "hypo-level-1", "medium", 3.5, "hypo-level-1")) == 0
    assert at(clock, esc, 30) == 0 and at(clock, esc, 300) == 0  # no backup, no reminders
    told = sms(ledger)
    assert BACKUP not in {r for r, _ in told}
    assert not any(k.startswith("reminder") for _, k in told)


def test_a_fall_back_to_level_2_is_one_update_and_the_doctor_10_minutes_after_it(
    tmp_path: Path,
) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    clock.set(T0 + timedelta(minutes=5))
    esc.on_decision(low("updated", "hypo-level-1", "medium", 3.4, "hypo-level-1"))
    clock.set(T0 + timedelta(minutes=30))
    assert esc.on_decision(low("updated", "hypo-level-2", "high", 2.9,
                               "hypo-level-1", "hypo-level-2")) == 2
    assert sms(ledger)[-2:] == [(PATIENT, "update-high"), (FAMILY, "update-high")]
    assert at(clock, esc, 34) == 0
    clock.set(T0 + timedelta(minutes=35))
    esc.on_decision(low("updated", "hypo-level-1", "medium", 3.2, "hypo-level-1"))
    clock.set(T0 + timedelta(minutes=50))
    # A third level 2: the person and family had their one update already; nobody is told now,
    # and the doctor's wait starts again.
    assert esc.on_decision(low("updated", "hypo-level-2", "high", 2.8,
                               "hypo-level-1", "hypo-level-2")) == 0
    assert at(clock, esc, 59) == 0
    assert at(clock, esc, 60) == 1 and sms(ledger)[-1] == (DOCTOR, "escalation-1")
    assert "2.8 mmol/L" in str(ledger.history()[-1]["body"])


def test_back_at_level_2_the_family_hears_and_the_doctor_told_before_does_not(
    tmp_path: Path,
) -> None:
    # Sixth round: the fall was sent to nobody, so the doctor's "level 2" still holds; the
    # person and family, who treat each low, get the update; the chain goes on from the doctor.
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    at(clock, esc, 10)
    assert sms(ledger)[-1] == (DOCTOR, "escalation-1")
    clock.set(T0 + timedelta(minutes=15))
    esc.on_decision(low("updated", "hypo-level-1", "medium", 3.3, "hypo-level-1"))
    clock.set(T0 + timedelta(minutes=40))
    assert esc.on_decision(low("updated", "hypo-level-2", "high", 2.7,
                               "hypo-level-1", "hypo-level-2")) == 2
    assert sms(ledger)[-2:] == [(PATIENT, "update-high"), (FAMILY, "update-high")]
    log = ledger.history()[0]["log"]
    assert isinstance(log, list)
    assert any("back at a severity reached before" in e for e in log)
    assert at(clock, esc, 59) == 0
    assert at(clock, esc, 60) == 1  # the backup doctor 20 minutes after the rise
    assert sms(ledger)[-1] == (BACKUP, "escalation-2")
    assert [k for r, k in sms(ledger) if r == DOCTOR] == ["escalation-1"]


def test_an_urgent_low_tells_the_doctor_at_once(tmp_path: Path) -> None:
    esc, ledger, _ = setup(tmp_path)
    esc.on_decision(low("firing", "hypo-level-2-urgent", "high", 2.1,
                        "hypo-level-1", "hypo-level-2-urgent"))
    assert sms(ledger) == [(PATIENT, "firing"), (FAMILY, "firing"), (DOCTOR, "firing")]


def test_a_finger_stick_below_3_tells_the_doctor_at_once(tmp_path: Path) -> None:
    esc, ledger, _ = setup(tmp_path)
    esc.on_decision(low("firing", "hypo-level-2", "high", 2.8,
                        "hypo-level-1", "hypo-level-2", "hypo-level-2-meter"))
    assert sms(ledger) == [(PATIENT, "firing"), (FAMILY, "firing"), (DOCTOR, "firing")]


def test_a_step_made_due_after_the_fall_is_still_not_taken(tmp_path: Path) -> None:
    # The family's SMS fails for good after the fall: the dead end makes the next step due now,
    # but the timer checks the alert's current severity in the step's transaction.
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    clock.set(T0 + timedelta(minutes=5))
    esc.on_decision(low("updated", "hypo-level-1", "medium", 3.4, "hypo-level-1"))
    assert ledger.expedite(AID, clock.now(), "nobody at step 1 reachable")
    assert esc.run_due() == 0
    assert DOCTOR not in {r for r, _ in sms(ledger)}
    log = ledger.history()[0]["log"]
    assert isinstance(log, list) and "not taken: back at medium" in log[-1]
    assert ledger.scheduled() == []


def test_an_urgent_low_joining_while_the_doctor_waits_pages_him_now(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    clock.set(T0 + timedelta(minutes=3))
    joined = low("updated", "hypo-level-2-urgent", "high", 2.1,
                 "hypo-level-1", "hypo-level-2", "hypo-level-2-urgent")
    assert esc.on_decision(joined) == 0  # no SMS of its own ...
    assert esc.run_due() == 1  # ... the doctor's waiting step, now, not at minute 10
    assert sms(ledger) == [(PATIENT, "firing"), (FAMILY, "firing"), (DOCTOR, "escalation-1")]
    body = str(ledger.history()[-1]["body"])
    assert body.startswith("homevitals HIGH: Ana Novak: glucose 2.1 mmol/L"), body
    assert esc.on_decision(joined) == 0 and at(clock, esc, 10) == 0  # a redelivery: nothing
    assert at(clock, esc, 22) == 0  # the backup doctor 20 minutes after him
    assert at(clock, esc, 23) == 1 and sms(ledger)[-1] == (BACKUP, "escalation-2")


def test_a_join_after_the_doctor_was_told_changes_nothing(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(level2())
    assert at(clock, esc, 10) == 1  # the doctor, on time
    clock.set(T0 + timedelta(minutes=12))
    esc.on_decision(low("updated", "hypo-level-2-urgent", "high", 2.1,
                        "hypo-level-1", "hypo-level-2", "hypo-level-2-urgent"))
    assert esc.run_due() == 0  # the backup doctor stays at minute 30
    assert at(clock, esc, 29) == 0 and at(clock, esc, 30) == 1
