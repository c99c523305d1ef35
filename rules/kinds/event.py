"""``event``: something a device reports happening, a call-button press. Presses within
``fold_minutes`` of the open alert join it; a later one is a new call for help."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from homevitals.rules.kinds.base import RuleModel, episode_of
from homevitals.vocab.readings import EventKind, Severity

if TYPE_CHECKING:
    from homevitals.rules.engine import RuleEngine
    from homevitals.rules.episodes import Subject
    from homevitals.rules.state import OpenAlert, State
    from homevitals.vocab.readings import AlertDecision, Event

__all__ = ["MODEL", "EventRuleConfig"]


class EventRuleConfig(RuleModel):
    rank = 1

    kind: Literal["event"]
    event: EventKind
    fold_minutes: float = Field(
        10.0, ge=0, description="presses within this time join the open alert"
    )

    @model_validator(mode="after")
    def _call_is_critical(self) -> EventRuleConfig:
        # Issue 6: a call for help is always critical and immediate, whatever the config says.
        if self.event == EventKind.CALL_BUTTON and self.severity != Severity.CRITICAL:
            raise ValueError(f"rule {self.id}: the call button is always severity critical")
        return self

    def on_event(self, engine: RuleEngine, st: State, s: Subject, e: Event) -> AlertDecision | None:
        if self.event != e.kind:
            return None
        current = st.open_alert(e.patient, self.id)
        fold = timedelta(minutes=self.fold_minutes)
        if current is not None and timedelta(0) <= e.time - current.opened_at < fold:
            engine.counts["folded"] += 1
            return None  # the same call for help, pressed again: the open alert covers it
        if current is not None:
            self._forget(st, s, current)
        return engine.fire(
            st, s, self, e.event_id, e.time, time=e.received_at, measurement="event",
            field=str(e.kind), observed_at=e.time, source_id=e.event_id,
        )

    def _forget(self, st: State, s: Subject, current: OpenAlert) -> None:
        """A press after the fold time is a new call for help, a new alert: an event has no
        all clear, so its old episode ends here, silently (as it always has)."""
        st.close(s.patient.id, self.id)
        if not st.holding(s.patient.id, current.alert_id):
            st.close_episode(s.patient.id, episode_of(self))


MODEL = EventRuleConfig
