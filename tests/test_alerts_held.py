"""Alert decisions held on the worker's disk while the ledger's database is away
(``alerts/held.py``, docs/cluster.md "Alert state"): their order, and a restart before they are
recorded. The ledger is the embedded SQLite one; the database being away is an
``OperationalError``, as SQLAlchemy raises it for a PostgreSQL without a primary. The whole
story against Patroni is ``tests/test_cluster_alerts.py``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import yaml
from daemons import wait_until
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.held import HeldDecisions
from homevitals.alerts.ledger import Ledger
from homevitals.infra.outbox import DurableQueue
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import parse_config
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

DOCTOR = "+15550100001"


def _worker(path: Path, clock: SimulatedClock) -> Escalator:
    cfg = parse_config(yaml.safe_dump({
        "alerts": {"routes": [{"chain": ["family_doctor"], "escalate_after_minutes": 10}]},
        "homes": [{"id": "home-novak", "timezone": "Europe/Ljubljana", "patients": [{
            "id": "ana", "name": "Ana Novak", "care_team": [
                {"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR},
            ]}]}]}))
    return Escalator(cfg, Ledger(path), clock)


def _kinds(path: Path, aid: str) -> list[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT kind FROM notifications WHERE alert_id=:a AND"
                                  " recipient=:r ORDER BY id"), {"a": aid, "r": DOCTOR})
            return [str(k) for (k,) in rows]
    finally:
        engine.dispose()


def test_held_decisions_keep_their_order_and_survive_a_restart(tmp_path: Path) -> None:
    """While the ledger is away a firing is held on the worker's disk; its resolved, arriving
    when the ledger answers again, is held behind it rather than overtaking it. The worker
    restarts before either is recorded: its thread records both, in order, from the file."""
    clock = SimulatedClock(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    escalator = _worker(tmp_path / "ledger.sqlite", clock)
    down = [True]

    def record(d: AlertDecision) -> int:
        if down[0]:
            raise OperationalError("INSERT INTO alerts", {}, OSError("no primary"))
        return escalator.on_decision(d)

    aid, dead = "a" + secrets.token_hex(15), []
    topic = Topics().alert("home-novak", "ana")
    firing, resolved = (AlertDecision(
        alert_id=aid, state=state, home="home-novak", patient="ana",  # type: ignore[arg-type]
        rule="call-button", severity="critical",  # type: ignore[arg-type]
        reason="Call for help from home", time=clock.now(), measurement="event",
        field="call_button", observed_at=clock.now()) for state in ("firing", "resolved"))
    outbox = DurableQueue(tmp_path / "local.sqlite")
    held = HeldDecisions(outbox, record, lambda: None, lambda *a: dead.append(a))
    assert held.offer(firing, topic, wire.encode(firing)) == 0
    down[0] = False
    assert held.offer(resolved, topic, wire.encode(resolved)) == 0  # behind the firing
    assert held.count() == 2 and escalator.ledger.alert(aid) is None
    outbox.close()  # the worker restarts

    outbox = DurableQueue(tmp_path / "local.sqlite")
    recorded: list[int] = []
    held = HeldDecisions(outbox, record, lambda: recorded.append(1), lambda *a: dead.append(a))
    held.start()
    try:
        wait_until("both recorded", lambda: len(recorded) == 2, 10)
        kinds = _kinds(tmp_path / "ledger.sqlite", aid)
        row = escalator.ledger.alert(aid)
        print(f"\nheld decisions after a restart, recorded in order: {kinds}")
        assert kinds == ["firing", "resolved"]  # the doctor hears both, in order
        assert row is not None and row.state == "resolved"
        assert held.count() == 0 and dead == []
    finally:
        held.stop()
        outbox.close()
        escalator.ledger.close()

