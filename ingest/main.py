"""The ingest daemon's one entry point: picks the store from config and runs the service."""

from __future__ import annotations

import logging
import signal
import threading

from homevitals.config import Config, StoreConfig, StoreKind, read_secret
from homevitals.errors import ConfigError
from homevitals.ingest.service import IngestService
from homevitals.ingest.store import Store

__all__ = ["build_store", "run_ingest"]

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


def run_ingest(cfg: Config) -> None:
    service = IngestService(cfg, build_store(cfg.store))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    stop.wait()
    service.stop()
    service.store.close()
