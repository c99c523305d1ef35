"""The rules' state (rules/store.py) and their one timer (rules/timers.py): missing-data and
silent-gateway checks are rows with a due time, judged when they come due on the injected clock;
the same state in PostgreSQL is shared by two rules workers, one taking over the other's patient
(issue 16 "One model of time", issue 17 "Rules", docs/cluster.md "Rules ownership").

The timer runs as in the daemon, on a simulated clock: the tests move the clock and wait for the
decision in the outbox, never for wall time to pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cluster_fixtures import postgres  # noqa: F401 - fixture
from daemons import wait_until
from pg_servers import Postgres
from rules_helpers import GLUCOSE, cgm, config

from homevitals.rules.app import RulesApp
from homevitals.rules.engine import RuleEngine
from homevitals.rules.store import RulesStore
from homevitals.rules.timers import RulesTimer
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

ZONE = ZoneInfo("Europe/Ljubljana")
NIGHT_GAP = {"id": "cgm-lost", "kind": "missing", "measurement": "glucose", "after_minutes": 30,
             "window": {"start": "22:00", "end": "07:00"}, "severity": "medium",
             "reason": "No glucose reading for 30 minutes at night"}
GATEWAY = {"id": "gateway-offline", "kind": "gateway", "heartbeat_missed_minutes": 10,
           "severity": "medium", "reason": "The home gateway is offline"}


def _decisions(store: RulesStore) -> list[AlertDecision]:
    msgs = [wire.decode(m.payload) for m in store.peek(100)]
    return [m for m in msgs if isinstance(m, AlertDecision)]


def _engine(store: RulesStore, cfg: Config, clock: SimulatedClock, owner: str) -> RuleEngine:
    e = RuleEngine(list(cfg.rules.definitions), cfg.homes, store, Topics(), clock, owner=owner)
    e.take_over()
    return e


def test_a_silent_cgm_fires_when_its_check_comes_due_on_the_clock(tmp_path: Path) -> None:
    last = datetime(2026, 11, 21, 2, 0, tzinfo=ZONE)
    clock = SimulatedClock(last)
    store = RulesStore(tmp_path / "rules.sqlite")
    e = _engine(store, config([NIGHT_GAP, GATEWAY]), clock, "rules")
    timer = RulesTimer(e, cap_seconds=3600, on_new=lambda: None)  # never wakes on wall time
    timer.start()
    try:
        e.on_reading(cgm(last, 6.0))
        e.on_heartbeat("home-1", last, {})
        # Due: the gateway check 10 minutes after the home was last heard, the CGM's at 02:30.
        assert e.next_due() == last + timedelta(minutes=10)
        clock.set(last + timedelta(minutes=9))
        assert _decisions(store) == []
        clock.set(last + timedelta(minutes=11))
        [gw] = wait_until("the gateway alert", lambda: _decisions(store), 10)
        assert (gw.state, gw.rule, gw.observed_at) == ("firing", "gateway-offline", last)
        assert e.next_due() == last + timedelta(minutes=30)
        clock.set(last + timedelta(minutes=31))
        got = wait_until("the missing-data alert", lambda: _decisions(store)[1:], 10)
        assert [(d.state, d.rule, d.observed_at) for d in got] == [("firing", "cgm-lost", last)]
        assert e.next_due() is None  # both open: they clear on arrivals, never on the clock
    finally:
        timer.stop()
        store.close()


def test_a_check_outside_its_window_is_due_when_the_window_opens(tmp_path: Path) -> None:
    noon = datetime(2026, 11, 21, 12, 0, tzinfo=ZONE)
    clock = SimulatedClock(noon)
    store = RulesStore(tmp_path / "rules.sqlite")
    e = _engine(store, config([NIGHT_GAP]), clock, "rules")
    e.on_reading(cgm(noon, 6.0))
    night = datetime(2026, 11, 21, 22, 0, tzinfo=ZONE)
    assert e.next_due() == night  # 12:30 is by day: not news until the night window opens
    clock.set(night - timedelta(seconds=1))
    assert e.run_due() == []
    clock.set(night)
    [d] = e.run_due()
    assert (d.state, d.rule, d.observed_at) == ("firing", "cgm-lost", noon)
    store.close()


def test_the_state_survives_a_restart_with_its_due_times(tmp_path: Path) -> None:
    """The daemon's SQLite file: a restarted worker judges what came due while it was down."""
    last = datetime(2026, 11, 21, 2, 0, tzinfo=ZONE)
    clock = SimulatedClock(last)
    store = RulesStore(tmp_path / "rules.sqlite")
    _engine(store, config([NIGHT_GAP]), clock, "rules").on_reading(cgm(last, 6.0))
    store.close()
    clock.set(last + timedelta(hours=1))
    store = RulesStore(tmp_path / "rules.sqlite")
    e = _engine(store, config([NIGHT_GAP]), clock, "rules")
    [d] = e.run_due()
    assert (d.state, d.rule, d.observed_at) == ("firing", "cgm-lost", last)
    store.close()



def _app(tmp: Path, url: str, name: str, clock: SimulatedClock) -> RulesApp:
    cfg = config([NIGHT_GAP, *GLUCOSE])
    rules = cfg.rules.model_copy(update={"state_url": url, "client_id": name,
                                         "state_path": str(tmp / f"{name}.sqlite")})
    cfg = cfg.model_copy(update={"rules": rules})
    return RulesApp(cfg, clock, timer_thread=False)  # not started: no broker needed here


def test_a_second_worker_takes_over_a_patient_with_its_state(
    tmp_path: Path, postgres: Postgres,  # noqa: F811 - the fixture
) -> None:
    """Worker 1 opens a low-glucose episode and dies before publishing it; worker 2, over the
    same PostgreSQL, takes the patient over: it publishes the pending decision, continues the
    same episode (an update and the one all clear, no second alert) and owns the due checks."""
    t0 = datetime(2026, 11, 21, 2, 0, tzinfo=ZONE)
    clock = SimulatedClock(t0)
    w1, w2 = _app(tmp_path, postgres.url, "w1", clock), _app(tmp_path, postgres.url, "w2", clock)
    try:
        w1.take_over(["ana"])
        fall = [6.0, 5.2, 4.4, 3.6, 2.8]  # fast: level 1 at once, then level 2 (glucose-low)
        for i, v in enumerate(fall[:4]):
            clock.set(t0 + timedelta(minutes=5 * i))
            w1.engine.on_reading(cgm(clock.now(), v))
        [fired] = _decisions(w1.outbox)
        assert (fired.state, fired.rule) == ("firing", "hypo-level-1")
        assert w1.engine.next_due() is not None and w2.engine.next_due() is None
        # w1 is gone (its pump never ran); w2 becomes the owner.
        assert w2.take_over(["ana"]) == 1
        assert [d.alert_id for d in _decisions(w2.outbox)] == [fired.alert_id]
        assert _decisions(w1.outbox) == [] and w1.engine.next_due() is None
        assert w2.engine.next_due() == clock.now() + timedelta(minutes=30)
        clock.set(t0 + timedelta(minutes=20))
        [upd] = w2.engine.on_reading(cgm(clock.now(), fall[4]))
        assert (upd.state, upd.rule, upd.alert_id) == ("updated", "hypo-level-2", fired.alert_id)
        out = []
        for i, v in enumerate([3.6, 4.2, 4.8, 5.2]):
            clock.set(t0 + timedelta(minutes=25 + 5 * i))
            out += w2.engine.on_reading(cgm(clock.now(), v))
        # 3.6: back at level 1 (the fall, an update of lower severity); 4.8: the one all clear.
        assert [(d.state, d.severity, d.alert_id) for d in out] == [
            ("updated", "medium", fired.alert_id), ("resolved", "medium", fired.alert_id)]
        # Silence after that: worker 2's check comes due; worker 1's timer has none.
        clock.set(t0 + timedelta(minutes=40 + 31))
        assert w1.engine.run_due() == []
        [lost] = w2.engine.run_due()
        assert (lost.state, lost.rule) == ("firing", "cgm-lost")
        assert lost.time == clock.now().astimezone(UTC)
    finally:
        for app in (w1, w2):
            app.outbox.close()
