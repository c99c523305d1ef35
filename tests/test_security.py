"""Security on the MQTT link, against a real Mosquitto: TLS with a CA made by the test, user and
password authentication, an ACL that keeps each home's gateway in its own subtree, and an ingest
that refuses a payload whose home does not match its topic."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from certs import make_tls_files
from daemons import Daemon, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from servers import make_password_file

from homevitals.infra.acl import mosquitto_acl
from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire

PASSWORDS = {
    "gw-home-novak": "gw-secret",
    "gw-home-other": "other-secret",
    "homevitals-ingest": "ingest-secret",
}
SPAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def _site(tmp: Path) -> dict[str, Any]:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    other = {
        "id": "home-other",
        "timezone": "Europe/Vienna",
        "patients": [
            {
                "id": "bor",
                "name": "Bor Kos",
                "care_team": [{"name": "Dr. K", "role": "family_doctor", "phone": "+15550100009"}],
            }
        ],
    }
    base["homes"].append(other)
    base["gateway"]["queue_path"] = str(tmp / "queue.sqlite")
    return base


@pytest.fixture
def secured(
    tmp_path: Path, mosquitto_factory: Any
) -> tuple[Any, dict[str, Any], tuple[Path, Path, Path]]:
    site = _site(tmp_path)
    from homevitals.vocab.config import Config

    acl = tmp_path / "acl"
    acl.write_text(mosquitto_acl(Config.model_validate(site)), encoding="utf-8")
    tls = make_tls_files(tmp_path / "tls")
    broker = mosquitto_factory(
        password_file=make_password_file(tmp_path / "passwd", PASSWORDS),
        acl_file=acl,
        tls_files=tls,
    )
    return broker, site, tls


def _mqtt(
    broker: Any, tls: tuple[Path, Path, Path], user: str, secret_file: Path
) -> dict[str, Any]:
    secret_file.write_text(PASSWORDS.get(user, "wrong") + "\n", encoding="utf-8")
    return {
        "host": "127.0.0.1",
        "port": broker.tls_port,
        "username": user,
        "password_file": str(secret_file),
        "tls": {"enabled": True, "ca_file": str(tls[0])},
    }


def test_gateway_and_ingest_over_tls_with_passwords(
    tmp_path: Path, secured: Any, influxd: Any, influx_db: str
) -> None:
    broker, site, tls = secured
    store = {"kind": "influx_v1", "url": influxd.url, "database": influx_db}
    ingest_cfg = write_config(
        tmp_path / "ingest.yaml",
        {
            **site,
            "store": store,
            "mqtt": _mqtt(broker, tls, "homevitals-ingest", tmp_path / "ingest-pw"),
        },
    )
    gw_cfg = write_config(
        tmp_path / "gw.yaml",
        {**site, "mqtt": _mqtt(broker, tls, "gw-home-novak", tmp_path / "gw-pw")},
    )
    ingest = Daemon("ingest", ingest_cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        gateway = Daemon("gateway", gw_cfg, tmp_path, "--simulate", "demo")
        assert gateway.wait(90) == 0, gateway.log()
        assert "9 published, 9 acknowledged, 0 still queued on disk" in gateway.log()
        rows = wait_until(
            "6 glucose rows",
            lambda: (
                len(
                    r := InfluxV1Store(influxd.url, influx_db).query_readings(
                        "glucose", "ana", *SPAN
                    )
                )
                == 6
                and r
            ),
        )
        assert sorted(r["glucose"] for r in rows) == [3.4, 3.6, 5.8, 6.1, 7.2, 8.4]
        assert ingest.terminate() == 0
    finally:
        ingest.kill()


def test_wrong_password_is_refused_and_nothing_is_lost(tmp_path: Path, secured: Any) -> None:
    broker, site, tls = secured
    mqtt_cfg = _mqtt(broker, tls, "gw-home-novak", tmp_path / "gw-pw")
    (tmp_path / "gw-pw").write_text("not-the-password\n", encoding="utf-8")
    gateway = Daemon(
        "gateway",
        write_config(tmp_path / "gw.yaml", {**site, "mqtt": mqtt_cfg}),
        tmp_path,
        "--simulate",
        "demo",
    )
    try:
        gateway.wait_log("broker refused the connection", timeout=30)
        assert "Bad user name or password" in gateway.log() or "Not authorized" in gateway.log()
        assert gateway.wait(90) == 0  # the simulation ends; the readings stay on disk
        assert "0 published, 0 acknowledged, 9 still queued on disk" in gateway.log()
    finally:
        gateway.kill()


def test_a_client_without_the_ca_cannot_connect(tmp_path: Path, secured: Any) -> None:
    broker, _site_, _tls = secured
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="no-ca")
    client.username_pw_set("gw-home-novak", PASSWORDS["gw-home-novak"])
    client.tls_set()  # the system's CAs, which never signed the test's server certificate
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        client.connect("127.0.0.1", broker.tls_port)


class _Client:
    def __init__(self, broker: Any, tls: tuple[Path, Path, Path], user: str) -> None:
        self.got: list[str] = []
        self.acks: dict[int, Any] = {}
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=mqtt.MQTTv5
        )
        self.c.username_pw_set(user, PASSWORDS[user])
        self.c.tls_set(ca_certs=str(tls[0]))
        self.c.on_connect = lambda *_a: self.connected.set()
        self.c.on_subscribe = lambda *_a: self.subscribed.set()
        self.c.on_message = lambda _c, _u, m: self.got.append(m.topic)
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc)
        self.c.connect("127.0.0.1", broker.tls_port)
        self.c.loop_start()
        assert self.connected.wait(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_acl_keeps_each_gateway_in_its_own_home(secured: Any) -> None:
    broker, _site_, tls = secured
    ingest = _Client(broker, tls, "homevitals-ingest")
    gateway = _Client(broker, tls, "gw-home-novak")
    try:
        ingest.c.subscribe("homevitals/v1/home/+/reading/+", qos=1)
        assert ingest.subscribed.wait(10)  # the SUBACK: the broker delivers from now on
        own = gateway.c.publish("homevitals/v1/home/home-novak/reading/bp-1", b"{}", qos=1)
        foreign = gateway.c.publish("homevitals/v1/home/home-other/reading/bp-9", b"{}", qos=1)
        own.wait_for_publish(5)
        foreign.wait_for_publish(5)
        wait_until("the own-home message", lambda: ingest.got, 10)
        time.sleep(1.0)  # room for the foreign one to arrive, were it let through
        assert ingest.got == ["homevitals/v1/home/home-novak/reading/bp-1"]
        # MQTT 5: the broker says why in the PUBACK (0x87 Not authorized).
        assert not gateway.acks[own.mid].is_failure
        assert str(gateway.acks[foreign.mid]) == "Not authorized"
    finally:
        ingest.close()
        gateway.close()


def test_ingest_refuses_a_payload_whose_home_does_not_match_its_topic(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str
) -> None:
    site = _site(tmp_path)
    cfg = write_config(
        tmp_path / "hv.yaml",
        {
            **site,
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
            "store": {"kind": "influx_v1", "url": influxd.url, "database": influx_db},
        },
    )
    ingest = Daemon("ingest", cfg, tmp_path)
    try:
        ingest.wait_log("ready: subscribed")
        from test_wire import _reading

        payload = wire.encode(_reading(home="home-novak", device="bp-1"))
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spoofer")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish("homevitals/v1/home/home-other/reading/bp-1", payload, qos=1).wait_for_publish(
            5
        )
        pub.disconnect()
        pub.loop_stop()
        store = InfluxV1Store(influxd.url, influx_db)
        rejected = wait_until(
            "a rejected row", lambda: store.query_readings("rejected", None, *SPAN)
        )
        assert [(r["reason"], r["error"]) for r in rejected] == [
            (
                "topic_mismatch",
                "payload names home 'home-novak' device 'bp-1' but its topic is"
                " home 'home-other' device 'bp-1'",
            )
        ]
        assert store.query_readings("blood_pressure", None, *SPAN) == []
    finally:
        ingest.kill()
