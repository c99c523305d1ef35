"""``gateway``: the home gateway is offline (its last will, after ``offline_grace_minutes``) or
has missed its heartbeats (``heartbeat_missed_minutes``). It clears once the home has been heard
from again for ``clear_after_minutes``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from homevitals.rules.kinds.base import RuleModel
from homevitals.vocab import wire

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import HomeSeen, State
    from homevitals.vocab.readings import AlertDecision

__all__ = ["MODEL", "GatewayRuleConfig"]


class GatewayRuleConfig(RuleModel):
    """The home gateway is offline (its last will) or has missed its heartbeats."""

    rank = 4

    kind: Literal["gateway"]
    offline_grace_minutes: float = Field(
        5.0, ge=0, description="an 'offline' status must last this long (a reboot is not news)"
    )
    heartbeat_missed_minutes: float = Field(10.0, gt=0)
    clear_after_minutes: float = Field(
        10.0, ge=0, description="heard from again this long before the all clear"
    )

    def on_clock(
        self, engine: RuleEngine, st: State, s: Subject, now: datetime, seen: HomeSeen | None
    ) -> AlertDecision | None:
        alive = _alive(engine, s, seen)
        offline = seen.offline_since if seen else None
        silent = now - alive >= timedelta(minutes=self.heartbeat_missed_minutes)
        gone = offline is not None and now - offline >= timedelta(
            minutes=self.offline_grace_minutes
        )
        if st.open_alert(s.patient.id, self.id) is not None:
            return None  # it clears on arrivals (``on_home_heard``), never on a tick
        if not (silent or gone):
            return None
        since = offline or alive
        return engine.fire(
            st, s, self, f"gateway-{wire.format_time(since)}", now, time=now,
            measurement="gateway", field="offline" if gone else "silent", observed_at=since,
        )

    def next_check(
        self, engine: RuleEngine, st: State, s: Subject, seen: HomeSeen | None
    ) -> datetime | None:
        if st.open_alert(s.patient.id, self.id) is not None:
            return None
        due = _alive(engine, s, seen) + timedelta(minutes=self.heartbeat_missed_minutes)
        if seen is not None and seen.offline_since is not None:
            due = min(due, seen.offline_since + timedelta(minutes=self.offline_grace_minutes))
        return due

    def on_home_heard(
        self, engine: RuleEngine, st: State, s: Subject, at: datetime, prev: datetime | None
    ) -> AlertDecision | None:
        current = st.open_alert(s.patient.id, self.id)
        if current is None:
            return None
        return engine.watch.recovery(
            st, s, self, current, at, prev, self.heartbeat_missed_minutes, self.clear_after_minutes,
            "the home gateway has been back online", measurement="gateway", observed_at=at,
        )


def _alive(engine: RuleEngine, s: Subject, seen: HomeSeen | None) -> datetime:
    """The last moment the home was heard from (the start of the engine: never yet)."""
    return max(
        seen.last_alive if seen else engine.started,
        engine.watch.latest_alive(s.home.id) or engine.started,
    )


MODEL = GatewayRuleConfig
