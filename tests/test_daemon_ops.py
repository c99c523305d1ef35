"""The daemons as operators run them: real processes with /metrics, /healthz and /readyz, that
follow the broker going away and coming back, tell systemd (a notify socket the test binds) that
they are ready, feed its watchdog and say they are stopping, and stop cleanly on SIGTERM without
losing what they were holding."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from daemons import Daemon, wait_until, write_config
from notify import NotifySocket
from paho.mqtt.enums import CallbackAPIVersion
from servers import free_port

from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

SPAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _metric(body: str, name: str) -> float:
    """One sample's value from a Prometheus text page; a missing sample fails the test."""
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not on the page:\n{body}")


def _site(
    tmp: Path, broker_port: int, influx: Any, db: str
) -> tuple[dict[str, Any], dict[str, int]]:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    ports = {stage: free_port() for stage in ("ingest", "rules", "alerts", "gateway")}
    base["mqtt"] = {"host": "127.0.0.1", "port": broker_port}
    base["store"] = {"kind": "influx_v1", "url": influx.url, "database": db}
    base["rules"]["state_path"] = str(tmp / "rules.sqlite")
    base["rules"]["metrics"] = {"port": ports["rules"]}
    base["alerts"] = {
        "notifier": "console",
        "outbox_path": str(tmp / "ledger.sqlite"),
        "metrics": {"port": ports["alerts"]},
    }
    base["ingest"] = {"metrics": {"port": ports["ingest"]}}
    base["gateway"]["queue_path"] = str(tmp / "gw-queue.sqlite")
    base["gateway"]["metrics"] = {"port": ports["gateway"]}
    return base, ports


def test_health_endpoints_follow_the_broker(
    tmp_path: Path, mosquitto_factory: Any, influxd: Any, influx_db: str
) -> None:
    broker = mosquitto_factory()
    site, ports = _site(tmp_path, broker.port, influxd, influx_db)
    cfg = write_config(tmp_path / "hv.yaml", site)
    # The gateway with one simulated peripheral per configured device, in real time.
    gateway_args = ("--simulate", "devices", "--sim-interval", "0.2")
    systemd = {stage: NotifySocket() for stage in ports}
    daemons = {stage: Daemon(stage, cfg, tmp_path, *(gateway_args if stage == "gateway" else ()),
                             env=systemd[stage].env(watchdog_seconds=2.0))
               for stage in ports}
    try:
        for stage, port in ports.items():
            wait_until(f"{stage} ready", lambda p=port: _get(p, "/readyz")[0] == 200, 30)
            status, health = _get(port, "/healthz")
            assert status == 200 and health.startswith("ok\nmqtt-network: ok\n"), health
            assert all(line.endswith(": ok") for line in health.splitlines()[1:]), health
            status, body = _get(port, "/metrics")
            assert status == 200 and f"homevitals_{stage}_connected 1.0" in body
            ready = systemd[stage].wait_for("READY=1").split("\n")
            assert "STATUS=alive and ready" in ready, (stage, ready)
            systemd[stage].wait_pings(2, 2.5)
        # What the gateway has read, queued and had acknowledged, per device.
        def gateway_page() -> str | None:
            page = _get(ports["gateway"], "/metrics")[1]
            readings = "homevitals_gateway_readings_total "
            done = readings in page and _metric(page, readings.strip()) >= 5 \
                and _metric(page, "homevitals_gateway_acknowledged_total") >= 5
            return page if done else None

        gw = wait_until("gateway readings acknowledged", gateway_page, 30)
        seen = 'homevitals_gateway_device_last_seen_timestamp_seconds{device="glucometer-1"}'
        assert time.time() - 30 < _metric(gw, seen) <= time.time()
        assert 0 < _metric(gw, 'homevitals_gateway_device_battery_ratio{device="bp-1"}') <= 1
        assert _metric(gw, "homevitals_gateway_dropped_total") == 0
        for reason in ("bad_value", "unknown_device"):  # at 0 before the first rejection
            assert _metric(gw, f'homevitals_gateway_rejected_total{{reason="{reason}"}}') == 0
        assert "homevitals_gateway_values_total" not in gw
        assert 'homevitals_build_info{version="' in gw
        wait_until("ingest received the gateway's readings", lambda: _metric(
            _get(ports["ingest"], "/metrics")[1], "homevitals_ingest_received_total") >= 5, 30)

        broker.stop()
        for stage, port in ports.items():
            wait_until(
                f"{stage} not ready",
                lambda p=port: (a := _get(p, "/readyz"))[0] == 503
                and "broker: not connected to 127.0.0.1:" in a[1],
                30,
            )
            # Alive: it waits for the broker, it has not died, and systemd is told so.
            assert _get(port, "/healthz")[0] == 200
            systemd[stage].wait_pings(2, 2.5)
        broker.start()
        for stage, port in ports.items():
            wait_until(f"{stage} ready again", lambda p=port: _get(p, "/readyz")[0] == 200, 60)
        for stage, d in daemons.items():
            assert d.terminate() == 0, d.log()
            systemd[stage].wait_for("STOPPING=1", timeout=5)
    finally:
        for d in daemons.values():
            d.kill()
        for s in systemd.values():
            s.close()


def _reading(i: int) -> Reading:
    t = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(minutes=i)
    return Reading(
        f"sigterm-{i}",
        "home-novak",
        "ana",
        "glucometer-1",
        Measurement.GLUCOSE,
        {"glucose": FieldValue(5.0 + (i % 10) / 10, Unit.MMOL_PER_L)},
        t,
        t,
    )


def test_sigterm_writes_what_ingest_holds_and_loses_nothing(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    site, _ports = _site(tmp_path, mosquitto.port, influxd, influx_db)
    site["ingest"] = {"batch_size": 50, "batch_seconds": 2.0}  # hold messages in memory a while
    cfg = write_config(tmp_path / "hv.yaml", site)
    ingest = Daemon("ingest", cfg, tmp_path)
    second = None
    n = 300
    try:
        ingest.wait_log("ready: subscribed")
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{tmp_path.name}")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        infos = [
            pub.publish(
                "homevitals/v1/home/home-novak/reading/glucometer-1",
                wire.encode(_reading(i)),
                qos=1,
            )
            for i in range(n)
        ]
        for info in infos:
            info.wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        assert ingest.terminate() == 0, ingest.log()  # in the middle of its batches
        store = InfluxV1Store(influxd.url, influx_db)
        written_at_stop = len(store.query_readings("glucose", "ana", *SPAN))
        assert written_at_stop > 0
        second = Daemon("ingest", cfg, tmp_path)  # the broker kept the rest for its session
        second.wait_log("ready: subscribed")
        rows = wait_until(
            f"{n} rows",
            lambda: len(r := store.query_readings("glucose", "ana", *SPAN)) >= n and r,
            60,
        )
        assert len(rows) == n and len({r["reading_id"] for r in rows}) == n
        assert second.terminate() == 0
    finally:
        ingest.kill()
        if second is not None:
            second.kill()


def test_every_daemon_refuses_to_start_on_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: 99999\nhomes: []\ngateway: {home: nowhere}\n", encoding="utf-8")
    for stage in ("gateway", "ingest", "rules", "alerts"):
        d = Daemon(stage, bad, tmp_path)
        assert d.wait(60) == 2, d.log()
        assert f"error: {bad}:2: mqtt.port: Input should be less than or equal to 65535" in d.log()


def test_logs_as_json_lines(tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str) -> None:
    import json
    import subprocess
    import sys

    site, _ports = _site(tmp_path, mosquitto.port, influxd, influx_db)
    site["ingest"] = {}
    cfg = write_config(tmp_path / "hv.yaml", site)
    proc = subprocess.Popen(
        [sys.executable, "-m", "homevitals.roots.cli", "--log-format", "json", "ingest",
         "-c", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        entry = json.loads(line)
        assert set(entry) >= {"time", "level", "logger", "message"}
        assert entry["logger"].startswith("homevitals.") and entry["level"] == "INFO"
    finally:
        proc.terminate()
        proc.wait(20)
