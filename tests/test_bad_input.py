"""Bad input never stops a daemon: a truncated characteristic value, an SFLOAT NaN or NRes, and a
malformed MQTT payload are each named, counted and kept (dead-letter topic and a `rejected` row in
InfluxDB), and the good readings around them still arrive."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import yaml
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.gateway.app import GatewayApp
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.roots.scripted_gateway import run_script
from homevitals.simulators.ble_values import (
    SFLOAT_NAN,
    SFLOAT_NRES,
    encode_bp_measurement,
    encode_glucose_measurement,
)
from homevitals.simulators.devices.scripted import ScheduledValue, ScriptedRadio
from homevitals.simulators.household import demo_config
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config

ZONE = ZoneInfo("Europe/Ljubljana")
START = datetime(2026, 11, 20, 8, 0, tzinfo=ZONE)


def _at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def _script() -> list[ScheduledValue]:
    good_bp = encode_bp_measurement(128, 82, 97, timestamp=START.replace(tzinfo=None), pulse=70)
    return [
        ScheduledValue(_at(1), "bp-1", "2A35", good_bp[:7]),  # truncated
        ScheduledValue(
            _at(2),
            "glucometer-1",
            "2A18",
            encode_glucose_measurement(1, _at(2).replace(tzinfo=None), SFLOAT_NAN, unit="mol/L"),
        ),
        ScheduledValue(_at(3), "bp-1", "2A35", encode_bp_measurement(SFLOAT_NRES, 80, 93)),
        ScheduledValue(_at(4), "bp-1", "2A35", good_bp),
        ScheduledValue(
            _at(5),
            "glucometer-1",
            "2A18",
            encode_glucose_measurement(2, _at(5).replace(tzinfo=None), 6.2, unit="mol/L"),
        ),
    ]


class _DeadLetters:
    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dead-letter-watch")
        self.client.on_connect = lambda c, *_: c.subscribe(
            [("homevitals/v1/deadletter/#", 1), ("homevitals/v1/home/+/deadletter/#", 1)]
        )
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_bad_values_and_payloads_are_named_counted_and_kept(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": mosquitto.port}
    base["store"] = {"kind": "influx_v1", "url": influxd.url, "database": influx_db}
    base["gateway"]["queue_path"] = str(tmp_path / "queue.sqlite")
    cfg_path = write_config(tmp_path / "hv.yaml", base)
    cfg = Config.model_validate(yaml.safe_load(cfg_path.read_text()))

    watch = _DeadLetters(mosquitto.port)
    ingest = Daemon("ingest", cfg_path, tmp_path)
    try:
        assert watch.ready.wait(10)
        ingest.wait_log("ready: subscribed")
        clock = SimulatedClock(START)
        radio = ScriptedRadio(cfg.home("home-novak"), clock)
        app = GatewayApp(cfg, radio, clock)
        assert asyncio.run(run_script(app, radio, clock, _script(), drain_seconds=20)) == 0
        assert dict(app.gateway.rejects) == {"bad_value": 3}
        assert app.gateway.counts["readings"] == 2

        # A malformed payload straight onto a reading topic, as a broken gateway might send.
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="broken-gateway")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish(
            "homevitals/v1/home/home-novak/reading/bp-1", b'{"v":1,"type":"reading"', qos=1
        ).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()

        store = InfluxV1Store(influxd.url, influx_db)
        span = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
        rejected = wait_until(
            "4 rejected rows",
            lambda: len(r := store.query_readings("rejected", None, *span)) == 4 and r,
            30,
        )
        errors = sorted(r["error"] for r in rejected)
        assert errors == sorted(
            [
                "0x2A35: flags 0x06 announce a time stamp but only 7 bytes",
                "0x2A18: glucose concentration is SFLOAT NaN (0x07FF)",
                "0x2A35: systolic pressure is SFLOAT NRes (0x0800)",
                next(e for e in errors if e.startswith("payload is not UTF-8 JSON")),
            ]
        )
        by_error = {r["error"]: r for r in rejected}
        truncated = by_error["0x2A35: flags 0x06 announce a time stamp but only 7 bytes"]
        assert (truncated["stage"], truncated["reason"], truncated["device"]) == (
            "gateway",
            "bad_value",
            "bp-1",
        )
        assert truncated["payload_hex"] == _script()[0].data.hex()
        assert any(r["stage"] == "ingest" and r["reason"] == "bad_json" for r in rejected)

        # The dead-letter topics carry the same, for operators' own tooling.
        wait_until("4 dead letters", lambda: len(watch.got) >= 4, 20)
        topics = sorted(t for t, _ in watch.got)
        assert topics == ["homevitals/v1/deadletter/ingest/bad_json"] + [
            "homevitals/v1/home/home-novak/deadletter/bad_value"
        ] * 3

        # The good readings around the bad ones arrived, and the ingest daemon lives on.
        bp = wait_until("good BP", lambda: store.query_readings("blood_pressure", "ana", *span), 20)
        glucose = wait_until(
            "good glucose", lambda: store.query_readings("glucose", "ana", *span), 20
        )
        assert [r["systolic"] for r in bp] == [128.0] and [r["glucose"] for r in glucose] == [6.2]
        assert ingest.proc.poll() is None
        assert (
            "rejected message on homevitals/v1/home/home-novak/reading/bp-1:"
            " payload is not UTF-8 JSON" in ingest.log()
        )
        assert ingest.terminate() == 0
    finally:
        ingest.kill()
        watch.close()
