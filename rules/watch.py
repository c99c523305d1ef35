"""Rules about what did *not* arrive: missing data, a silent gateway, a flat battery.

Silence is judged by the receive clock (issue 14): when a reading, event, heartbeat or status
*arrives*, the engine's clock (the injected one: simulated time in a replay) is what counts, never
the time stamp a device or gateway put on it. A device whose clock lags an hour therefore cannot
make a missing-data rule fire and clear on every reading. Absence has no message to trigger on, so
these rules are judged at a point in time ``now``:
- on every message from a home, at the moment it arrives, and
- when a check comes due, which is what notices a home that has gone completely silent: after
  each message the watch writes, per patient and silence rule, when the rule could next fire if
  nothing arrives (the kind's ``next_check``) as a row of the state (``due_checks``); the rules'
  one timer (``rules/timers.py``) sleeps on the injected clock until the earliest and judges the
  homes whose checks are due (``judge_due``). ``tick`` judges every home at once (tests, tools).
They clear only once data has flowed again for ``clear_after_minutes`` (and is still flowing), so
one stray reading in a dead night does not send an all clear. Both paths run the same code against
the durable state in ``rules/state.py``. What each rule makes of it is its kind's (the ``on_clock``,
``on_arrival``, ``on_home_heard`` and ``on_batteries`` hooks, ``rules/kinds/``); this module keeps
when each home and measurement was last heard from and calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homevitals.rules.kinds import RuleModel
from homevitals.rules.state import HomeSeen, OpenAlert, State
from homevitals.vocab.config import HomeConfig
from homevitals.vocab.readings import (
    AlertDecision,
    GatewayState,
    GatewayStatus,
    Measurement,
    Reading,
)

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine, Subject

__all__ = ["Watch"]


# "Last seen" times are written at most this often (in data time) per patient and metric, and
# per home: a reading every second must not cost an fsync every second. The newest time is kept
# in memory as well and judged with, so the throttle never makes an alert early; a crash loses at
# most this much precision of the durable copy.
WRITE_EVERY = timedelta(seconds=10)
# A check judged at its due time that is still due (a condition that holds but cannot fire)
# is looked at again this much later, as the fixed tick did, never in a loop.
RECHECK = timedelta(seconds=30)


class Watch:
    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self.device_patient = {
            d.id: d.patient for s in engine.subjects.values() for d in s.home.devices
        }
        self.watched = {
            (s.patient.id, str(m))
            for s in engine.subjects.values()
            for r in s.rules
            if (m := r.watches()) is not None
        }
        self._latest: dict[tuple[str, str], datetime] = {}
        self._written: dict[tuple[str, str], datetime] = {}
        self._due: dict[tuple[str, str], datetime | None] = {}  # as written to due_checks
        self.kick: Callable[[], None] = lambda: None  # a due time moved earlier: wake the timer

    def _fresh(self, key: tuple[str, str], at: datetime) -> bool:
        """Remember ``at``; True when the durable copy is due for a write."""
        if at > self._latest.get(key, at - WRITE_EVERY):
            self._latest[key] = at
        written = self._written.get(key)
        if written is None or at - written >= WRITE_EVERY:
            self._written[key] = at
            return True
        return False

    def last_seen(self, st: State, patient: str, measurement: str) -> datetime | None:
        durable = st.last_seen(patient, measurement)
        latest = self._latest.get((patient, measurement))
        return max(filter(None, (durable, latest)), default=None)

    def latest_alive(self, home: str) -> datetime | None:
        """The newest moment the home was heard from, kept in memory (see WRITE_EVERY)."""
        return self._latest.get(("", home))

    # --- inputs -------------------------------------------------------------------------------
    def on_reading(self, st: State, s: Subject, r: Reading) -> list[AlertDecision]:
        out: list[AlertDecision] = []
        now = self.engine.clock.now()  # the receive clock, not the device's stamp
        key = (r.patient, str(r.measurement))
        prev = self.last_seen(st, *key) if key in self.watched else None
        if key in self.watched and self._fresh(key, now):
            st.seen(r.patient, str(r.measurement), now)
        for rule in s.rules:
            d = rule.on_arrival(self.engine, st, s, r, now, prev)
            out += [d] if d is not None else []
        if r.measurement == Measurement.BATTERY and "battery" in r.fields:
            st.battery(r.device, r.patient, r.fields["battery"].value, r.time)
            out += self._batteries(st, s, now)
        return out + self.on_home_message(st, s.home, now)

    def on_home_message(self, st: State, home: HomeConfig, at: datetime) -> list[AlertDecision]:
        """Any message proves the gateway alive and moves the home's own clock to ``at``."""
        seen = st.home(home.id)
        prev = max(
            filter(None, (seen.last_alive if seen else None, self._latest.get(("", home.id)))),
            default=None,
        )
        fresh = self._fresh(("", home.id), at)
        if seen is None or seen.offline_since is not None or fresh:
            st.home_alive(home.id, at)
        out = self._gateway_back(st, home, at, prev) + self._judge_home(st, home, at)
        self.schedule(st, home, at)
        return out

    def on_status(self, st: State, status: GatewayStatus) -> list[AlertDecision]:
        home = self.home(status.home)
        if home is None:
            return []
        if status.state == GatewayState.ONLINE:
            return self.on_home_message(st, home, self.engine.clock.now())
        # The will's own time stamp is from when the gateway connected, so "offline since" is
        # the last moment the home was heard from (MQTT 3.1.1 section 3.1.2.5, the will is sent
        # by the broker when the keepalive lapses).
        seen = st.home(home.id)
        since = seen.last_alive if seen is not None else self.engine.clock.now()
        since = max(since, self._latest.get(("", home.id), since))
        st.home_offline(home.id, since)
        out = self._judge_home(st, home, since)
        self.schedule(st, home, self.engine.clock.now(), judged=False)  # judged at ``since``
        return out

    def on_heartbeat(
        self, st: State, home_id: str, at: datetime, batteries: dict[str, float]
    ) -> list[AlertDecision]:
        home = self.home(home_id)
        if home is None:
            return []
        out: list[AlertDecision] = []
        for device, percent in batteries.items():
            patient = self.device_patient.get(device)
            if patient is not None:
                st.battery(device, patient, percent, at)
        now = self.engine.clock.now()
        for s in self.engine.subjects_of(home.id):
            out += self._batteries(st, s, now)
        return out + self.on_home_message(st, home, now)

    def tick(self, st: State, now: datetime) -> list[AlertDecision]:
        out: list[AlertDecision] = []
        for home in {s.home.id: s.home for s in self.engine.subjects.values()}.values():
            out += self._judge_home(st, home, now)
        return out

    def judge_due(self, st: State, s: Subject, now: datetime) -> list[AlertDecision]:
        """A silence check of the patient's is due at ``now``: judge all of them (as the tick
        does) and write when they are next due."""
        seen = st.home(s.home.id)
        out = self._judge(st, s, now, seen)
        self._schedule(st, s, now, seen, force=True, judged=True)
        return out

    # --- due times ----------------------------------------------------------------------------
    def schedule(
        self, st: State, home: HomeConfig, now: datetime, force: bool = False,
        judged: bool = True,
    ) -> None:
        """Write when each silence check of the home's patients (those this worker owns) is
        next due; ``judged``: their checks were just judged at ``now``."""
        seen = st.home(home.id)
        for s in self.engine.subjects_of(home.id):
            if self.engine.owns(s.patient.id):
                self._schedule(st, s, now, seen, force, judged)

    def _schedule(
        self, st: State, s: Subject, now: datetime, seen: HomeSeen | None, force: bool,
        judged: bool,
    ) -> None:
        """Like "last seen", a due time that moved later by less than WRITE_EVERY is not
        rewritten: the row is never later than the truth, and an early look decides nothing."""
        for rule in s.rules:
            if type(rule).next_check is RuleModel.next_check:
                continue
            due = rule.next_check(self.engine, st, s, seen)
            if judged and due is not None and due <= now:
                due = now + RECHECK
            key = (s.patient.id, rule.id)
            old = self._due.get(key)
            if not force and key in self._due and (
                old == due or (old and due and timedelta(0) < due - old < WRITE_EVERY)
            ):
                continue
            self._due[key] = due
            if due is not None and (old is None or due < old):
                self.kick()
            st.set_due(s.patient.id, rule.id, s.home.id, due, self.engine.owner)

    def forget(self, patients: set[str], homes: set[str]) -> None:
        """Drop what memory holds of these patients and homes (another worker may have changed
        them): from here on their durable state is what counts."""
        for cache in (self._latest, self._written, self._due):
            for key in [k for k in cache if k[0] in patients or (k[0] == "" and k[1] in homes)]:
                del cache[key]

    # --- judgement ----------------------------------------------------------------------------
    def _judge_home(self, st: State, home: HomeConfig, now: datetime) -> list[AlertDecision]:
        seen = st.home(home.id)
        out: list[AlertDecision] = []
        for s in self.engine.subjects_of(home.id):
            out += self._judge(st, s, now, seen)
        return out

    def _judge(
        self, st: State, s: Subject, now: datetime, seen: HomeSeen | None
    ) -> list[AlertDecision]:
        out: list[AlertDecision] = []
        for rule in s.rules:
            d = rule.on_clock(self.engine, st, s, now, seen)
            if d is not None:
                out.append(d)
        return out

    def recovery(
        self,
        st: State,
        s: Subject,
        rule: RuleModel,
        current: OpenAlert,
        now: datetime,
        prev: datetime | None,
        silence_minutes: float,
        clear_after_minutes: float,
        why: str,
        **kw: object,
    ) -> AlertDecision | None:
        """Data arrived at ``now`` (the one before at ``prev``) while the alert is open. It clears
        once data has arrived again for ``clear_after_minutes`` with no silence in between (a
        gap the rule itself calls silence starts the wait over), so a stray value in a dead
        night is not an all clear; judged on arrivals only, never on a tick."""
        silent = prev is None or now - prev >= timedelta(minutes=silence_minutes)
        st.set_recovering(s.patient.id, rule.id, now, restart=silent)
        back = st.recovering(s.patient.id, rule.id) or now
        if now - back < timedelta(minutes=clear_after_minutes):
            return None
        minutes = f"{clear_after_minutes:g}"
        return self.engine.resolve(
            st, s, rule, current, f"{why} for {minutes} minutes", time=now, **kw
        )

    def _gateway_back(
        self, st: State, home: HomeConfig, at: datetime, prev: datetime | None
    ) -> list[AlertDecision]:
        """The home was heard from at ``at``: an open gateway alert clears once it has been
        heard from for ``clear_after_minutes``."""
        out: list[AlertDecision] = []
        for s in self.engine.subjects_of(home.id):
            for rule in s.rules:
                d = rule.on_home_heard(self.engine, st, s, at, prev)
                out += [d] if d is not None else []
        return out

    def _batteries(self, st: State, s: Subject, at: datetime) -> list[AlertDecision]:
        out = [rule.on_batteries(self.engine, st, s, at) for rule in s.rules]
        return [d for d in out if d is not None]

    def home(self, home_id: str) -> HomeConfig | None:
        return next((s.home for s in self.engine.subjects.values() if s.home.id == home_id), None)
