"""The alert service's side of an episode (issue 14): an ``updated`` decision is one update SMS
and re-times the escalation; redelivered, it is nothing; after an acknowledgement it escalates
nothing. Through the Escalator with its real SQLite ledger and a simulated clock (the daemon
stories with Mosquitto and Twilio are in tests/test_replay_episodes.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import Ledger
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.readings import AlertDecision, AlertState

DOCTOR, BACKUP, MANAGER = "+15550100001", "+15550100003", "+15550100004"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def setup(tmp: Path, **alerts: Any) -> tuple[Escalator, Ledger, SimulatedClock]:
    cfg = parse_config(yaml.safe_dump({"alerts": alerts, "homes": [{
        "id": "home-1", "timezone": "Europe/Ljubljana",
        "patients": [{"id": "ana", "name": "Ana Novak", "care_team": [
            {"name": "Dr. K", "role": "family_doctor", "phone": DOCTOR},
            {"name": "Dr. V", "role": "backup_doctor", "phone": BACKUP},
            {"name": "M. Z", "role": "health_manager", "phone": MANAGER},
        ]}],
    }]}))
    clock = SimulatedClock(T0)
    ledger = Ledger(tmp / "ledger.sqlite", lambda n: 4821 - 1000)
    return Escalator(cfg, ledger, clock), ledger, clock


def low(state: str, rule: str, severity: str, value: float, **kw: Any) -> AlertDecision:
    return AlertDecision(
        alert_id="a" + "1" * 31, state=state, home="home-1", patient="ana",  # type: ignore[arg-type]
        rule=rule, severity=severity, reason=f"{rule} reason",  # type: ignore[arg-type]
        time=T0, measurement="glucose", field="glucose", value=value, unit="mmol/L",
        observed_at=T0, episode="glucose-low", **kw,
    )


def sms(ledger: Ledger) -> list[tuple[str, str]]:
    return [(str(h["recipient"]), str(h["kind"])) for h in ledger.history() if h["kind"]]


def test_update_is_one_sms_and_retimes_the_escalation(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    assert esc.on_decision(low("firing", "hypo-level-1", "medium", 3.6)) == 1
    [(_, due)] = ledger.scheduled()
    assert due == "2026-11-21T03:00:00.000000Z"  # medium: the backup doctor after 60 minutes
    clock.advance(timedelta(minutes=10))
    update = low("updated", "hypo-level-2", "high", 2.8)
    assert esc.on_decision(update) == 1
    assert esc.on_decision(update) == 0  # redelivered: nothing
    [(_, due)] = ledger.scheduled()
    assert due == "2026-11-21T02:30:00.000000Z"  # high: 20 minutes after the update
    assert sms(ledger) == [(DOCTOR, "firing"), (DOCTOR, "update-high")]
    body = next(str(h["body"]) for h in ledger.history() if h["kind"] == "update-high")
    assert body == ("UPDATE: homevitals HIGH: Ana Novak: glucose 2.8 mmol/L at 03:00."
                    " hypo-level-2 reason. Reply ACK 4821")
    row = ledger.alert(update.alert_id)
    assert row is not None and (row.severity, row.rule) == ("high", "hypo-level-1")
    clock.advance(timedelta(minutes=19))
    assert esc.run_due() == 0
    clock.advance(timedelta(minutes=1))
    assert esc.run_due() == 1  # the level-2 chain: the backup doctor, told it is HIGH
    assert sms(ledger)[-1] == (BACKUP, "escalation-1")
    assert "HIGH" in str(ledger.history()[-1]["body"])


def test_after_an_ack_a_rise_tells_those_told_and_escalates_nothing(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path)
    esc.on_decision(low("firing", "hypo-level-1", "medium", 3.6))
    clock.advance(timedelta(minutes=5))
    assert esc.acknowledge("4821", "Dr. K", "SMS reply", phone=DOCTOR) is not None
    clock.advance(timedelta(minutes=5))
    assert esc.on_decision(low("updated", "hypo-level-2", "high", 2.8)) == 1
    assert ledger.scheduled() == []
    clock.advance(timedelta(hours=2))
    assert esc.run_due() == 0
    assert sms(ledger) == [(DOCTOR, "firing"), (DOCTOR, "update-high")]
    assert esc.on_decision(low("resolved", "hypo-level-1", "high", 4.6)) == 1
    assert sms(ledger)[-1] == (DOCTOR, "resolved")


def test_an_update_for_an_unknown_alert_opens_it(tmp_path: Path) -> None:
    esc, ledger, _ = setup(tmp_path)
    d = low("updated", "hypo-level-2", "high", 2.8)
    assert esc.on_decision(d) == 1
    assert sms(ledger) == [(DOCTOR, "firing")]
    assert esc.on_decision(replace(d, state=AlertState.FIRING)) == 0


def test_a_low_episode_held_for_quiet_hours_goes_at_once_when_it_rises(tmp_path: Path) -> None:
    esc, ledger, clock = setup(tmp_path, quiet_hours={"start": "22:00", "end": "07:00"})
    esc.on_decision(low("firing", "bp-not-measured", "low", 3.6))
    assert ledger.due(clock.now()) == []  # 03:00 local: held until 07:00
    clock.advance(timedelta(minutes=5))
    esc.on_decision(low("updated", "hypo-level-2", "high", 2.8))
    assert [(n.recipient, n.kind) for n in ledger.due(clock.now())] == [(DOCTOR, "firing")]


def test_a_route_can_name_an_episode(tmp_path: Path) -> None:
    esc, ledger, _ = setup(tmp_path, routes=[
        {"rules": ["glucose-low"], "chain": ["backup_doctor"]}, {"chain": ["family_doctor"]}])
    esc.on_decision(low("firing", "hypo-level-1", "medium", 3.6))
    assert sms(ledger) == [(BACKUP, "firing")]
