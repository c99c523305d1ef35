"""The ``event`` kind (rules/kinds/event.py): a call-button press, always critical; presses
within the fold time join the open alert."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rules_helpers import T0, config, engine

from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import Event, EventKind


def test_call_button_is_always_critical() -> None:
    with pytest.raises(ConfigError, match="the call button is always severity critical"):
        config([{"id": "cb", "kind": "event", "event": "call_button", "severity": "high",
                 "reason": "help"}])


def _press(minute: int) -> Event:
    t = T0 + timedelta(minutes=minute)
    return Event(f"press-{minute}", "home-1", "ana", "button-1", EventKind.CALL_BUTTON, t, t)


def test_presses_within_the_fold_time_join_the_open_alert_and_a_later_one_is_new(
    tmp_path: Path,
) -> None:
    rule = {"id": "call-button", "kind": "event", "event": "call_button", "severity": "critical",
            "reason": "Call for help", "fold_minutes": 10}
    e = engine(tmp_path, config([rule]), now=T0)
    [first] = e.on_event(_press(0))
    assert (first.state, first.severity, first.field, first.source_id) == (
        "firing", "critical", "call_button", "press-0")
    assert e.on_event(_press(4)) == [] and e.on_event(_press(9)) == []  # the same call
    [again] = e.on_event(_press(25))  # a new call for help: a new alert, not a reminder
    assert again.state == "firing" and again.alert_id != first.alert_id
