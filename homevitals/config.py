"""Configuration models (pydantic), one model per section, and the loader.

Every error names the file, the line, the key and the problem. Secrets never live in the config
text: a section names an environment variable or a file that holds them (``*_env`` / ``*_file``).
The program never rewrites a user's config file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from homevitals.errors import ConfigError
from homevitals.predicted_rule import PredictedRuleConfig
from homevitals.readings import EventKind, Measurement, Severity, check_id
from homevitals.topics import DEFAULT_PREFIX
from homevitals.units import FIELD_UNITS, Unit

__all__ = [
    "AlertsConfig",
    "CareRole",
    "Config",
    "ConsoleConfig",
    "DeviceConfig",
    "DeviceKind",
    "BatteryRuleConfig",
    "EventRuleConfig",
    "GatewayRuleConfig",
    "MissingDataRuleConfig",
    "NOfM",
    "RateRuleConfig",
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
    "PredictedRuleConfig",
    "RulesConfig",
    "StoreConfig",
    "ThresholdRuleConfig",
    "TwilioConfig",
    "load_config",
    "parse_config",
    "read_secret",
]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class TlsConfig(_Model):
    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = Field(False, description="skip host name verification (testing only)")


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = DEFAULT_PREFIX
    keepalive: int = Field(60, ge=5, le=3600)
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls: TlsConfig = TlsConfig()


class MqttLogin(_Model):
    """One daemon's own broker user (``<daemon>.mqtt``), in place of ``mqtt.username`` and its
    password: every daemon gets its own user in the generated ACL (``homevitals mqtt-acl``)."""

    username: str
    password_env: str | None = None
    password_file: str | None = None


class StoreKind(StrEnum):
    INFLUX_V1 = "influx_v1"
    INFLUX_V2 = "influx_v2"
    SQLITE = "sqlite"


class StoreConfig(_Model):
    kind: StoreKind = StoreKind.SQLITE
    # influx_v1 (InfluxDB 1.x, and the /write compatibility API of 2.x / 3.x)
    url: str = "http://127.0.0.1:8086"
    database: str = "homevitals"
    retention_policy: str | None = None
    create_database: bool = Field(
        False, description="influx_v1: create the database when a write finds it missing"
                           " (needs an admin user when InfluxDB has authentication on)")
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    # influx_v2 (InfluxDB 2.x, 3.x, Cloud, 1.8+ with bucket "db/rp" and token "user:password")
    org: str = "-"
    bucket: str = "homevitals"
    token_env: str | None = None
    token_file: str | None = None
    # TLS for either API
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    # sqlite (the embedded store for one household)
    path: str = "homevitals-store.sqlite"


class DeviceKind(StrEnum):
    GLUCOSE_METER = "glucose_meter"
    BLOOD_PRESSURE = "blood_pressure"
    CALL_BUTTON = "call_button"  # BTHome v2 advertisements (Shelly BLU Button)
    CGM = "cgm"
    HEART_RATE = "heart_rate"
    PULSE_OXIMETER = "pulse_oximeter"
    THERMOMETER = "thermometer"
    SCALE = "scale"
    ITAG_BUTTON = "itag_button"  # connect-and-notify call button (0xFFE1)
    GPIO_BUTTON = "gpio_button"  # a push button wired to the Raspberry Pi (gpiozero)


DEVICE_MEASUREMENTS: dict[DeviceKind, tuple[Measurement, ...]] = {
    DeviceKind.GLUCOSE_METER: (Measurement.GLUCOSE,),
    DeviceKind.BLOOD_PRESSURE: (Measurement.BLOOD_PRESSURE,),
    DeviceKind.CALL_BUTTON: (),
    DeviceKind.CGM: (Measurement.GLUCOSE, Measurement.BATTERY),
    DeviceKind.HEART_RATE: (Measurement.HEART_RATE, Measurement.BATTERY),
    DeviceKind.PULSE_OXIMETER: (Measurement.SPO2, Measurement.BATTERY),
    DeviceKind.THERMOMETER: (Measurement.TEMPERATURE, Measurement.BATTERY),
    DeviceKind.SCALE: (Measurement.WEIGHT, Measurement.BATTERY),
    DeviceKind.ITAG_BUTTON: (),
    DeviceKind.GPIO_BUTTON: (),
}


class Quirk(StrEnum):
    """Known vendor deviations from the Bluetooth SIG profiles (docs/gateway.md "Quirks")."""

    BP_BIG_ENDIAN_PULSE_STATUS = "bp_big_endian_pulse_status"
    GLUCOSE_MG_DL_WITHOUT_EXPONENT = "glucose_mg_dl_without_exponent"
    GLUCOSE_CLOCK_FROM_DATE_TIME = "glucose_clock_from_date_time"
    GLUCOSE_REVERSE_SEQUENCE = "glucose_reverse_sequence"


QUIRK_KINDS: dict[Quirk, DeviceKind] = {
    Quirk.BP_BIG_ENDIAN_PULSE_STATUS: DeviceKind.BLOOD_PRESSURE,
    Quirk.GLUCOSE_MG_DL_WITHOUT_EXPONENT: DeviceKind.GLUCOSE_METER,
    Quirk.GLUCOSE_CLOCK_FROM_DATE_TIME: DeviceKind.GLUCOSE_METER,
    Quirk.GLUCOSE_REVERSE_SEQUENCE: DeviceKind.GLUCOSE_METER,
}


class DeviceConfig(_Model):
    id: str
    kind: DeviceKind
    patient: str
    name: str | None = Field(None, min_length=1, max_length=100,
                             description="what people call it, e.g. Ana's blood-pressure monitor")
    address: str | None = Field(None, description="BLE address (bleak transport)")
    quirks: list[Quirk] = Field([], description="named vendor deviations (docs/gateway.md)")
    gpio_pin: int | None = Field(None, ge=0, le=53, description="BCM pin of a gpio_button")

    _id = field_validator("id", "patient")(lambda v: check_id("device/patient", v))

    @model_validator(mode="after")
    def _kind_options(self) -> DeviceConfig:
        for quirk in self.quirks:
            if QUIRK_KINDS[quirk] != self.kind:
                raise ValueError(
                    f"device {self.id}: quirk {quirk} is for {QUIRK_KINDS[quirk]} devices,"
                    f" not {self.kind}"
                )
        if (self.kind == DeviceKind.GPIO_BUTTON) != (self.gpio_pin is not None):
            raise ValueError(f"device {self.id}: gpio_pin is required for a gpio_button and"
                             " only allowed there")
        return self


class CareRole(StrEnum):
    FAMILY_DOCTOR = "family_doctor"
    BACKUP_DOCTOR = "backup_doctor"
    HEALTH_MANAGER = "health_manager"
    FAMILY_MEMBER = "family_member"
    VOLUNTEER = "volunteer"
    # Issue 20: the person's own phone (``PatientConfig.phone``), a step of a route, never a
    # member of the care team.
    PATIENT = "patient"


class CareTeamMember(_Model):
    name: str = Field(min_length=1)
    role: CareRole
    phone: str

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str) -> str:
        if not _E164.match(v):
            raise ValueError(f"phone {v!r} is not an E.164 number such as +38640123456")
        return v

    @field_validator("role")
    @classmethod
    def _not_patient(cls, v: CareRole) -> CareRole:
        if v == CareRole.PATIENT:
            raise ValueError("the patient is not a care-team member: put the patient's own"
                             " number in the patient's `phone`")
        return v


_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")


class PatientConfig(_Model):
    id: str
    name: str = Field(min_length=1)
    number: str | None = Field(None, description="the health centre's patient number")
    care_team: list[CareTeamMember] = Field(min_length=1)
    rule_overrides: dict[str, RuleOverride] = Field(
        {}, description="rule id -> this patient's changes (issue 6)"
    )
    glucose_unit: Literal["mmol/L", "mg/dL"] = Field(
        "mmol/L", description="the unit this patient's SMS show glucose in (issue 14)"
    )
    # Issue 20: the person's own number (optional) and the language of the SMS they get
    # (a BCP 47 tag with a template file, alerts/templates/<language>.yaml).
    phone: str | None = Field(None, description="the patient's own phone (the `patient` role)")
    language: str = Field("en", description="language of the patient's SMS, e.g. en, zh-Hans")

    _id = field_validator("id")(lambda v: check_id("patient", v))

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        if v is not None and not _E164.match(v):
            raise ValueError(f"phone {v!r} is not an E.164 number such as +38640123456")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if not _LANGUAGE.match(v):
            raise ValueError(f"language {v!r} is not a language tag such as en or zh-Hans")
        return v

    @model_validator(mode="after")
    def _has_doctor(self) -> PatientConfig:
        if not any(m.role == CareRole.FAMILY_DOCTOR for m in self.care_team):
            raise ValueError(f"patient {self.id} has no family_doctor in care_team")
        if self.phone is not None and any(m.phone == self.phone for m in self.care_team):
            raise ValueError(f"patient {self.id}: phone {self.phone} is also a care-team number")
        return self


class HomeConfig(_Model):
    id: str
    timezone: str
    patients: list[PatientConfig] = Field(min_length=1)
    devices: list[DeviceConfig] = []

    _id = field_validator("id")(lambda v: check_id("home", v))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Ljubljana)"
            ) from exc
        return v

    @model_validator(mode="after")
    def _devices_belong(self) -> HomeConfig:
        ids = {p.id for p in self.patients}
        for d in self.devices:
            if d.patient not in ids:
                raise ValueError(
                    f"device {d.id} names patient {d.patient!r}, who is not in home {self.id}"
                )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HomeAssistantConfig(_Model):
    """Home Assistant MQTT discovery: retained config topics so a family's HA shows the
    devices (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery). Off by default."""

    enabled: bool = False
    discovery_prefix: str = "homeassistant"


class MetricsConfig(_Model):
    """Where a daemon serves /metrics, /healthz and /readyz (homevitals.metrics), and when one
    of its threads counts as stalled (homevitals.runtime; 30 s without a metrics section)."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535, description="0: any free port (tests)")
    stall_seconds: float = Field(
        30.0, gt=0, le=3600,
        description="a busy thread without progress this long fails /healthz and the watchdog",
    )


class GatewayConfig(_Model):
    home: str
    metrics: MetricsConfig | None = None
    transport: Literal["bleak", "simulated"] = "bleak"
    queue_path: str = "homevitals-gateway-queue.sqlite"
    queue_max_messages: int = Field(1_000_000, ge=100)
    max_inflight: int = Field(100, ge=1, le=1000)
    heartbeat_seconds: float = Field(60.0, gt=0)
    client_id: str | None = None
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    # Deprecated: earlier bleak gateways kept the last RACP sequence number per meter in this
    # file. The mark now lives in the queue database, committed with the readings; a file
    # named here is read once at start to carry its marks over (gateway/main.py).
    sequence_state_path: str | None = None
    # What happens when queue_max_messages are waiting (the home offline for a long time):
    # drop_oldest makes room by deleting the oldest messages; drop_new_readings refuses new
    # readings instead. Call-button events are always queued. Either way every drop is logged
    # and counted in the heartbeat ("dropped").
    queue_full: Literal["drop_oldest", "drop_new_readings"] = "drop_oldest"
    racp_timeout_seconds: float = Field(30.0, gt=0, description="glucose record download")
    home_assistant: HomeAssistantConfig = Field(default_factory=lambda: HomeAssistantConfig())


class IngestConfig(_Model):
    client_id: str = "homevitals-ingest"
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    shared_group: str | None = Field(None, description="MQTT 5 shared subscription group")
    batch_size: int = Field(500, ge=1, le=50_000)
    batch_seconds: float = Field(0.5, gt=0)
    backlog_max: int = Field(20_000, ge=10)
    retry_initial_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30.0, gt=0)


class TimeWindow(_Model):
    start: time
    end: time

    def contains(self, t: time) -> bool:
        """Half-open [start, end); a window whose end is before its start crosses midnight."""
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class NOfM(_Model):
    """At least ``n`` of the last ``m`` readings breach the bound."""

    n: int = Field(ge=1)
    m: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _n_le_m(self) -> NOfM:
        if self.n > self.m:
            raise ValueError(f"n_of_m: n ({self.n}) cannot exceed m ({self.m})")
        return self


class ThresholdRuleConfig(_Model):
    id: str
    kind: Literal["threshold"]
    measurement: Measurement
    field: str
    below: float | None = None
    above: float | None = None
    unit: Unit
    window: TimeWindow | None = None
    severity: Severity
    reason: str = Field(min_length=1)
    # Issue 6 (docs/rules-and-alerts.md): hysteresis, sustained conditions, confirmation.
    clear_at: float | None = Field(
        None, description="resolve only once the value is back to here (default: the bound)"
    )
    for_minutes: float | None = Field(None, gt=0, description="breached for at least this long")
    n_of_m: NOfM | None = None
    confirm_within_minutes: float | None = Field(
        None, gt=0, description="fire on a second breaching reading within this time"
    )
    sustain_devices: list[DeviceKind] | None = Field(
        None,
        description="apply for_minutes / n_of_m only to readings from these device kinds"
        " (a CGM); a reading from any other device (a finger-stick) is judged alone",
    )
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )
    opens_episode: bool = Field(True, description="false: only joins an open episode")
    sustain_waived_by: list[str] = Field(
        [], description="rule ids: while one of their conditions holds, do not wait to sustain"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))

    @model_validator(mode="after")
    def _one_bound(self) -> ThresholdRuleConfig:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"rule {self.id}: give exactly one of 'below' or 'above'")
        if self.clear_at is not None:
            if self.below is not None and self.clear_at < self.below:
                raise ValueError(f"rule {self.id}: clear_at must be >= below ({self.below})")
            if self.above is not None and self.clear_at > self.above:
                raise ValueError(f"rule {self.id}: clear_at must be <= above ({self.above})")
        given = [self.for_minutes, self.n_of_m, self.confirm_within_minutes]
        if sum(g is not None for g in given) > 1:
            raise ValueError(
                f"rule {self.id}: give at most one of for_minutes, n_of_m, confirm_within_minutes"
            )
        return self


class EventRuleConfig(_Model):
    id: str
    kind: Literal["event"]
    event: EventKind
    severity: Severity
    reason: str = Field(min_length=1)
    fold_minutes: float = Field(
        10.0, ge=0, description="presses within this time join the open alert"
    )
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))

    @model_validator(mode="after")
    def _call_is_critical(self) -> EventRuleConfig:
        # Issue 6: a call for help is always critical and immediate, whatever the config says.
        if self.event == EventKind.CALL_BUTTON and self.severity != Severity.CRITICAL:
            raise ValueError(f"rule {self.id}: the call button is always severity critical")
        return self


class RateRuleConfig(_Model):
    """A fall (or rise) of more than ``fall``/``rise`` within ``within_minutes``."""

    id: str
    kind: Literal["rate"]
    measurement: Measurement
    field: str
    unit: Unit
    fall: float | None = Field(None, gt=0)
    rise: float | None = Field(None, gt=0)
    within_minutes: float = Field(gt=0)
    window: TimeWindow | None = None
    severity: Severity
    reason: str = Field(min_length=1)
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )
    opens_episode: bool = Field(True, description="false: only joins an open episode")

    _id = field_validator("id")(lambda v: check_id("rule", v))

    @model_validator(mode="after")
    def _one_direction(self) -> RateRuleConfig:
        if (self.fall is None) == (self.rise is None):
            raise ValueError(f"rule {self.id}: give exactly one of 'fall' or 'rise'")
        return self


class MissingDataRuleConfig(_Model):
    """No reading of ``measurement`` for ``after_minutes`` (checked while ``window`` is open)."""

    id: str
    kind: Literal["missing"]
    measurement: Measurement
    after_minutes: float = Field(gt=0)
    window: TimeWindow | None = None
    severity: Severity
    reason: str = Field(min_length=1)
    clear_after_minutes: float = Field(
        10.0, ge=0, description="readings must have flowed again this long before the all clear"
    )
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))


class GatewayRuleConfig(_Model):
    """The home gateway is offline (its last will) or has missed its heartbeats."""

    id: str
    kind: Literal["gateway"]
    offline_grace_minutes: float = Field(
        5.0, ge=0, description="an 'offline' status must last this long (a reboot is not news)"
    )
    heartbeat_missed_minutes: float = Field(10.0, gt=0)
    severity: Severity
    reason: str = Field(min_length=1)
    clear_after_minutes: float = Field(
        10.0, ge=0, description="heard from again this long before the all clear"
    )
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))


class BatteryRuleConfig(_Model):
    """A device battery (heartbeat or battery readings) below ``below`` %."""

    id: str
    kind: Literal["battery"]
    below: float = Field(gt=0, le=100)
    clear_at: float | None = Field(None, le=100)
    severity: Severity
    reason: str = Field(min_length=1)
    episode: str | None = Field(
        None, description="rules naming the same episode form one alert per patient (issue 14)"
    )

    _id = field_validator("id")(lambda v: check_id("rule", v))


RuleConfig = Annotated[
    ThresholdRuleConfig
    | EventRuleConfig
    | RateRuleConfig
    | MissingDataRuleConfig
    | GatewayRuleConfig
    | BatteryRuleConfig
    | PredictedRuleConfig,  # issue 19, homevitals/predicted_rule.py
    Field(discriminator="kind"),
]
_RULE_KINDS = ("threshold", "event", "rate", "missing", "gateway", "battery", "predicted")


class RuleOverride(_Model):
    """One patient's change to a shared rule (a COPD patient's lower SpO2 floor)."""

    disabled: bool = False
    below: float | None = None
    above: float | None = None
    clear_at: float | None = None
    after_minutes: float | None = Field(None, gt=0)
    window: TimeWindow | None = None
    severity: Severity | None = None


def effective_rule(rule: Any, override: RuleOverride | None) -> Any:
    """``rule`` with a patient's override applied and validated again (ValueError if invalid)."""
    if override is None:
        return rule
    changes = override.model_dump(exclude_unset=True, exclude={"disabled"})
    if "below" in changes and "above" not in changes and hasattr(rule, "above"):
        changes["above"] = None  # a new floor replaces the bound, whichever it was
    if "above" in changes and "below" not in changes and hasattr(rule, "below"):
        changes["below"] = None
    try:
        return type(rule).model_validate({**rule.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(f"override of rule {rule.id}: {problems}") from None


class RulesConfig(_Model):
    client_id: str = "homevitals-rules"
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    state_path: str = "homevitals-rules-state.sqlite"
    definitions: list[RuleConfig] = []
    # APScheduler's job store (SQLite); default: next to state_path.
    schedule_path: str | None = None
    tick_seconds: float = Field(
        30.0, ge=0, description="missing-data checks on the clock; 0: only on message times"
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesConfig:
        ids = [r.id for r in self.definitions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rule ids must be unique: {', '.join(dup)}")
        for r in self.definitions:
            if r.episode is not None:
                check_id("episode", r.episode)
            unknown = [w for w in getattr(r, "sustain_waived_by", []) if w not in ids]
            if unknown:
                raise ValueError(
                    f"rule {r.id}: sustain_waived_by names unknown rule {unknown[0]!r}"
                )
            if getattr(r, "opens_episode", True):
                continue
            if not any(
                o is not r and episode_of(o) == episode_of(r) and getattr(o, "opens_episode", True)
                for o in self.definitions
            ):
                raise ValueError(
                    f"rule {r.id}: opens_episode is false, so it needs an episode shared with a"
                    " rule that opens it"
                )
        return self


def episode_of(rule: Any) -> str:
    """The episode a rule's conditions belong to: its ``episode``, else a name of its own."""
    return str(rule.episode or rule.id)


class TwilioConfig(_Model):
    """Credentials come from the environment (``*_env``) or a file, never from this file."""

    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name, not a secret
    auth_token_file: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = Field(None, description="URL Twilio calls with delivery status")
    api_base_url: str | None = Field(None, description="override the REST base URL (proxy, tests)")
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("twilio needs from_number or messaging_service_sid")
        if self.from_number and not _E164.match(self.from_number):
            raise ValueError(f"from_number {self.from_number!r} is not an E.164 number")
        return self


class RouteConfig(_Model):
    """Who hears about which alerts, in what order. The first matching route wins."""

    severities: list[Severity] = Field([], description="empty: any severity")
    rules: list[str] = Field([], description="empty: any rule")
    # A step is a role, or a list of roles told at once ([patient, family_doctor], issue 20).
    chain: list[CareRole | list[CareRole]] = Field(
        min_length=1, description="escalation steps, by role"
    )
    escalate_after_minutes: float = Field(15.0, gt=0)
    # Issue 20: how long a step of the patient alone waits before the next one (the ADA "rule
    # of 15": treat, then check again 15 minutes later).
    escalate_after_patient_minutes: float = Field(15.0, gt=0)
    renotify_minutes: float = Field(30.0, gt=0)
    max_reminders: int = Field(6, ge=0)

    def matches(self, severity: str, rule: str, episode: str = "") -> bool:
        """``rules`` may name a rule or an episode (issue 14)."""
        return (not self.severities or severity in self.severities) and (
            not self.rules or rule in self.rules or (bool(episode) and episode in self.rules)
        )

    def step_roles(self) -> list[list[CareRole]]:
        """The chain as steps, each a list of roles told at once."""
        return [c if isinstance(c, list) else [c] for c in self.chain]


def default_routes() -> list[RouteConfig]:
    """A dead gateway or a flat battery goes to the health manager, not the doctor at 3 a.m."""
    r = CareRole
    return [
        RouteConfig(
            rules=["gateway-offline", "device-battery-low"],
            chain=[r.HEALTH_MANAGER],
            escalate_after_minutes=120,
            renotify_minutes=240,
            max_reminders=2,
        ),
        # Issue 20: a level-1 (or predicted) low warns the person first, who can act fastest;
        # issue 14 (tuning): and their family, who treat a child's low (ISPAD 2022,
        # hypoglycaemia chapter; CGM followers' apps share low alerts with family). The family
        # doctor only if it has not cleared 30 minutes later (two "rule of 15" cycles: treat,
        # recheck at 15 min, treat again; ADA Standards of Care 2024, section 6), or at once
        # if it deepens (the level-2 route below). With neither a patient phone nor a family
        # member the doctor is first. Sources and bench figures: configs/rules-defaults.yaml.
        RouteConfig(
            rules=["glucose-low"],
            severities=[Severity.LOW, Severity.MEDIUM],
            chain=[[r.PATIENT, r.FAMILY_MEMBER], r.FAMILY_DOCTOR, r.BACKUP_DOCTOR],
            escalate_after_patient_minutes=30,
            escalate_after_minutes=60,
            renotify_minutes=120,
            max_reminders=3,
        ),
        # A level-2 low or a hypertensive crisis: the person and the doctor at once. Unanswered,
        # the backup doctor at 15 min and the health manager at 30 as before; then reminders
        # hourly, at most 2 (issue 14 tuning: every-30-minute reminders were about a seventh of
        # a doctor's SMS on the UVA/Padova child cohort, bench/alarm_burden.py).
        RouteConfig(
            rules=["glucose-low", "hypertensive-crisis"],
            severities=[Severity.HIGH],
            chain=[[r.PATIENT, r.FAMILY_DOCTOR], r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=15,
            renotify_minutes=60,
            max_reminders=2,
        ),
        RouteConfig(
            severities=[Severity.CRITICAL],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=5,
            renotify_minutes=10,
            max_reminders=12,
        ),
        RouteConfig(
            severities=[Severity.HIGH],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR, r.HEALTH_MANAGER],
            escalate_after_minutes=15,
            renotify_minutes=30,
        ),
        RouteConfig(
            severities=[Severity.MEDIUM],
            chain=[r.FAMILY_DOCTOR, r.BACKUP_DOCTOR],
            escalate_after_minutes=60,
            renotify_minutes=120,
            max_reminders=3,
        ),
        RouteConfig(
            chain=[r.FAMILY_DOCTOR], escalate_after_minutes=720, renotify_minutes=720,
            max_reminders=1,
        ),
    ]


class WebhookConfig(_Model):
    """Twilio's inbound-SMS and status-callback webhook, served by the alerts daemon."""

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=1, le=65535)
    public_url: str = Field(
        description="the URL Twilio calls (behind a TLS proxy); the signature covers it"
    )

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+", v):
            raise ValueError(f"public_url {v!r} must be an http(s) URL")
        return v.rstrip("/")


class AlertsConfig(_Model):
    client_id: str = "homevitals-alerts"
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    notifier: Literal["twilio", "console"] = "console"
    twilio: TwilioConfig | None = None
    outbox_path: str = "homevitals-alerts-outbox.sqlite"
    ledger_url: str | None = Field(
        None, description="the alert ledger in PostgreSQL (postgresql+psycopg://...), shared by"
        " several alert workers (docs/cluster.md); default: SQLite in outbox_path",
    )
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    # Issue 6: routing, escalation, quiet hours, the inbound webhook (docs/rules-and-alerts.md).
    routes: list[RouteConfig] = Field(default_factory=lambda: default_routes())
    privacy: Literal["full_name", "initials"] = Field(
        "full_name", description="initials: SMS name patients by initials and patient number only"
    )
    quiet_hours: TimeWindow | None = Field(
        None, description="patient's local time; holds low severity only"
    )
    webhook: WebhookConfig | None = None
    schedule_path: str | None = None  # unused since issue 16 (due times are ledger rows); kept
    # so that an older config still loads
    sweep_seconds: float = Field(
        30.0, gt=0, description="the longest the escalation timer sleeps before it looks at the"
        " ledger again (for due times another process wrote)",
    )
    # Issue 14, the alarm budget (alerts/budget.py): at most this many SMS per recipient and
    # patient in any 60 minutes; more are folded into one digest SMS. Critical always goes
    # through (and counts). 4 lets one real episode's whole story through untouched (first SMS,
    # a severity update, the all clear, one reminder), so only a storm is ever folded.
    sms_per_hour: int = Field(4, ge=1, description="SMS budget per recipient and patient")


Loc = tuple[str | int, ...]


class CrossCheckError(ValueError):
    """Problems that involve several sections, each with the place in the file it points at."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        self.problems = problems


class ConsoleConfig(_Model):
    """The care team's web console (``homevitals console``): accounts, sessions and its audit
    trail live in its own SQLite file; it reads the alert ledger and the store."""

    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="0: any free port (tests)")
    db_path: str = "homevitals-console.sqlite"
    secure_cookies: bool = Field(
        False, description="mark cookies Secure: set when served behind a TLS proxy"
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    lockout_failures: int = Field(5, ge=1, le=100)
    lockout_minutes: float = Field(15.0, gt=0)
    poll_seconds: float = Field(3.0, gt=0, le=60, description="how often the inbox refreshes")
    lookback_days: int = Field(14, ge=1, le=366, description="the patient page's period")
    silent_hours: float = Field(24.0, gt=0, description="a device quiet this long is silent")
    low_battery_percent: float = Field(20.0, gt=0, le=100)
    follow_up_hours: dict[Severity, float] = Field(
        default_factory=lambda: {Severity.CRITICAL: 24.0, Severity.HIGH: 48.0},
        description="severities that create a follow-up task, and hours until it is due",
    )
    follow_up_check_seconds: float = Field(
        60.0, gt=0, description="how often overdue follow-ups are sent to the health manager"
    )


class Config(_Model):
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
        for i, rule in enumerate(self.rules.definitions):
            at: Loc = ("rules", "definitions", i)
            if (
                isinstance(rule, ThresholdRuleConfig)
                and self.homes
                and rule.measurement not in produced
            ):
                yield ((*at, "measurement"),
                       f"rule {rule.id} watches {rule.measurement}, which no device produces")
            yield from (((*at, key), msg) for key, msg in _unit_problems(rule))

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


def _unit_problems(rule: object) -> Iterator[tuple[str, str]]:
    """A rule's field must exist on the wire, in the unit the wire uses."""
    measurement, field, unit = (getattr(rule, a, None) for a in ("measurement", "field", "unit"))
    if measurement is None or field is None or unit is None:
        return
    known = FIELD_UNITS.get(str(measurement), {})
    if field not in known:
        yield "field", (f"rule {getattr(rule, 'id', '?')}: {measurement} has no field {field!r}"
                        f" (fields: {', '.join(sorted(known))})")
    elif known[field] != unit:
        yield "unit", (f"rule {getattr(rule, 'id', '?')}: {measurement}.{field} is in"
                       f" {known[field]}, not {unit}")


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
    if loc[:2] == ("rules", "definitions") and len(loc) > 3 and loc[3] in _RULE_KINDS:
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
