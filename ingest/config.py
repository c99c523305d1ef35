"""The ingest stage's configuration: the store it writes to and where its readings come from
(assembled into the root model by ``homevitals/vocab/config.py``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from homevitals.vocab.config_base import AmqpConnection, MetricsConfig, Model, MqttLogin

__all__ = ["AmqpSourceConfig", "IngestConfig", "StoreConfig", "StoreKind"]


class StoreKind(StrEnum):
    INFLUX_V1 = "influx_v1"
    INFLUX_V2 = "influx_v2"
    SQLITE = "sqlite"


class StoreConfig(Model):
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


class AmqpSourceConfig(AmqpConnection):
    """Ingest's source in the cluster profile (docs/cluster.md): a RabbitMQ quorum queue bound to
    the MQTT plugin's exchange. One queue per InfluxDB replica; its workers share it."""

    queue: str = Field("homevitals.ingest", min_length=1, description="one per InfluxDB replica")


class IngestConfig(Model):
    client_id: str = "homevitals-ingest"
    # mqtt: this daemon's own MQTT session (the embedded profile); amqp: the cluster profile.
    source: Literal["mqtt", "amqp"] = "mqtt"
    amqp: AmqpSourceConfig | None = None
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    shared_group: str | None = Field(None, description="MQTT 5 shared subscription group")
    batch_size: int = Field(500, ge=1, le=50_000)
    batch_seconds: float = Field(0.5, gt=0)
    backlog_max: int = Field(20_000, ge=10)
    retry_initial_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _source_settings(self) -> IngestConfig:
        if self.source == "amqp" and self.amqp is None:
            raise ValueError("source amqp needs an amqp section (urls, queue)")
        return self
