"""The household story with every daemon under its own broker user: a real Mosquitto started from
configs/mosquitto/homevitals.conf with a password file and the ACL `homevitals mqtt-acl` makes,
four daemon processes, a real influxd and the Twilio stand-in. Everything must arrive: readings and
alerts in InfluxDB, the Home Assistant discovery configs at the broker, the SMS at the stand-in."""

from __future__ import annotations

import threading
import time
import urllib.request
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from servers import free_port, make_password_file
from twilio_standin import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioStandin

from homevitals.infra.acl import mosquitto_acl
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.vocab.config import Config, load_config

SAMPLE = Path(__file__).resolve().parent.parent / "configs" / "homevitals.yaml"
DOCTOR = "+15550100001"
SENDER = "+15550109999"
SPAN = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
USERS = {  # daemon -> (user, password)
    "gateway": ("gw-home-novak", "gw-secret"),
    "ingest": ("homevitals-ingest", "ingest-secret"),
    "rules": ("homevitals-rules", "rules-secret"),
    "alerts": ("homevitals-alerts", "alerts-secret"),
}
OBSERVER = ("test-observer", "observer-secret")  # the test's own eyes on the retained configs
DISCOVERY = sorted(
    [f"homeassistant/sensor/homevitals_home-novak/{obj}/config"
     for obj in ("glucometer-1_glucose", "glucometer-1_battery", "bp-1_systolic",
                 "bp-1_diastolic", "bp-1_pulse", "bp-1_battery", "button-1_battery")]
    + ["homeassistant/event/homevitals_home-novak/button-1_press/config"]
)


def _acl_users(acl: str) -> dict[str, set[str]]:
    users: dict[str, set[str]] = {}
    current: set[str] = set()
    for line in acl.splitlines():
        if line.startswith("user "):
            current = users.setdefault(line.split(" ", 1)[1], set())
        elif line.startswith("topic "):
            current.add(line.split(" ", 1)[1])
    return users


def test_the_sample_config_gives_each_daemon_a_user_the_acl_knows() -> None:
    cfg = load_config(SAMPLE)
    users = _acl_users(mosquitto_acl(cfg))
    logins = {d: cfg.mqtt_for(d).username for d in ("gateway", "ingest", "rules", "alerts")}
    assert None not in logins.values() and len(set(logins.values())) == 4, logins
    assert set(logins.values()) == set(users)
    assert "read homevitals/v1/alert/+/+" in users[logins["ingest"]]
    assert "write homeassistant/+/homevitals_home-novak/+/config" in users[logins["gateway"]]
    assert not any(t.startswith("write homevitals/v1/home/") for t in users[logins["ingest"]])


def _site(tmp: Path, port: int, influx_url: str, db: str, twilio_url: str) -> dict[str, Any]:
    text = resources.files("homevitals.simulators").joinpath("households/demo.yaml").read_text(
        "utf-8"
    )
    data: dict[str, Any] = yaml.safe_load(text)
    data["mqtt"] = {"host": "127.0.0.1", "port": port}
    data["store"] = {"kind": "influx_v1", "url": influx_url, "database": db}
    data["gateway"].update(
        queue_path=str(tmp / "gw-queue.sqlite"), home_assistant={"enabled": True}
    )
    data["rules"]["state_path"] = str(tmp / "rules.sqlite")
    data["ingest"] = {"metrics": {"port": free_port()}}
    data["alerts"] = {
        "notifier": "twilio",
        "outbox_path": str(tmp / "ledger.sqlite"),
        "twilio": {"from_number": SENDER, "api_base_url": twilio_url},
    }
    for daemon, (user, password) in USERS.items():
        secret = tmp / f"{daemon}.mqtt-password"
        secret.write_text(password + "\n", encoding="utf-8")
        data[daemon]["mqtt"] = {"username": user, "password_file": str(secret)}
    return data


def _retained(port: int, topic: str, n: int) -> list[str]:
    got: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-observer")
    client.username_pw_set(*OBSERVER)

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            got.append(msg.topic)
        if len(got) >= n:
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(topic, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(10)
    time.sleep(0.3)  # room for more than expected
    client.disconnect()
    client.loop_stop()
    return sorted(got)


@pytest.fixture
def standin() -> Any:
    with TwilioStandin() as s:
        yield s


def test_household_with_every_daemon_under_its_own_acl_user(
    tmp_path: Path, mosquitto_factory: Any, influxd: Any, influx_db: str, standin: TwilioStandin
) -> None:
    port = free_port()
    site = _site(tmp_path, port, influxd.url, influx_db, standin.base_url)
    acl = tmp_path / "homevitals.acl"
    acl.write_text(
        mosquitto_acl(Config.model_validate(site))
        + f"\nuser {OBSERVER[0]}\ntopic read homeassistant/#\n",
        encoding="utf-8",
    )
    logins = dict([*USERS.values(), OBSERVER])
    passwords = make_password_file(tmp_path / "passwd", logins)
    broker = mosquitto_factory(port=port, password_file=passwords, acl_file=acl)
    cfg = write_config(tmp_path / "homevitals.yaml", site)
    env = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
    daemons = [Daemon(name, cfg, tmp_path, env=env) for name in ("ingest", "rules", "alerts")]
    try:
        for d in daemons:
            d.wait_log("ready: subscribed")
        gateway = Daemon("gateway", cfg, tmp_path, "--simulate", "demo")
        assert gateway.wait(60) == 0, gateway.log()
        assert "9 published, 9 acknowledged, 0 still queued on disk" in gateway.log()

        store = InfluxV1Store(influxd.url, influx_db)
        for measurement, n in (("glucose", 6), ("blood_pressure", 2), ("event", 1)):
            wait_until(f"{n} {measurement} rows",
                       lambda m=measurement, k=n: len(store.query_readings(m, "ana", *SPAN)) == k)
        # The alert decisions reach InfluxDB too: ingest may read the alert topics.
        alerts = wait_until("3 alert rows", lambda: len(
            r := store.query_readings("alert", "ana", *SPAN)) == 3 and r)
        assert sorted((r["rule"], r["state"]) for r in alerts) == [
            ("call-button", "firing"), ("night-low-glucose", "firing"),
            ("night-low-glucose", "resolved")]
        wait_until("3 SMS", lambda: len(standin.messages) >= 3, timeout=30)
        assert {m.to for m in standin.messages} == {DOCTOR} and len(standin.messages) == 3
        # The gateway may write its Home Assistant discovery configs; they are kept retained.
        assert _retained(broker.port, "homeassistant/#", len(DISCOVERY)) == DISCOVERY
        # Ingest may read Mosquitto's $SYS drop counter.
        page = wait_until("the broker's drop count", lambda: (
            p := _get(site["ingest"]["metrics"]["port"])) and
            "homevitals_broker_messages_dropped 0.0" in p and p)
        assert "homevitals_broker_messages_stored" in page
        for d in [*daemons, gateway]:
            assert "Not authorized" not in d.log() and "refused" not in d.log(), d.log()
        for d in daemons:
            assert d.terminate() == 0, d.log()
    finally:
        for d in daemons:
            d.kill()


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_a_daemon_without_its_own_user_falls_back_to_the_shared_one() -> None:
    site = load_config(SAMPLE).model_dump(mode="json", exclude_none=True)
    site["mqtt"].update(username="homevitals-server", password_env="MQTT_PW")
    for daemon in ("rules", "alerts"):
        del site[daemon]["mqtt"]
    site["gateway"]["home_assistant"] = {"enabled": True, "discovery_prefix": "ha"}
    cfg = Config.model_validate(site)
    assert cfg.mqtt_for("ingest").username == "homevitals-ingest"
    assert cfg.mqtt_for("ingest").password_file == "/etc/homevitals/mqtt-password-ingest"
    assert cfg.mqtt_for("ingest").password_env is None  # the daemon's own secret, not the shared
    assert cfg.mqtt_for("rules").username == "homevitals-server"
    assert cfg.mqtt_for("rules").host == cfg.mqtt_for("ingest").host == "mqtt.health-centre.example"
    users = _acl_users(mosquitto_acl(cfg))
    assert set(users) == {"gw-home-novak", "homevitals-ingest", "homevitals-server"}
    # The shared user holds the rights of both daemons that log in with it, and no more.
    assert users["homevitals-server"] == {
        "read homevitals/v1/home/+/reading/+", "read homevitals/v1/home/+/event/+",
        "read homevitals/v1/home/+/status", "read homevitals/v1/home/+/heartbeat",
        "write homevitals/v1/alert/+/+", "write homevitals/v1/deadletter/rules/+",
        "read homevitals/v1/alert/+/+", "write homevitals/v1/deadletter/alerts/+",
    }
    assert "write ha/+/homevitals_home-novak/+/config" in users["gw-home-novak"]
