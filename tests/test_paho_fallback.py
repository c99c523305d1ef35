"""Ingest on a paho that lacks an internal name its fast receive path needs (issue 16, item 1):
it says so at start, falls back to plain paho, and readings are still stored, through the real
Mosquitto. scripts/test.sh also runs this against the lowest allowed paho (.venv-paho-min)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from daemons import wait_until
from servers import Mosquitto

from homevitals.infra import paho_internals
from homevitals.ingest.service import IngestService
from homevitals.ingest.sqlite_store import SqliteStore
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.config import Config
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

SPAN = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


class _Renamed:
    """Hides an inherited name, as a paho release that renamed it would."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError("renamed in this paho")

    def __set__(self, obj: object, value: object) -> None:
        """paho's ``__init__`` sets instance attributes: stored under the new name, say."""


def _reading(i: int) -> Reading:
    t = T0 + timedelta(seconds=30 * i)
    return Reading(f"fallback-{i}", "home-novak", "ana", "glucometer-1", Measurement.GLUCOSE,
                   {"glucose": FieldValue(5.0 + i / 10, Unit.MMOL_PER_L)}, t, t)


def _config(port: int) -> Config:
    base = demo_config()
    return base.model_copy(update={
        "mqtt": base.mqtt.model_copy(update={"host": "127.0.0.1", "port": port}),
        "ingest": base.ingest.model_copy(update={"client_id": "ingest-fallback",
                                                 "batch_seconds": 0.2}),
    })


@pytest.mark.parametrize("name", ["_packet_read", "_handle_publish", "_in_packet"])
def test_ingest_falls_back_to_plain_paho_and_still_stores(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, name: str,
) -> None:
    hidden = type("Hidden", (paho_internals.BufferedClient,), {name: _Renamed()})
    monkeypatch.setattr(paho_internals, "FAST_CLIENT", hidden)
    caplog.set_level(logging.WARNING, logger="homevitals.infra.paho_internals")
    store = SqliteStore(tmp_path / "store.sqlite")
    svc = IngestService(_config(mosquitto.port), store)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage().split(" lacks ")[1] for r in warnings] == [
        f"{name}, which the fast receive path relies on: using plain paho instead"
    ]
    assert not isinstance(svc.client, paho_internals.BufferedClient)
    readings = [_reading(i) for i in range(20)]
    svc.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-fallback")
    try:
        assert svc.subscribed.wait(10), "ingest did not subscribe"
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        topic = "homevitals/v1/home/home-novak/reading/glucometer-1"
        for r in readings:
            pub.publish(topic, wire.encode(r), qos=1).wait_for_publish(10)
        rows = wait_until("20 rows", lambda: len(
            r := store.query_readings("glucose", "ana", *SPAN)) >= 20 and r, 20)
        assert sorted(r["reading_id"] for r in rows) == sorted(r.reading_id for r in readings)
    finally:
        pub.disconnect()
        pub.loop_stop()
        svc.stop()
        store.close()
