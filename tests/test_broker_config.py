"""The shipped broker configuration (configs/mosquitto/homevitals.conf) and a broker that drops.

Every test broker starts from the shipped file (tests/servers.py). Here a test-only variant with a
tiny ``max_queued_messages`` makes Mosquitto really drop a subscriber's messages, and ingest must
make that visible: its metric and a WARNING."""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from broker_conf import BROKER_CONF
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from servers import free_port
from test_ingest_resilience import SPAN, _publish, _reading

from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators.household import demo_config

_COUNT = re.compile(r"dropped (\d+) messages")


def _settings(text: str) -> dict[str, str]:
    lines = [ln.split(" ", 1) for ln in text.splitlines() if ln and not ln.startswith("#")]
    return {k: v for k, v in lines if k != "listener"}


def test_the_shipped_broker_config_states_the_settings_no_loss_needs(mosquitto: Any) -> None:
    shipped = _settings(BROKER_CONF.read_text(encoding="utf-8"))
    assert int(shipped["max_queued_messages"]) >= 100_000  # Mosquitto's 1000 drops (issue 13)
    assert shipped["persistence"] == "true" and shipped["allow_anonymous"] == "false"
    assert shipped["sys_interval"] != "0"  # the drop counter ingest watches
    # What the test brokers run is the shipped file, paths and ports aside.
    running = _settings(mosquitto.conf_path.read_text(encoding="utf-8"))
    replaced = {"persistence_location", "allow_anonymous", "password_file", "acl_file", "user"}
    assert {k: v for k, v in running.items() if k not in replaced} == {
        k: v for k, v in shipped.items()
        if k not in replaced and k not in ("cafile", "certfile", "keyfile", "tls_version")
    }


def _offline_subscriber(port: int) -> None:
    """A persistent session that subscribed and went away: the broker queues for it."""
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="slow-sub", clean_session=False)
    granted = threading.Event()
    sub.on_subscribe = lambda *_a: granted.set()
    sub.on_connect = lambda c, *_a: c.subscribe("homevitals/v1/home/+/reading/+", qos=1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    assert granted.wait(10)
    sub.disconnect()
    sub.loop_stop()


def test_a_broker_that_drops_messages_is_seen_by_ingest(
    tmp_path: Path, mosquitto_factory: Any, influxd: Any, influx_db: str
) -> None:
    broker = mosquitto_factory(overrides={"max_queued_messages": "10", "sys_interval": "1"})
    metrics_port = free_port()
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": broker.port}
    base["store"] = {"kind": "influx_v1", "url": influxd.url, "database": influx_db}
    base["ingest"] = {"metrics": {"port": metrics_port}}
    ingest = Daemon("ingest", write_config(tmp_path / "hv.yaml", base), tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        _offline_subscriber(broker.port)
        readings = [_reading(i, "drop") for i in range(50)]
        _publish(broker.port, readings, "gw-drop")

        def dropped() -> float | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                page = resp.read().decode()
            m = re.search(r"^homevitals_broker_messages_dropped (\S+)$", page, re.M)
            return float(m.group(1)) if m and float(m.group(1)) >= 40 else None

        # 50 for the absent subscriber, 10 of them queued: 40 dropped.
        assert wait_until("the broker's drop count", dropped, 20) == 40.0
        ingest.wait_log("WARNING")
        warnings = [ln for ln in ingest.log().splitlines() if "the MQTT broker dropped" in ln]
        assert warnings and all("WARNING" in ln for ln in warnings), ingest.log()
        counts = [int(m.group(1)) for ln in warnings if (m := _COUNT.search(ln))]
        assert sum(counts) == 40 and "(40 since it started)" in warnings[-1]
        assert "Outgoing messages are being dropped" in broker.log()
        # Ingest's own session lost nothing.
        store = InfluxV1Store(influxd.url, influx_db)
        wait_until("50 rows", lambda: len(store.query_readings("glucose", "ana", *SPAN)) == 50)
    finally:
        ingest.kill()
