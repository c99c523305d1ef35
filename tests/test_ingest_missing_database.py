"""Ingest against an InfluxDB that lacks the database: the operator reads once, exactly, what to
run (or ingest creates it when allowed), and reads when writes recover. Nothing is lost."""

from __future__ import annotations

import logging
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from daemons import Daemon, wait_until
from servers import free_port
from test_ingest_resilience import SPAN, _config, _metric, _publish, _reading

from homevitals.ingest.errors import StoreError
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.ingest.write_log import WriteTrouble


def _rows(influx: Any, db: str) -> int:
    try:
        return len(InfluxV1Store(influx.url, db).query_readings("glucose", "ana", *SPAN))
    except StoreError:  # the database is not there (yet)
        return 0


def test_missing_database_says_once_what_to_run_then_recovers(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    db = f"nodb_{secrets.token_hex(4)}"
    port = free_port()
    cfg = _config(tmp_path, mosquitto.port, influxd, db, retry_initial_seconds=0.1,
                  retry_max_seconds=0.2, metrics={"port": port})
    readings = [_reading(i, "nodb") for i in range(50)]
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _publish(mosquitto.port, readings, f"gw-{tmp_path.name}")
        command = (f"curl -XPOST '{influxd.url}/query' --data-urlencode"
                   f" 'q=CREATE DATABASE \"{db}\"'")
        ingest.wait_log(command, 30)
        wait_until("ten more attempts", lambda: _metric(
            port, "homevitals_ingest_write_retries_total") >= 11, timeout=30)
        log = ingest.log()
        assert log.count("database not found") == 1, log
        assert ("(logged again if the problem changes, else every 10 min): InfluxDB at"
                f" {influxd.url}/write answered HTTP 404: database not found: \"{db}\". Create the"
                f" database: {command} (or set store.create_database: true)\n") in log
        subprocess.run(command, shell=True, check=True, capture_output=True, timeout=30)
        wait_until("every reading stored", lambda: _rows(influxd, db) == len(readings), 30)
        ingest.wait_log("writes recovered: 50 points written after")
        assert ingest.terminate() == 0
    finally:
        ingest.kill()


def test_missing_database_is_created_when_the_config_allows(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    db = f"nodb_{secrets.token_hex(4)}"
    cfg = _config(tmp_path, mosquitto.port, influxd, db)
    text = cfg.read_text(encoding="utf-8").replace("  database: ", "  create_database: true\n"
                                                   "  database: ")
    cfg.write_text(text, encoding="utf-8")
    readings = [_reading(i, "create") for i in range(20)]
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _publish(mosquitto.port, readings, f"gw-{tmp_path.name}")
        wait_until("every reading stored", lambda: _rows(influxd, db) == len(readings), 30)
        assert (f"InfluxDB database {db} does not exist: creating it"
                " (store.create_database: true)") in ingest.log()
        assert "ERROR" not in ingest.log()
        assert ingest.terminate() == 0
    finally:
        ingest.kill()


def test_a_lasting_write_failure_is_logged_once_then_every_ten_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    trouble = WriteTrouble(clock=lambda: now[0])
    down = StoreError("InfluxDB at http://db:8086/write: no answer: refused", retryable=True)
    caplog.set_level(logging.INFO, logger="homevitals.ingest.write_log")
    for _ in range(100):  # 100 attempts over 15 minutes
        trouble.failed(500, down, 9.0)
        now[0] += 9.0
    trouble.succeeded(500)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "write of 500 points failed; retrying in 9.0 s, then with growing delays"
                  " (logged again if the problem changes, else every 10 min): InfluxDB at"
                  " http://db:8086/write: no answer: refused"),
        ("ERROR", "writes still failing after 68 attempts in 603 s: InfluxDB at"
                  " http://db:8086/write: no answer: refused"),
        ("WARNING", "writes recovered: 500 points written after 100 failed attempts in 900 s"),
    ]
