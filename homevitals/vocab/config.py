"""Configuration models (pydantic), one model per section, and the loader.

The root model (``Config``) assembles the sections, and every name is importable from here. A
stage's own section may live beside the stage (``rules/config.py`` with the rule kinds of
``rules/kinds/``, ``alerts/config.py``, ``ingest/config.py``, ``gateway/config.py``,
``console/config.py``); the homes, patients and devices are in
``homevitals/vocab/config_homes.py``; all are built on the shared base in
``homevitals/vocab/config_base.py``.

Every error names the file, the line, the key and the problem. Secrets never live in the config
text: a section names an environment variable or a file that holds them (``*_env`` / ``*_file``).
The program never rewrites a user's config file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from homevitals.alerts.config import (
    AlertsConfig,
    RouteConfig,
    TwilioConfig,
    WebhookConfig,
)
from homevitals.console.config import ConsoleConfig
from homevitals.gateway.config import GatewayConfig, HomeAssistantConfig
from homevitals.ingest.config import AmqpSourceConfig, IngestConfig, StoreConfig, StoreKind
from homevitals.rules.config import RulesConfig
from homevitals.rules.kinds import KINDS, RuleConfig, effective_rule, episode_of
from homevitals.vocab.config_base import (
    DEVICE_MEASUREMENTS,
    DeviceKind,
    MetricsConfig,
    Model,
    MqttLogin,
    RuleOverride,
    TimeWindow,
)
from homevitals.vocab.config_homes import (
    CareRole,
    DeviceConfig,
    HomeConfig,
    PatientConfig,
    Quirk,
)
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.topics import DEFAULT_PREFIX

_Model = Model  # the name simulators/scenario.py builds its own sections on

__all__ = [
    "AlertsConfig",
    "AmqpSourceConfig",
    "DEVICE_MEASUREMENTS",
    "KINDS",
    "RuleConfig",
    "TimeWindow",
    "CareRole",
    "Config",
    "ConsoleConfig",
    "DeviceConfig",
    "DeviceKind",
    "RouteConfig",
    "RuleOverride",
    "WebhookConfig",
    "effective_rule",
    "episode_of",
    "GatewayConfig",
    "HomeAssistantConfig",
    "Quirk",
    "HomeConfig",
    "IngestConfig",
    "MetricsConfig",
    "MqttConfig",
    "MqttLogin",
    "PatientConfig",
    "RulesConfig",
    "StoreConfig",
    "StoreKind",
    "TwilioConfig",
    "load_config",
    "parse_config",
    "read_secret",
]

def read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """A secret from a file (preferred: systemd credentials) or an environment variable."""
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"{what}: cannot read secret file {file}: {exc.strerror}"]) from exc
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError([f"{what}: environment variable {env} is not set"])
        return value
    return None


class TlsConfig(Model):
    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = Field(False, description="skip host name verification (testing only)")


class MqttConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    # The cluster profile (docs/cluster.md): the nodes of a broker cluster, tried in turn, the
    # next one after a lost connection; empty: host and port alone.
    brokers: list[str] = Field([], description="host:port of each broker node (a cluster)")
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = DEFAULT_PREFIX
    keepalive: int = Field(60, ge=5, le=3600)
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls: TlsConfig = TlsConfig()

    @field_validator("brokers")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        for item in v:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"broker {item!r} is not host:port, e.g. 10.0.0.11:1883")
        return v

    def addresses(self) -> list[tuple[str, int]]:
        """Where to connect, in order: ``brokers``, or ``host``:``port`` alone."""
        if not self.brokers:
            return [(self.host, self.port)]
        return [(h.strip("[]"), int(p)) for h, _, p in (b.rpartition(":") for b in self.brokers)]


Loc = tuple[str | int, ...]


class CrossCheckError(ValueError):
    """Problems that involve several sections, each with the place in the file it points at."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        self.problems = problems


class Config(Model):
    mqtt: MqttConfig = MqttConfig()
    store: StoreConfig = StoreConfig()
    homes: list[HomeConfig] = []
    gateway: GatewayConfig | None = None
    ingest: IngestConfig = IngestConfig()
    rules: RulesConfig = RulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    console: ConsoleConfig = ConsoleConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        problems = list(self._problems())
        if problems:
            raise CrossCheckError(problems)
        return self

    def _problems(self) -> Iterator[tuple[Loc, str]]:
        homes = [h.id for h in self.homes]
        if len(set(homes)) != len(homes):
            yield ("homes",), "home ids must be unique"
        patients = [p.id for h in self.homes for p in h.patients]
        if len(set(patients)) != len(patients):
            yield ("homes",), "patient ids must be unique across homes"
        if self.gateway is not None and self.gateway.home not in homes:
            yield (("gateway", "home"), f"{self.gateway.home!r} is not one of the homes"
                   f" ({', '.join(homes) or 'none configured'})")
        if self.alerts.notifier == "twilio" and self.alerts.twilio is None:
            yield ("alerts", "notifier"), "twilio needs the alerts.twilio section, which is missing"
        produced = {m for h in self.homes for d in h.devices for m in DEVICE_MEASUREMENTS[d.kind]}
        yield from self._override_problems()
        yield from self._cluster_problems()
        for i, rule in enumerate(self.rules.definitions):
            at: Loc = ("rules", "definitions", i)
            problems = rule.problems(produced if self.homes else None)
            yield from (((*at, key), msg) for key, msg in problems)

    def _cluster_problems(self) -> Iterator[tuple[Loc, str]]:
        """RabbitMQ's MQTT plugin turns each '/' of a topic into '.' in the routing key and leaves
        a '.' as it is (rabbit_mqtt_util:mqtt2amqp), so in the cluster profile an id with a '.'
        would become two topic levels: bound to no queue, and dropped (docs/cluster.md)."""
        if "amqp" not in (self.ingest.source, self.rules.source) and not self.mqtt.brokers:
            return
        why = "no '.' in the cluster profile (RabbitMQ routing keys separate topic levels by '.')"
        if "." in self.mqtt.topic_prefix:
            yield ("mqtt", "topic_prefix"), f"{self.mqtt.topic_prefix!r}: {why}"
        for hi, h in enumerate(self.homes):
            named: list[tuple[Loc, str]] = [(("homes", hi, "id"), h.id)]
            named += [(("homes", hi, "patients", i, "id"), p.id) for i, p in enumerate(h.patients)]
            named += [(("homes", hi, "devices", i, "id"), d.id) for i, d in enumerate(h.devices)]
            yield from ((at, f"{ident!r}: {why}") for at, ident in named if "." in ident)

    def _override_problems(self) -> Iterator[tuple[Loc, str]]:
        rules = {r.id: r for r in self.rules.definitions}
        for hi, h in enumerate(self.homes):
            for pi, p in enumerate(h.patients):
                for rule_id, override in p.rule_overrides.items():
                    at = ("homes", hi, "patients", pi, "rule_overrides", rule_id)
                    if rule_id not in rules:
                        yield at, f"patient {p.id}: rule_overrides names unknown rule {rule_id!r}"
                        continue
                    try:
                        effective_rule(rules[rule_id], override)
                    except ValueError as exc:
                        yield at, f"patient {p.id}: {exc}"

    def mqtt_for(self, daemon: str) -> MqttConfig:
        """The broker settings of ``daemon`` (gateway, ingest, rules, alerts): ``mqtt`` with the
        user and password of the daemon's own ``mqtt`` section when it has one."""
        section = self.gateway if daemon == "gateway" else getattr(self, daemon)
        login: MqttLogin | None = getattr(section, "mqtt", None)
        if login is None:
            return self.mqtt
        return self.mqtt.model_copy(update=login.model_dump())

    def home(self, home_id: str) -> HomeConfig:
        for h in self.homes:
            if h.id == home_id:
                return h
        raise KeyError(home_id)

    def patient(self, patient_id: str) -> tuple[HomeConfig, PatientConfig]:
        for h in self.homes:
            for p in h.patients:
                if p.id == patient_id:
                    return h, p
        raise KeyError(patient_id)


# --- loading with file / line / key in every error ---------------------------------------------


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[(*path, k)] = key.start_mark.line + 1
            _lines(value, (*path, k), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _rule_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the tag pydantic puts after a rule's index (``rules.definitions.0.threshold.below``):
    only there, since "gateway" is both a rule kind and a section."""
    if loc[:2] == ("rules", "definitions") and len(loc) > 3 and loc[3] in KINDS:
        return loc[:3] + loc[4:]
    return loc


def _place(source: str, loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> str:
    line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
    key = ".".join(str(p) for p in loc) or "(top level)"
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def _describe(source: str, err: Any, lines: dict[tuple[Any, ...], int]) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{_place(source, _rule_loc(tuple(err['loc'])), lines)}: {msg}"


def _describe_all(source: str, err: Any, lines: dict[tuple[Any, ...], int]) -> list[str]:
    """One line per problem; a cross-section check's problems each at the key they name."""
    cross = (err.get("ctx") or {}).get("error")
    if isinstance(cross, CrossCheckError):
        return [f"{_place(source, loc, lines)}: {msg}" for loc, msg in cross.problems]
    return [_describe(source, err, lines)]


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)  # safe_load: nothing in the file is ever constructed as code
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{source}{line}: not valid YAML: {exc}"]) from exc
    if data is None:
        raise ConfigError([f"{source}: the file is empty (or only comments): a configuration"
                           " needs at least homes: (configs/homevitals.yaml is a sample)"])
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([p for e in exc.errors() for p in _describe_all(source, e, lines)]
                          ) from exc


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from exc
    return parse_config(text, str(p))
