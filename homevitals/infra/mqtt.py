"""One way to build a paho-mqtt client from configuration, for every stage.

TLS, authentication and the protocol version are set here and nowhere else. The client classes
that reach into paho's internals live in homevitals/infra/paho_internals.py, the one module allowed
to, and are used only where the installed paho has what they need.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from homevitals.infra.mqtt_connection import Connection
from homevitals.infra.paho_internals import BufferedClient, ack_many, client_class
from homevitals.vocab.config import MqttConfig, read_secret
from homevitals.vocab.errors import HomevitalsError

__all__ = [
    "BufferedClient",
    "Connection",
    "ack_many",
    "connect_async",
    "connection",
    "disconnect",
    "make_client",
    "PublishError",
    "publish",
    "reason_failed",
]

logger = logging.getLogger(__name__)

def make_client(
    cfg: MqttConfig,
    client_id: str,
    *,
    clean_start: bool = True,
    session_expiry: int = 0,
    manual_ack: bool = False,
    receive_maximum: int | None = None,
    fast_receive: bool = False,
) -> mqtt.Client:
    """A paho client (callback API v2) configured for ``cfg``; not yet connected.

    ``clean_start=False`` with ``session_expiry`` > 0 asks the broker to keep the session (and
    QoS 1 messages queued for it) while the client is away, which ingest and alerts rely on.
    ``manual_ack=True`` leaves the PUBACK of each received message to ``client.ack``, sent only
    once the message is safe (written to InfluxDB, or committed to a local outbox).
    ``fast_receive=True`` (ingest) asks for ``BufferedClient``; every client is plain paho when
    the installed paho lacks an internal name that the richer classes need (a WARNING says so).
    """
    v5 = cfg.protocol == "5"
    client = client_class(fast_receive=fast_receive)(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else clean_start,
        # reconnects are Connection's (homevitals/infra/mqtt_connection.py)
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    client.on_socket_open = _nodelay
    paho_logger = logging.getLogger(f"paho.{client_id}")
    paho_logger.addFilter(_quiet_clean_disconnect)
    client.enable_logger(paho_logger)
    password = read_secret(cfg.password_env, cfg.password_file, "mqtt.password")
    if cfg.username:
        client.username_pw_set(cfg.username, password)
    if cfg.tls.enabled:
        client.tls_set(
            ca_certs=cfg.tls.ca_file,
            certfile=cfg.tls.cert_file,
            keyfile=cfg.tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(cfg.tls.insecure)
    client.user_data_set(
        {
            "clean_start": clean_start,
            "session_expiry": session_expiry,
            "receive_maximum": receive_maximum,
        }
    )
    return client


def _nodelay(_client: object, _userdata: object, sock: Any) -> None:
    """No Nagle delay: an alert is one small packet, and Nagle's algorithm with delayed ACKs can
    hold a small packet up to 40 ms at every hop (publish, PUBACK, forward). Measured by the
    replay: a simulated CGM day went from 16.2 s to 4.8 s with TCP_NODELAY on both ends."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quiet_clean_disconnect(record: logging.LogRecord) -> bool:
    """paho 2.2's ``_loop`` logs "Client is not connected. Socket: None" at ERROR after a
    deliberate ``disconnect()`` (not an error) and after each failed connection attempt, which
    ``Connection`` has already logged with the address and the reason."""
    return not record.getMessage().startswith("Client is not connected")


def connect_async(client: mqtt.Client, cfg: MqttConfig) -> Connection:
    """Start connecting in the background; the ``Connection`` (also ``connection(client)``)
    reconnects after that, until ``disconnect(client)``. With ``cfg.brokers`` (a cluster,
    docs/cluster.md) it starts at the first node and moves to the next when one is lost."""
    ud = client.user_data_get() or {}
    props = None
    if cfg.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho untyped
        props.SessionExpiryInterval = int(ud.get("session_expiry", 0))
        if ud.get("receive_maximum"):
            # MQTT 5 Receive Maximum: the broker sends at most this many unacknowledged QoS 1
            # messages, which bounds what a manual-ack consumer holds in memory.
            props.ReceiveMaximum = min(int(ud["receive_maximum"]), 65535)

    def target(host: str, port: int) -> None:
        # paho's connect_async only records where to connect (any state): the next reconnect()
        # goes there, with the same session settings.
        if props is None:
            client.connect_async(host, port, keepalive=cfg.keepalive)
        else:
            client.connect_async(host, port, keepalive=cfg.keepalive,
                                 clean_start=bool(ud.get("clean_start", True)), properties=props)

    host, port = cfg.addresses()[0]
    target(host, port)
    conn = Connection(client, f"{host}:{port}", cfg.tls.enabled, cfg.addresses(), target)
    ud["connection"] = conn
    client.user_data_set(ud)
    conn.start()
    return conn


def connection(client: mqtt.Client) -> Connection:
    """The ``Connection`` that ``connect_async`` started for this client."""
    conn = (client.user_data_get() or {}).get("connection")
    if not isinstance(conn, Connection):
        raise HomevitalsError(
            "this MQTT client was not started by homevitals.infra.mqtt.connect_async")
    return conn


def disconnect(client: mqtt.Client, *, clean: bool = True) -> None:
    """Disconnect (DISCONNECT sent, no reconnect) and end the client's thread; ``clean=False``
    ends the thread without a DISCONNECT (``Connection.halt``). A client never started by
    ``connect_async`` gets only paho's ``disconnect``."""
    conn = (client.user_data_get() or {}).get("connection")
    if not isinstance(conn, Connection):
        if clean:
            client.disconnect()
    elif clean:
        conn.stop()
    else:
        conn.halt()


class PublishError(HomevitalsError):
    """paho did not take a message (its queue full, QoS 0 while disconnected ...)."""

    def __init__(self, topic: str, rc: MQTTErrorCode) -> None:
        super().__init__(f"paho did not take the message on {topic:.200}: {mqtt.error_string(rc)}")
        self.rc = rc


def publish(
    client: mqtt.Client, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
) -> mqtt.MQTTMessageInfo:
    """``client.publish`` with paho's return code checked. A QoS 1/2 message published while
    disconnected (MQTT_ERR_NO_CONN) is kept by paho and sent once the session is back, so that
    one is taken; any other code other than success raises ``PublishError``."""
    info = client.publish(topic, payload, qos=qos, retain=retain)
    rc = MQTTErrorCode(info.rc)
    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0):
        return info
    raise PublishError(topic, rc)


def reason_failed(reason_code: object) -> bool:
    """paho v2 passes ReasonCode objects (MQTT 5) or ints; both have is_failure / truthiness."""
    failure = getattr(reason_code, "is_failure", None)
    if failure is not None:
        return bool(failure)
    return bool(reason_code)
