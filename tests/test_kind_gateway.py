"""The ``gateway`` kind (rules/kinds/gateway.py): the home gateway offline by its last will or
silent, after a grace time; cleared once it has been heard from again for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rules_helpers import config, engine, states

from homevitals.vocab.config import parse_config
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.readings import GatewayState, GatewayStatus


def test_gateway_offline_by_last_will_and_by_silence(tmp_path: Path) -> None:
    rule = {"id": "gateway-offline", "kind": "gateway", "offline_grace_minutes": 5,
            "heartbeat_missed_minutes": 10, "severity": "medium", "reason": "Gateway offline"}
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, config([rule]), now=t0)
    clock: Any = e.clock
    e.on_heartbeat("home-1", t0, {})
    e.on_status(GatewayStatus("home-1", GatewayState.OFFLINE, t0 - timedelta(days=2)))
    assert e.tick(t0 + timedelta(minutes=4)) == []  # a reboot is not news
    [d] = e.tick(t0 + timedelta(minutes=6))
    assert (d.state, d.measurement, d.observed_at) == ("firing", "gateway", t0)
    clock.t = t0 + timedelta(minutes=20)
    assert e.on_status(GatewayStatus("home-1", GatewayState.ONLINE, clock.t)) == []
    clock.t += timedelta(minutes=5)
    assert e.on_heartbeat("home-1", clock.t, {}) == []  # back 5 minutes: not yet all clear
    assert e.tick(t0 + timedelta(minutes=30)) == []  # the all clear needs a message, not a tick
    clock.t += timedelta(minutes=5)
    [back] = e.on_heartbeat("home-1", clock.t, {})  # heard from for 10 minutes
    assert back.state == "resolved"
    # Silence: heartbeats stop without a will (the broker has not noticed yet).
    clock.t = t0 + timedelta(minutes=31)
    e.on_heartbeat("home-1", clock.t, {})
    assert e.tick(t0 + timedelta(minutes=40)) == []
    assert states(e.tick(t0 + timedelta(minutes=42))) == [("firing", "gateway-offline")]

def test_an_error_in_a_gateway_rule_names_the_rule() -> None:
    text = "rules:\n  definitions:\n    - {id: gw, kind: gateway, severity: high, reason: x,\n" \
           "       offline_grace_minutes: -1}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "r.yaml")
    assert err.value.problems == ["r.yaml:4: rules.definitions.0.offline_grace_minutes:"
                                  " Input should be greater than or equal to 0"]
