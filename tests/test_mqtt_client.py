"""homevitals.infra.mqtt.BufferedClient (ingest's fast receive path) against the real Mosquitto:
paho's protocol with buffered reads, PUBACKs written many at a time, and on_message called
without the per-topic trie."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from servers import Mosquitto

from homevitals.infra import paho_internals
from homevitals.infra.mqtt import (
    BufferedClient,
    PublishError,
    connect_async,
    disconnect,
    make_client,
    publish,
)
from homevitals.vocab.config import MqttConfig

# Around the edges of MQTT's remaining-length encoding (1, 2, 3 bytes) and larger than the
# 64 KiB read buffer, so packets start, end and span anywhere in it.
SIZES = [0, 1, 100, 123, 124, 16_000, 16_380, 16_384, 70_000, 200_000]


def _payload(i: int) -> bytes:
    size = SIZES[i % len(SIZES)]
    stamp = f"{i:06d}".encode()
    return (stamp * (size // len(stamp) + 1))[:size] if size >= len(stamp) else stamp[:size]


def _publisher(port: int) -> mqtt.Client:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    return pub


def _stop(*clients: mqtt.Client) -> None:
    for c in clients:
        disconnect(c)  # paho's own loop thread (publishers) or homevitals' Connection
        c.loop_stop()


class _Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, int, bool]] = []
        self.cond = threading.Condition()

    def on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append((msg.topic, msg.payload, msg.mid, msg.dup))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[str, bytes, int, bool]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, timeout)
            return list(self.got)


def _start(client: BufferedClient, cfg: MqttConfig, topic: str) -> None:
    """Connect (callbacks set first: the CONNACK may come at once) and subscribe."""
    done = threading.Event()
    client.on_subscribe = lambda *_a: done.set()
    connected = threading.Event()
    client.on_connect = lambda c, *_a: (c.subscribe(topic, qos=1), connected.set())
    connect_async(client, cfg)
    assert connected.wait(10), "no CONNACK from the broker"
    assert done.wait(10), "no SUBACK from the broker"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_byte_arrives_in_order(mosquitto: Mosquitto, protocol: str) -> None:
    cfg = MqttConfig(port=mosquitto.port, protocol=protocol)
    sub = make_client(cfg, f"buffered-{protocol}", fast_receive=True)
    assert isinstance(sub, BufferedClient)
    inbox = _Inbox()
    sub.on_message = inbox.on_message
    _start(sub, cfg, f"hv/buffered/{protocol}/#")
    pub = _publisher(mosquitto.port)
    try:
        sent = [(f"hv/buffered/{protocol}/{i % 7}", _payload(i)) for i in range(600)]
        for topic, payload in sent:
            pub.publish(topic, payload, qos=1)
        got = inbox.wait_for(len(sent))
        assert [(t, p) for t, p, _m, _d in got] == sent
    finally:
        _stop(pub, sub)


def test_ack_many_acknowledges_what_it_names_and_only_that(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 messages; the first 150 are acknowledged with ack_many (7 PUBACKs per write), the
    rest not. After a reconnect the persistent session gets exactly those 50 again."""
    monkeypatch.setattr(paho_internals, "_ACK_CHUNK", 7)
    cfg = MqttConfig(port=mosquitto.port)
    topic = "hv/acks/r"

    def subscriber(inbox: _Inbox) -> BufferedClient:
        c = make_client(cfg, "ack-many", clean_start=False, session_expiry=300, manual_ack=True,
                        fast_receive=True)
        assert isinstance(c, BufferedClient)
        c.on_message = inbox.on_message
        _start(c, cfg, topic)
        return c

    first = _Inbox()
    sub = subscriber(first)
    pub = _publisher(mosquitto.port)
    acked = 0
    try:
        for i in range(200):
            pub.publish(topic, f"{i}".encode(), qos=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = first.wait_for(min(acked + 1, 200), 1)
            todo = [(m, 1) for _t, p, m, _d in got[acked:] if int(p) < 150]
            sub.ack_many(todo)
            acked += len(todo)
            if len(got) >= 200:
                break
        got = first.wait_for(200)
        assert sorted(int(p) for _t, p, _m, _d in got) == list(range(200))
        time.sleep(0.5)  # the PUBACKs leave before the DISCONNECT in any case; be generous
    finally:
        _stop(sub)
    second = _Inbox()
    sub = subscriber(second)
    try:
        again = second.wait_for(50, 10)
        time.sleep(0.5)  # anything more would arrive now
        assert sorted(int(p) for _t, p, _m, _d in second.got) == list(range(150, 200))
        assert all(dup for *_r, dup in again)
    finally:
        _stop(sub, pub)


def test_topic_callbacks_still_route(mosquitto: Mosquitto) -> None:
    cfg = MqttConfig(port=mosquitto.port)
    sub = make_client(cfg, "routed", fast_receive=True)
    general, special = _Inbox(), _Inbox()
    sub.on_message = general.on_message
    sub.message_callback_add("hv/route/special/#", special.on_message)
    _start(sub, cfg, "hv/route/#")
    pub = _publisher(mosquitto.port)
    try:
        pub.publish("hv/route/special/x", b"s", qos=1)
        pub.publish("hv/route/plain", b"p", qos=1)
        assert [p for _t, p, _m, _d in special.wait_for(1, 10)] == [b"s"]
        assert [p for _t, p, _m, _d in general.wait_for(1, 10)] == [b"p"]
    finally:
        _stop(pub, sub)


def test_properties_flags_and_automatic_acks_survive_the_fast_path(mosquitto: Mosquitto) -> None:
    """A PUBLISH with no properties is decoded without paho's Properties object; one with
    properties goes through paho's own decoding. Either way the subscriber sees what was sent:
    properties, QoS, the retain flag; and automatic PUBACKs still reach the broker."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    cfg = MqttConfig(port=mosquitto.port)
    got: list[mqtt.MQTTMessage] = []
    arrived = threading.Condition()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with arrived:
            got.append(msg)
            arrived.notify_all()

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="props-pub",
                      protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    pub.publish("hv/props/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
    sub = make_client(cfg, "props-sub", clean_start=False, session_expiry=300, fast_receive=True)
    sub.on_message = on_message
    _start(sub, cfg, "hv/props/#")
    try:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("site", "clinic-7")]
        props.ContentType = "application/json"
        pub.publish("hv/props/with", b"{}", qos=1, properties=props).wait_for_publish(5)
        pub.publish("hv/props/plain", b"p1", qos=1).wait_for_publish(5)
        pub.publish("hv/props/zero", b"p0", qos=0).wait_for_publish(5)
        with arrived:
            arrived.wait_for(lambda: len(got) >= 4, 10)
        by_topic = {m.topic: m for m in got}
        assert sorted(by_topic) == [
            "hv/props/plain", "hv/props/retained", "hv/props/with", "hv/props/zero"
        ]
        retained, with_props = by_topic["hv/props/retained"], by_topic["hv/props/with"]
        plain, zero = by_topic["hv/props/plain"], by_topic["hv/props/zero"]
        assert (retained.payload, retained.retain, retained.qos) == (b"kept", True, 1)
        assert with_props.properties.UserProperty == [("site", "clinic-7")]
        assert with_props.properties.ContentType == "application/json"
        assert (plain.payload, plain.qos, plain.retain, plain.dup) == (b"p1", 1, False, False)
        assert (zero.payload, zero.qos) == (b"p0", 0)
        assert plain.properties.json() == {}
        with pytest.raises(AttributeError, match="read-only"):
            plain.properties.ContentType = "text/plain"
    finally:
        _stop(sub)
    # Automatic acknowledgement: nothing comes back to the persistent session.
    again: list[mqtt.MQTTMessage] = []
    sub = make_client(cfg, "props-sub", clean_start=False, session_expiry=300, fast_receive=True)
    sub.on_message = lambda _c, _u, m: again.append(m)
    _start(sub, cfg, "hv/props/none-of-these")
    try:
        time.sleep(1.0)  # room for anything the session still held to arrive, were there any
        assert [m.topic for m in again] == []
    finally:
        pub.publish("hv/props/retained", b"", qos=1, retain=True).wait_for_publish(5)
        _stop(sub, pub)


def test_only_ingest_gets_the_fast_receive_path(mosquitto: Mosquitto) -> None:
    """The gateway, rules and alerts get plain paho, kept connected by composition."""
    cfg = MqttConfig(port=mosquitto.port)
    plain = make_client(cfg, "plain")
    assert type(plain) is mqtt.Client
    assert isinstance(make_client(cfg, "fast", fast_receive=True), BufferedClient)
    inbox = _Inbox()
    plain.on_message = inbox.on_message
    _start(plain, cfg, "hv/plain/#")
    pub = _publisher(mosquitto.port)
    try:
        pub.publish("hv/plain/x", b"plain", qos=1)
        assert [p for _t, p, _m, _d in inbox.wait_for(1, 10)] == [b"plain"]
    finally:
        _stop(pub, plain)


class _Renamed:
    """A descriptor that hides an inherited name, as if a paho release had renamed it."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError("renamed in this paho")


def test_a_missing_internal_falls_back_to_plain_paho(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class NoPacketRead(BufferedClient):
        _packet_read = _Renamed()

    monkeypatch.setattr(paho_internals, "FAST_CLIENT", NoPacketRead)
    cfg = MqttConfig(port=mosquitto.port)
    sub = make_client(cfg, "fallback", fast_receive=True)
    assert type(sub) is mqtt.Client
    assert "lacks _packet_read, which the fast receive path relies on" in caplog.text
    inbox = _Inbox()
    sub.on_message = inbox.on_message
    _start(sub, cfg, "hv/fallback/#")
    pub = _publisher(mosquitto.port)
    try:
        pub.publish("hv/fallback/x", b"still here", qos=1)
        assert [p for _t, p, _m, _d in inbox.wait_for(1, 10)] == [b"still here"]
    finally:
        _stop(pub, sub)


def test_a_publish_paho_does_not_take_raises_publish_error(mosquitto: Mosquitto) -> None:
    """paho's return codes are never ignored: QoS 0 while disconnected is lost, and a full queue
    takes nothing; QoS 1 while disconnected is kept by paho and sent once connected."""
    cfg = MqttConfig(port=mosquitto.port)
    client = make_client(cfg, "refused")
    with pytest.raises(PublishError, match="hv/refused/0: The client is not currently connected"):
        publish(client, "hv/refused/0", b"lost", qos=0)
    client.max_queued_messages_set(1)
    kept = publish(client, "hv/refused/1", b"kept", qos=1)
    with pytest.raises(PublishError, match="hv/refused/2: .*queue") as err:
        publish(client, "hv/refused/2", b"no room", qos=1)
    assert err.value.rc == mqtt.MQTT_ERR_QUEUE_SIZE
    inbox = _Inbox()
    watcher = make_client(cfg, "refused-watcher")
    watcher.on_message = inbox.on_message
    _start(watcher, cfg, "hv/refused/#")
    _start(client, cfg, "hv/unused")
    try:
        assert kept.rc == mqtt.MQTT_ERR_NO_CONN  # and yet it is delivered:
        assert [(t, p) for t, p, _m, _d in inbox.wait_for(1, 10)] == [("hv/refused/1", b"kept")]
    finally:
        _stop(client, watcher)
