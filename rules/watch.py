"""Rules about what did *not* arrive: missing data, a silent gateway, a flat battery.

Silence is judged by the receive clock (issue 14): when a reading, event, heartbeat or status
*arrives*, the engine's clock (the injected one: simulated time in a replay) is what counts, never
the time stamp a device or gateway put on it. A device whose clock lags an hour therefore cannot
make a missing-data rule fire and clear on every reading. Absence has no message to trigger on, so
these rules are judged at a point in time ``now``:
- on every message from a home, at the moment it arrives, and
- on a clock tick (APScheduler, ``rules.tick_seconds``), which is what notices a home that has
  gone completely silent.
They clear only once data has flowed again for ``clear_after_minutes`` (and is still flowing), so
one stray reading in a dead night does not send an all clear. Both paths run the same code against
the durable state in ``rules/state.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homevitals import wire
from homevitals.config import (
    DEVICE_MEASUREMENTS,
    BatteryRuleConfig,
    GatewayRuleConfig,
    HomeConfig,
    MissingDataRuleConfig,
)
from homevitals.readings import AlertDecision, GatewayState, GatewayStatus, Measurement, Reading
from homevitals.rules.state import OpenAlert, State

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine, Subject

__all__ = ["Watch"]


# "Last seen" times are written at most this often (in data time) per patient and metric, and
# per home: a reading every second must not cost an fsync every second. The newest time is kept
# in memory as well and judged with, so the throttle never makes an alert early; a crash loses at
# most this much precision of the durable copy.
WRITE_EVERY = timedelta(seconds=10)


class Watch:
    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self.device_patient = {
            d.id: d.patient for s in engine.subjects.values() for d in s.home.devices
        }
        self.watched = {
            (s.patient.id, str(r.measurement))
            for s in engine.subjects.values()
            for r in s.rules
            if isinstance(r, MissingDataRuleConfig)
        }
        self._latest: dict[tuple[str, str], datetime] = {}
        self._written: dict[tuple[str, str], datetime] = {}

    def _fresh(self, key: tuple[str, str], at: datetime) -> bool:
        """Remember ``at``; True when the durable copy is due for a write."""
        if at > self._latest.get(key, at - WRITE_EVERY):
            self._latest[key] = at
        written = self._written.get(key)
        if written is None or at - written >= WRITE_EVERY:
            self._written[key] = at
            return True
        return False

    def _last_seen(self, st: State, patient: str, measurement: str) -> datetime | None:
        durable = st.last_seen(patient, measurement)
        latest = self._latest.get((patient, measurement))
        return max(filter(None, (durable, latest)), default=None)

    # --- inputs -------------------------------------------------------------------------------
    def on_reading(self, st: State, s: Subject, r: Reading) -> list[AlertDecision]:
        out: list[AlertDecision] = []
        now = self.engine.clock.now()  # the receive clock, not the device's stamp
        key = (r.patient, str(r.measurement))
        missed = [
            (rule, current)
            for rule in s.rules
            if isinstance(rule, MissingDataRuleConfig) and rule.measurement == r.measurement
            and (current := st.open_alert(s.patient.id, rule.id)) is not None
        ]
        prev = self._last_seen(st, r.patient, str(r.measurement)) if missed else None
        if key in self.watched and self._fresh(key, now):
            st.seen(r.patient, str(r.measurement), now)
        for rule, current in missed:
            d = self._recovery(
                st, s, rule, current, now, prev, rule.after_minutes,
                "readings have been arriving again", measurement=str(r.measurement),
                observed_at=r.time, source_id=r.reading_id,
            )
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
        return self._gateway_back(st, home, at, prev) + self._judge_home(st, home, at)

    def on_status(self, st: State, status: GatewayStatus) -> list[AlertDecision]:
        home = self._home(status.home)
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
        return self._judge_home(st, home, since)

    def on_heartbeat(
        self, st: State, home_id: str, at: datetime, batteries: dict[str, float]
    ) -> list[AlertDecision]:
        home = self._home(home_id)
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

    # --- judgement ----------------------------------------------------------------------------
    def _judge_home(self, st: State, home: HomeConfig, now: datetime) -> list[AlertDecision]:
        seen = st.home(home.id)
        out: list[AlertDecision] = []
        for s in self.engine.subjects_of(home.id):
            for rule in s.rules:
                d: AlertDecision | None = None
                if isinstance(rule, MissingDataRuleConfig):
                    d = self._missing(st, s, rule, now, seen.first_seen if seen else None)
                elif isinstance(rule, GatewayRuleConfig):
                    d = self._gateway(st, s, rule, now)
                if d is not None:
                    out.append(d)
        return out

    def _missing(
        self,
        st: State,
        s: Subject,
        rule: MissingDataRuleConfig,
        now: datetime,
        baseline: datetime | None,
    ) -> AlertDecision | None:
        if not self._watches(s, rule):
            return None
        last = self._last_seen(st, s.patient.id, str(rule.measurement))
        since = last or baseline or self.engine.started
        silent = now - since >= timedelta(minutes=rule.after_minutes)
        if st.open_alert(s.patient.id, rule.id) is not None:
            return None  # it clears on arrivals (``_recovery``), never on a tick
        if not silent:
            return None
        if rule.window is not None and not rule.window.contains(now.astimezone(s.home.zone).time()):
            return None
        return self.engine.fire(
            st,
            s,
            rule,
            f"missing-{wire.format_time(since)}",
            now,
            time=now,
            measurement=str(rule.measurement),
            observed_at=since,
        )

    def _recovery(
        self,
        st: State,
        s: Subject,
        rule: MissingDataRuleConfig | GatewayRuleConfig,
        current: OpenAlert,
        now: datetime,
        prev: datetime | None,
        silence_minutes: float,
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
        if now - back < timedelta(minutes=rule.clear_after_minutes):
            return None
        minutes = f"{rule.clear_after_minutes:g}"
        return self.engine.resolve(
            st, s, rule, current, f"{why} for {minutes} minutes", time=now, **kw
        )

    def _watches(self, s: Subject, rule: MissingDataRuleConfig) -> bool:
        """Only patients with a device that produces the measurement can miss it."""
        kinds = [d.kind for d in s.home.devices if d.patient == s.patient.id]
        return any(rule.measurement in DEVICE_MEASUREMENTS.get(k, ()) for k in kinds)

    def _gateway(
        self, st: State, s: Subject, rule: GatewayRuleConfig, now: datetime
    ) -> AlertDecision | None:
        seen = st.home(s.home.id)
        alive = max(
            seen.last_alive if seen else self.engine.started,
            self._latest.get(("", s.home.id), self.engine.started),
        )
        offline = seen.offline_since if seen else None
        silent = now - alive >= timedelta(minutes=rule.heartbeat_missed_minutes)
        gone = offline is not None and now - offline >= timedelta(
            minutes=rule.offline_grace_minutes
        )
        if st.open_alert(s.patient.id, rule.id) is not None:
            return None  # it clears on arrivals (``_gateway_back``), never on a tick
        if not (silent or gone):
            return None
        since = offline or alive
        return self.engine.fire(
            st,
            s,
            rule,
            f"gateway-{wire.format_time(since)}",
            now,
            time=now,
            measurement="gateway",
            field="offline" if gone else "silent",
            observed_at=since,
        )

    def _gateway_back(
        self, st: State, home: HomeConfig, at: datetime, prev: datetime | None
    ) -> list[AlertDecision]:
        """The home was heard from at ``at``: an open gateway alert clears once it has been
        heard from for ``clear_after_minutes``."""
        out: list[AlertDecision] = []
        for s in self.engine.subjects_of(home.id):
            for rule in s.rules:
                if not isinstance(rule, GatewayRuleConfig):
                    continue
                current = st.open_alert(s.patient.id, rule.id)
                if current is None:
                    continue
                d = self._recovery(
                    st, s, rule, current, at, prev, rule.heartbeat_missed_minutes,
                    "the home gateway has been back online", measurement="gateway",
                    observed_at=at,
                )
                out += [d] if d is not None else []
        return out

    def _batteries(self, st: State, s: Subject, at: datetime) -> list[AlertDecision]:
        out: list[AlertDecision | None] = []
        levels = st.batteries(s.patient.id)
        for rule in s.rules:
            if not isinstance(rule, BatteryRuleConfig):
                continue
            low = {d: p for d, p in levels.items() if p < rule.below}
            current = st.open_alert(s.patient.id, rule.id)
            clear_at = rule.clear_at if rule.clear_at is not None else rule.below
            if current is None and low:
                device, percent = min(low.items(), key=lambda kv: kv[1])
                out.append(
                    self.engine.fire(
                        st,
                        s,
                        rule,
                        f"battery-{device}-{wire.format_time(at)}",
                        at,
                        time=at,
                        measurement="battery",
                        field=f"{device} battery",
                        value=percent,
                        unit="%",
                        observed_at=at,
                    )
                )
            elif current is not None and all(p >= clear_at for p in levels.values()):
                out.append(
                    self.engine.resolve(
                        st,
                        s,
                        rule,
                        current,
                        "batteries charged",
                        time=at,
                        measurement="battery",
                        observed_at=at,
                    )
                )
        return [d for d in out if d is not None]

    def _home(self, home_id: str) -> HomeConfig | None:
        return next((s.home for s in self.engine.subjects.values() if s.home.id == home_id), None)
