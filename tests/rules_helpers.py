"""What the rule tests share: a configured home (``config``), a rule engine on its real SQLite
state (``engine``), and readings arriving at it (``arrive``, ``glucose``, ``cgm``, ``story``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from homevitals.infra.outbox import DurableQueue
from homevitals.rules.engine import RuleEngine
from homevitals.vocab.config import Config, parse_config
from homevitals.vocab.readings import AlertDecision, FieldValue, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

ROOT = Path(__file__).parent.parent
DEFAULTS = yaml.safe_load((ROOT / "configs/rules-defaults.yaml").read_text())["definitions"]
GLUCOSE = [r for r in DEFAULTS if r.get("episode") == "glucose-low"]
CRISIS = [r for r in DEFAULTS if r.get("episode") == "hypertensive-crisis"]
T0 = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)  # 02:30 in Ljubljana
_ids = itertools.count(1)
_cgm_ids = itertools.count(1)


def config(rules: list[dict[str, Any]], tz: str = "Europe/Ljubljana", **patient: Any) -> Config:
    data = {
        "homes": [{
            "id": "home-1", "timezone": tz,
            "patients": [{
                "id": "ana", "name": "Ana Novak",
                "care_team": [{"name": "Dr. K", "role": "family_doctor", "phone": "+15550100001"}],
                **patient,
            }],
            "devices": [
                {"id": "cgm-1", "kind": "cgm", "patient": "ana"},
                {"id": "bp-1", "kind": "blood_pressure", "patient": "ana"},
                {"id": "ox-1", "kind": "pulse_oximeter", "patient": "ana"},
                {"id": "hr-1", "kind": "heart_rate", "patient": "ana"},
                {"id": "meter-1", "kind": "glucose_meter", "patient": "ana"},
            ],
        }],
        "rules": {"definitions": rules},
    }
    return parse_config(yaml.safe_dump(data))

class Clock:
    """The rules daemon's clock: what a message's arrival is judged by (``e.clock.t = ...``)."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t

def engine(tmp: Path, cfg: Config, now: datetime | None = None) -> RuleEngine:
    q = DurableQueue(tmp / "rules.sqlite")
    clock = Clock(now or datetime(2026, 11, 21, tzinfo=UTC))
    return RuleEngine(list(cfg.rules.definitions), cfg.homes, q, Topics(), clock)

def arrive(e: RuleEngine, r: Reading, at: datetime | None = None) -> list[Any]:
    """``r`` arrives at the rules at ``at`` (default: its gateway receive time)."""
    e.clock.t = at or r.received_at  # type: ignore[attr-defined]
    return e.on_reading(r)

def reading(t: datetime, measurement: str = "glucose", **fields: tuple[float, str]) -> Reading:
    return Reading(
        reading_id=f"r{next(_ids)}", home="home-1", patient="ana", device="cgm-1",
        measurement=measurement,  # type: ignore[arg-type]
        fields={k: FieldValue(v, Unit(u)) for k, (v, u) in fields.items()},
        time=t, received_at=t,
    )

def glucose(t: datetime, v: float) -> Reading:
    return reading(t, glucose=(v, "mmol/L"))

NIGHT_LOW = {
    "id": "night-low", "kind": "threshold", "measurement": "glucose", "field": "glucose",
    "below": 3.9, "clear_at": 4.4, "unit": "mmol/L", "window": {"start": "22:00", "end": "07:00"},
    "severity": "high", "reason": "Night-time low glucose",
}

def states(decisions: list[Any]) -> list[tuple[str, str]]:
    return [(str(d.state), d.rule) for d in decisions]

def cgm(t: datetime, v: float, device: str = "cgm-1", stamped: datetime | None = None) -> Reading:
    """A CGM value measured (and received by the gateway) at ``t``; ``stamped``: the device's
    own time stamp, when its clock is off."""
    return Reading(
        reading_id=f"e{next(_cgm_ids)}", home="home-1", patient="ana", device=device,
        measurement="glucose",  # type: ignore[arg-type]
        fields={"glucose": FieldValue(v, Unit("mmol/L"))},
        time=stamped or t, received_at=t,
    )

def story(e: Any, values: list[float], start: datetime = T0) -> list[tuple[int, AlertDecision]]:
    """CGM values every 5 minutes from ``start``: (minute, decision) for every decision."""
    out = []
    for i, v in enumerate(values):
        t = start + timedelta(minutes=5 * i)
        out += [(5 * i, d) for d in arrive(e, cgm(t, v))]
    return out
