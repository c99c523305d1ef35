"""The rule engine as a whole, through its public entry points, with its real SQLite state: what
holds for every rule kind (state across restarts, the shipped rule set). Each kind's own judgement
is tested beside it, in tests/test_kind_<kind>.py; the daemon-level stories with Mosquitto are in
tests/test_alerts_stories.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from rules_helpers import NIGHT_LOW, ROOT, config, engine, glucose, states

from homevitals.vocab.config import RulesConfig


def test_state_survives_a_restart_without_realerting_or_forgetting(tmp_path: Path) -> None:
    rule = {**NIGHT_LOW, "window": None, "n_of_m": {"n": 2, "m": 3}}
    cfg = config([rule])
    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    e = engine(tmp_path, cfg)
    assert e.on_reading(glucose(t0, 3.5)) == []
    e.outbox.close()
    e = engine(tmp_path, cfg)  # restarted: remembers the first low of the window
    [d] = e.on_reading(glucose(t0 + timedelta(minutes=5), 3.4))
    e.outbox.close()
    e = engine(tmp_path, cfg)  # restarted again: the alert is still open, not raised again
    assert e.on_reading(glucose(t0 + timedelta(minutes=10), 3.3)) == []
    assert e.open_alert("ana", "night-low") is not None
    assert states(e.on_reading(glucose(t0 + timedelta(minutes=15), 5.0))) == [
        ("resolved", "night-low")]
    assert len(e.outbox) == 2  # exactly the firing and the resolved decision, once each

def test_shipped_defaults_are_valid_config() -> None:
    data = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())
    rules = RulesConfig.model_validate(data).definitions
    ids = {r.id for r in rules}
    assert {"hypo-level-1", "hypo-level-2", "hypertensive-crisis-systolic", "spo2-low",
            "heart-rate-low", "heart-rate-high", "cgm-signal-lost-night", "gateway-offline",
            "device-battery-low", "call-button"} <= ids
    by_id = {r.id: r for r in rules}
    assert by_id["hypo-level-1"].below == 3.9 and by_id["hypo-level-2"].below == 3.0  # type: ignore[union-attr]
    assert by_id["spo2-low"].below == 90  # type: ignore[union-attr]
    text = (ROOT / "configs/rules-defaults.yaml").read_text()
    for source in ("ADA Standards of Care", "ACC/AHA", "BTS guideline", "NEWS2"):
        assert source in text
