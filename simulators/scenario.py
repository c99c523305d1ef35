"""Scenario files: who lives where, what their devices measure, what goes wrong, and when.

A scenario is YAML (``docs/scenarios.md``). Its ``homes``, ``rules`` and ``alerts`` sections are
exactly the configuration's sections (``homevitals.vocab.config``), with three additions
per patient:
a generator ``profile``, explicit ``readings`` and call-button ``presses``. Around them: the
start, duration and seed, ``faults`` (link drops, corrupted values, a gateway offline or
killed, the broker down or delivering twice), scripted care-team ``replies`` and optional
``expect``-ations. Times resolve to UTC instants (``LoadedScenario.resolve``).

Loading follows ``homevitals.vocab.config.parse_config``: ``yaml.safe_load`` (nothing in
the file is ever
constructed as code), pydantic models with ``extra="forbid"``, and every error names the file, the
line and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator

from homevitals.simulators.scenario_profiles import (
    DAY_AT,
    At,
    Duration,
    ProfileSpec,
    parse_duration,
)
from homevitals.vocab import config as _config_module

# The line map and error wording of the configuration loader, reused so that scenario errors
# read exactly like configuration errors.
from homevitals.vocab.config import (
    AlertsConfig,
    Config,
    HomeConfig,
    PatientConfig,
    RulesConfig,
    _describe,
    _lines,
    _Model,
)
from homevitals.vocab.errors import ConfigError

__all__ = [
    "SPECIAL_VALUES",
    "Fault",
    "LoadedScenario",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "shipped_scenarios",
]


class ScenarioError(ConfigError):
    """The scenario file is invalid; ``problems`` are ``file:line: key: problem``."""




# The IEEE 11073-20601 SFLOAT special values a device can send instead of a number; a scenario
# names them (any case; "+INF", "-INF" too) and the timeline sends exactly those bytes.
SPECIAL_VALUES = ("NaN", "NRes", "+INFINITY", "-INFINITY")
_SPECIAL_ALIASES = {"nan": "NaN", "nres": "NRes", "+infinity": "+INFINITY", "+inf": "+INFINITY",
                    "infinity": "+INFINITY", "inf": "+INFINITY", "-infinity": "-INFINITY",
                    "-inf": "-INFINITY"}


def _special_name(v: object) -> object:
    if isinstance(v, str):
        return _SPECIAL_ALIASES.get(v.strip().lower(), v)
    return v


# A finite number, or a special by name (YAML's .nan/.inf are refused: which special is meant?).
Value = Annotated[
    Annotated[float, Field(allow_inf_nan=False)]
    | Literal["NaN", "NRes", "+INFINITY", "-INFINITY"],
    BeforeValidator(_special_name),
]


class ReadingSpec(_Model):
    """One explicit measurement; which values it needs depends on the device's kind."""

    at: At
    device: str
    glucose: Value | None = None
    systolic: Value | None = None
    diastolic: Value | None = None
    mean_arterial: Value | None = None
    pulse: Value | None = None
    heart_rate: float | None = None  # 0x2A37 is a plain integer: no special values
    spo2: Value | None = None
    flags: list[str] = []


class PressSpec(_Model):
    at: At
    device: str


class ScenarioPatient(PatientConfig):
    profile: ProfileSpec | None = None
    readings: list[ReadingSpec] = []
    presses: list[PressSpec] = []


class ScenarioHome(HomeConfig):
    patients: list[ScenarioPatient] = Field(min_length=1)  # type: ignore[assignment]


class Fault(_Model):
    """Something that goes wrong: see docs/scenarios.md "Faults"."""

    kind: Literal["link_drop", "corrupt", "gateway_offline", "broker_down", "gateway_crash",
                  "duplicate_delivery"]
    at: At
    for_: Duration | None = Field(None, alias="for")
    home: str | None = None
    device: str | None = None
    backfill: bool = Field(True, description="link_drop: values wait in the device, else lost")
    mode: Literal["truncate", "garbage"] = "truncate"
    count: int = Field(1, ge=1, description="corrupt: how many values in a row")

    @model_validator(mode="after")
    def _needs(self) -> Fault:
        needs_for = ("link_drop", "gateway_offline", "broker_down", "duplicate_delivery")
        if self.kind in needs_for and self.for_ is None:
            raise ValueError(f"a {self.kind} fault needs 'for' (how long, e.g. 1h)")
        if self.kind in ("link_drop", "corrupt") and self.device is None:
            raise ValueError(f"a {self.kind} fault needs 'device'")
        return self


class Reply(_Model):
    at: At
    from_: str = Field(alias="from")
    text: str = Field(min_length=1, max_length=1600)


class Expectation(_Model):
    """What the scenario author expects, checked and reported by ``replay``: an SMS (``to``,
    ``rule``, ``kind``, ``at``, ``within``), or a device's stored readings (``device``,
    ``readings``: how many, ``every``: the exact spacing of their time stamps)."""

    to: str | None = None
    rule: str | None = None
    kind: str = "firing"
    at: At | None = None
    within: Duration = timedelta(minutes=5)
    device: str | None = None
    readings: int | None = Field(None, ge=0)
    every: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        if self.device is not None:
            if self.readings is None or self.to is not None or self.rule is not None:
                raise ValueError("a readings expectation has 'device' and 'readings' (and"
                                 " optionally 'every'), no 'to' or 'rule'")
        elif self.to is None or self.rule is None or self.at is None:
            raise ValueError("an SMS expectation needs 'to', 'rule' and 'at'")
        return self


class Scenario(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    start: At
    duration: Duration
    seed: int = 0
    tick: Duration = Field(timedelta(minutes=5), description="scheduler ticks and heartbeats")
    homes: list[ScenarioHome] = Field(min_length=1)
    rules: RulesConfig = RulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    faults: list[Fault] = []
    replies: list[Reply] = []
    expect: list[Expectation] | None = None

    @model_validator(mode="after")
    def _sane(self) -> Scenario:
        if not timedelta(minutes=1) <= self.duration <= timedelta(days=92):
            raise ValueError("duration must be between 1m and 92d")
        if not timedelta(seconds=30) <= self.tick <= timedelta(hours=1):
            raise ValueError("tick must be between 30s and 1h")
        return self


# The configuration models name their field types as strings (``from __future__ import
# annotations``); subclasses defined here resolve them in the configuration module's namespace.
for _m in (ScenarioPatient, ScenarioHome, Scenario):
    _m.model_rebuild(_types_namespace=vars(_config_module))


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with what it takes to name a line in later errors."""

    model: Scenario
    config: Config
    source: str
    lines: dict[tuple[Any, ...], int]

    def problem(self, loc: tuple[Any, ...], msg: str) -> str:
        return _describe(self.source, {"loc": loc, "msg": msg, "type": "value_error"}, self.lines)

    @property
    def zone(self) -> ZoneInfo:
        """The scenario's own clock zone: the first home's."""
        return self.model.homes[0].zone

    @property
    def start(self) -> datetime:
        """The first instant, in UTC (all simulated-time arithmetic is done in UTC)."""
        return self.resolve(self.model.start, self.zone)

    @property
    def end(self) -> datetime:
        return self.start + self.model.duration  # elapsed time: a 25-hour night stays 25 hours

    def resolve(self, at: str, zone: ZoneInfo) -> datetime:
        """'day N HH:MM' (day 1 is the start date) or 'YYYY-MM-DD HH:MM', local to ``zone``, as
        a UTC instant. Without an offset a repeated local time is its first occurrence and a
        time in a spring-forward gap is read with the offset before the change; an explicit
        offset ('+01:00') picks the occurrence and must be one ``zone`` has at that time."""
        m = DAY_AT.match(at)
        if m:
            day = self.start.astimezone(zone).date() + timedelta(days=int(m.group(1)) - 1)
            local = datetime.combine(day, time.fromisoformat(m.group(2)))
            offset = m.group(3)
            parsed = local if offset is None else datetime.fromisoformat(f"{local}{offset}")
        else:
            parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=zone).astimezone(UTC)
        wall = parsed.replace(tzinfo=None)
        offsets = {wall.replace(tzinfo=zone, fold=f).utcoffset() for f in (0, 1)}
        if parsed.utcoffset() not in offsets:
            have = " or ".join(sorted(_offset(o) for o in offsets))
            raise ScenarioError([f"{self.source}: {at!r}: {zone.key} is at UTC{have} at"
                                 f" {wall:%Y-%m-%d %H:%M}, not UTC{_offset(parsed.utcoffset())}"])
        return parsed.astimezone(UTC)


def _offset(o: timedelta | None) -> str:
    minutes = int((o or timedelta(0)) / timedelta(minutes=1))
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _to_config(s: Scenario) -> dict[str, Any]:
    homes = [
        HomeConfig(
            id=h.id,
            timezone=h.timezone,
            devices=h.devices,
            patients=[PatientConfig(id=p.id, name=p.name, care_team=p.care_team,
                                    phone=p.phone, language=p.language)
                      for p in h.patients],
        )
        for h in s.homes
    ]
    return {"homes": homes, "rules": s.rules, "alerts": s.alerts}


def parse_scenario(text: str, source: str = "<scenario>") -> LoadedScenario:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError([f"{source}{line}: not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}: the top level must be a mapping (name, start, homes ...)"])
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        model = Scenario.model_validate(data)
        config = Config.model_validate(_to_config(model))
    except ValidationError as exc:
        raise ScenarioError([_describe(source, e, lines) for e in exc.errors()]) from exc
    if model.start.startswith("day "):
        raise ScenarioError([f"{source}:{lines.get(('start',), '?')}: start: must be a date"
                             " such as '2026-11-20 08:00', not 'day N'"])
    return LoadedScenario(model, config, source, lines)


def load_scenario(path: str | Path) -> LoadedScenario:
    """A scenario file by path, or a shipped one by name (``night-low``)."""
    p = Path(path)
    if not p.exists() and not p.suffix and str(path) in shipped_scenarios():
        ref = resources.files("homevitals.simulators").joinpath(f"scenarios/{path}.yaml")
        return parse_scenario(ref.read_text("utf-8"), f"scenarios/{path}.yaml")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        known = ", ".join(shipped_scenarios())
        raise ScenarioError([f"{p}: cannot read: {exc.strerror} (shipped scenarios: {known})"]
                            ) from exc
    return parse_scenario(text, str(p))


def shipped_scenarios() -> list[str]:
    folder = resources.files("homevitals.simulators").joinpath("scenarios")
    return sorted(f.name.removesuffix(".yaml") for f in folder.iterdir()
                  if f.name.endswith(".yaml"))
