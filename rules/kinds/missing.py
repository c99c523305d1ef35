"""``missing``: no reading of ``measurement`` for ``after_minutes`` (checked while ``window`` is
open), judged by the receive clock on the watch's schedule (``rules/watch.py``). It clears only
once readings have flowed again for ``clear_after_minutes``."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from homevitals.rules.kinds.base import RuleModel
from homevitals.vocab import wire
from homevitals.vocab.config_base import DEVICE_MEASUREMENTS, TimeWindow
from homevitals.vocab.readings import Measurement

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import HomeSeen, State
    from homevitals.vocab.readings import AlertDecision, Reading

__all__ = ["MODEL", "MissingDataRuleConfig"]


class MissingDataRuleConfig(RuleModel):
    """No reading of ``measurement`` for ``after_minutes`` (checked while ``window`` is open)."""

    rank = 3

    kind: Literal["missing"]
    measurement: Measurement
    after_minutes: float = Field(gt=0)
    window: TimeWindow | None = None
    clear_after_minutes: float = Field(
        10.0, ge=0, description="readings must have flowed again this long before the all clear"
    )

    def watches(self) -> Measurement | None:
        return self.measurement

    def on_arrival(
        self, engine: RuleEngine, st: State, s: Subject, r: Reading, now: datetime,
        prev: datetime | None,
    ) -> AlertDecision | None:
        if r.measurement != self.measurement:
            return None
        current = st.open_alert(s.patient.id, self.id)
        if current is None:
            return None
        return engine.watch.recovery(
            st, s, self, current, now, prev, self.after_minutes, self.clear_after_minutes,
            "readings have been arriving again", measurement=str(r.measurement),
            observed_at=r.time, source_id=r.reading_id,
        )

    def on_clock(
        self, engine: RuleEngine, st: State, s: Subject, now: datetime, seen: HomeSeen | None
    ) -> AlertDecision | None:
        if not self._watched(s):
            return None
        last = engine.watch.last_seen(st, s.patient.id, str(self.measurement))
        since = last or (seen.first_seen if seen else None) or engine.started
        silent = now - since >= timedelta(minutes=self.after_minutes)
        if st.open_alert(s.patient.id, self.id) is not None:
            return None  # it clears on arrivals (``on_arrival``), never on a tick
        if not silent:
            return None
        if self.window is not None and not self.window.contains(now.astimezone(s.home.zone).time()):
            return None
        return engine.fire(
            st, s, self, f"missing-{wire.format_time(since)}", now, time=now,
            measurement=str(self.measurement), observed_at=since,
        )

    def next_check(
        self, engine: RuleEngine, st: State, s: Subject, seen: HomeSeen | None
    ) -> datetime | None:
        if not self._watched(s) or st.open_alert(s.patient.id, self.id) is not None:
            return None
        last = engine.watch.last_seen(st, s.patient.id, str(self.measurement))
        since = last or (seen.first_seen if seen else None) or engine.started
        due = since + timedelta(minutes=self.after_minutes)
        return due if self.window is None else _window_open(self.window, due, s.home.zone)

    def _watched(self, s: Subject) -> bool:
        """Only patients with a device that produces the measurement can miss it."""
        kinds = [d.kind for d in s.home.devices if d.patient == s.patient.id]
        return any(self.measurement in DEVICE_MEASUREMENTS.get(k, ()) for k in kinds)


def _window_open(window: TimeWindow, t: datetime, zone: tzinfo) -> datetime:
    """``t`` if the window is open then, else the window's next opening (local wall time)."""
    local = t.astimezone(zone)
    if window.contains(local.time()):
        return t
    day = local.date() if local.time() < window.start else local.date() + timedelta(days=1)
    return datetime.combine(day, window.start, tzinfo=zone).astimezone(t.tzinfo)


MODEL = MissingDataRuleConfig
