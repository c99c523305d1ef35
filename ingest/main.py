"""The ingest daemon's one entry point: picks the store from config and runs the service."""

from __future__ import annotations

import logging

from homevitals.infra.runtime import Runner
from homevitals.ingest.service import IngestService
from homevitals.ingest.source import Source
from homevitals.ingest.store import Store
from homevitals.ingest.telemetry import REJECT_REASONS, ingest_metrics
from homevitals.vocab.config import Config, StoreConfig, StoreKind, read_secret
from homevitals.vocab.errors import ConfigError
from homevitals.vocab.topics import Topics

__all__ = ["REJECT_REASONS", "build_source", "build_store", "run_ingest"]

logger = logging.getLogger(__name__)


def build_store(cfg: StoreConfig) -> Store:
    """The store named by ``store.kind``; imports only what that kind needs."""
    if cfg.kind == StoreKind.SQLITE:
        from homevitals.ingest.sqlite_store import SqliteStore

        return SqliteStore(cfg.path)
    verify: bool | str = cfg.ca_file or cfg.verify_tls
    if cfg.kind == StoreKind.INFLUX_V1:
        from homevitals.ingest.influx_v1 import InfluxV1Store

        return InfluxV1Store(
            cfg.url,
            cfg.database,
            cfg.retention_policy,
            cfg.username,
            read_secret(cfg.password_env, cfg.password_file, "store.password"),
            timeout=cfg.timeout_seconds,
            verify_tls=verify,
            create_missing=cfg.create_database,
        )
    from homevitals.ingest.influx_v2 import InfluxV2Store

    token = read_secret(cfg.token_env, cfg.token_file, "store.token")
    if not token:
        raise ConfigError(["store: influx_v2 needs token_env or token_file"])
    return InfluxV2Store(
        cfg.url,
        token,
        cfg.org,
        cfg.bucket,
        timeout=cfg.timeout_seconds,
        verify_ssl=cfg.verify_tls,
        ssl_ca_cert=cfg.ca_file,
    )


def build_source(cfg: Config) -> Source | None:
    """None: the service's own MQTT session; else the cluster profile's queue (``amqp``)."""
    if cfg.ingest.source == "mqtt":
        return None
    from homevitals.ingest.amqp_source import AmqpSource

    assert cfg.ingest.amqp is not None  # IngestConfig checks it
    topics = Topics(cfg.mqtt.topic_prefix)
    return AmqpSource(cfg.ingest.amqp, topics.ingest_subscriptions, cfg.ingest.backlog_max)


def run_ingest(cfg: Config) -> None:
    service = IngestService(cfg, build_store(cfg.store), build_source(cfg))

    def stop() -> None:
        service.stop()
        service.store.close()

    Runner(service, cfg.ingest.metrics, lambda: ingest_metrics(service)).run(service.start, stop)
