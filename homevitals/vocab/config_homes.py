"""Who and what is monitored: the homes, their patients with their care teams, and their
devices (the ``homes:`` section). Vocabulary every stage reads; pure pydantic (the Raspberry Pi
loads it). Re-exported by ``homevitals/vocab/config.py``, whose root model holds the list of homes.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from homevitals.vocab.config_base import E164 as _E164
from homevitals.vocab.config_base import DeviceKind, Model, RuleOverride
from homevitals.vocab.readings import check_id

__all__ = [
    "QUIRK_KINDS", "CareRole", "CareTeamMember", "DeviceConfig", "HomeConfig", "PatientConfig",
    "Quirk",
]


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


class DeviceConfig(Model):
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


class CareTeamMember(Model):
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


class PatientConfig(Model):
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
    glucose_targets: Literal["standard", "older_high_risk"] = Field(
        "standard", description="consensus glucose targets in reports and the console (issue 15)"
    )

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


class HomeConfig(Model):
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
