"""What every configuration section is built from: the strict base model and the small types
several stages' sections share (a daemon's broker login, its metrics endpoint, a time window, the
kinds of device and what each measures, a patient's change to a rule).

Kept apart from ``homevitals/vocab/config.py`` so a stage's own section
(``rules/config.py``, the rule kinds in ``rules/kinds/``) can use them while the root model
in ``config.py`` assembles them.
Pure pydantic: the Raspberry Pi imports this.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from homevitals.vocab.readings import Measurement, Severity

__all__ = [
    "DEVICE_MEASUREMENTS", "E164", "AmqpConnection", "DeviceKind", "MetricsConfig", "Model",
    "MqttLogin",
    "RuleOverride", "TimeWindow",
]

E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


class Model(BaseModel):
    """A configuration section: unknown keys are errors, and a loaded section never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttLogin(Model):
    """One daemon's own broker user (``<daemon>.mqtt``), in place of ``mqtt.username`` and its
    password: every daemon gets its own user in the generated ACL (``homevitals mqtt-acl``)."""

    username: str
    password_env: str | None = None
    password_file: str | None = None


class AmqpConnection(Model):
    """How a daemon of the cluster profile reaches the RabbitMQ nodes over AMQP 0-9-1
    (docs/cluster.md); the stages' ``amqp`` sections add their queues to it."""

    urls: list[str] = Field(min_length=1, description="amqp://user@host:port/vhost of each node")
    password_env: str | None = None
    password_file: str | None = None
    exchange: str = "amq.topic"
    heartbeat_seconds: int = Field(30, ge=0, le=600)


class MetricsConfig(Model):
    """Where a daemon serves /metrics, /healthz and /readyz (homevitals.infra.metrics), and when one
    of its threads counts as stalled (homevitals.infra.runtime; 30 s without a metrics section)."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535, description="0: any free port (tests)")
    stall_seconds: float = Field(
        30.0, gt=0, le=3600,
        description="a busy thread without progress this long fails /healthz and the watchdog",
    )


class TimeWindow(Model):
    start: time
    end: time

    def contains(self, t: time) -> bool:
        """Half-open [start, end); a window whose end is before its start crosses midnight."""
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


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


class RuleOverride(Model):
    """One patient's change to a shared rule (a COPD patient's lower SpO2 floor)."""

    disabled: bool = False
    below: float | None = None
    above: float | None = None
    clear_at: float | None = None
    after_minutes: float | None = Field(None, gt=0)
    window: TimeWindow | None = None
    severity: Severity | None = None
