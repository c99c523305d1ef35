"""One way to build a paho-mqtt client from configuration, for every stage.

TLS, authentication and the protocol version are set here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from homevitals.backoff import Backoff
from homevitals.config import MqttConfig, read_secret

__all__ = ["BufferedClient", "connect_async", "make_client", "reason_failed"]

logger = logging.getLogger(__name__)

# One recv() from the kernel serves this many bytes of paho's small reads.
_READ_SIZE = 64 * 1024
# Packets handled per loop_read() while whole packets wait in the buffer; after that paho's loop
# runs once (PUBACKs, keepalive) before reading on.
_READ_BURST = 1000
# PUBACKs per queued write (4 bytes each).
_ACK_CHUNK = 1024
PUBACK = PacketTypes.PUBACK << 4
# Reconnect delays: jittered between these bounds (homevitals.backoff).
RECONNECT_MIN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0
# paho's wait before each reconnect, replaced below to add jitter; if a paho release lacks it,
# paho's own doubling (no jitter) runs instead, from a per-client random first delay.
_PAHO_RECONNECT_WAIT = callable(getattr(mqtt.Client, "_reconnect_wait", None))


class _ReadBuffered:
    """A socket whose reads come from a 64 KiB buffer that one ``recv`` fills.

    paho 2.x reads every packet with three or four ``recv`` calls (command byte, each byte of the
    remaining length, the rest) and runs ``select`` before each packet: about seven system calls
    per small PUBLISH, the largest single cost of receiving. ``pending()`` (the hook paho already
    uses for TLS sockets, whose records are buffered too) tells paho's loop that buffered bytes
    wait, so nothing is left unread while ``select`` sleeps. Everything else goes to the socket.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            data: bytes = self._sock.recv(_READ_SIZE)  # BlockingIOError etc. reach paho as before
            if not data:
                return data  # the peer closed the connection
            self._buf, self._pos = data, 0
        chunk = self._buf[self._pos : self._pos + bufsize]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _NoProperties(Properties):
    """The properties of a received PUBLISH that carried none: one shared, read-only instance
    (paho builds and clears a fresh ``Properties`` for every message, ~10 us each)."""

    def __init__(self) -> None:
        super().__init__(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho untyped
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError("the shared empty properties of received messages are read-only")
        super().__setattr__(name, value)  # type: ignore[no-untyped-call]  # paho untyped


_NO_PROPERTIES = _NoProperties()


class BufferedClient(mqtt.Client):
    """paho's client, cheaper per received message (ingest's CPU per reading went from ~113 to
    ~47 us, then lower with the PUBLISH fast path; bench/ingest_throughput.py):

    - socket reads come from a 64 KiB buffer, and ``loop_read`` handles every whole packet
      already buffered before paho's loop goes back to ``select``;
    - ``ack_many`` queues many PUBACKs as one write;
    - an MQTT 5 QoS 0/1 PUBLISH without properties is decoded without a Properties object;
    - ``on_message`` is called without walking the per-topic callback trie when there is none;
    - reconnects wait a jittered, growing delay (``backoff``), and a failed connection attempt
      is logged once with the broker's address, TLS or not, and the socket error.

    The protocol, callbacks, TLS, reconnects and every other packet are paho's own. This leans
    on paho 2.x internals (``_create_socket``, ``_handle_publish``, ``_handle_on_message``,
    ``_packet_read``, ``_packet_queue``, ``_reconnect_wait``), the same in 2.1 and 2.2;
    tests/test_mqtt_client.py runs it against the real Mosquitto."""

    _filtered_callbacks = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backoff = Backoff(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self.uses_tls = False  # set by make_client; named in the log of a failed attempt
        self._next_delay: float | None = None
        self._waited = False  # waited since the last attempt

    def reconnect(self) -> MQTTErrorCode:
        """paho's reconnect (which its loop thread calls for every attempt), logging where it
        tried and why it failed instead of paho's "Client is not connected. Socket: None"."""
        self._waited = False
        try:
            return super().reconnect()
        except OSError as exc:
            self._next_delay = self._jittered_delay()
            logger.warning(
                "cannot reach the MQTT broker at %s:%d (%s): %s; next attempt in %.1f s",
                self.host, self.port, "TLS" if self.uses_tls else "no TLS", exc, self._next_delay,
            )
            raise

    def _jittered_delay(self) -> float:
        with self._reconnect_delay_mutex:
            if self._reconnect_delay is None:  # paho clears it on every accepted CONNACK
                self.backoff.reset()
                self._reconnect_delay = 1  # any value: "attempts since the last success"
            return self.backoff.next()

    def _reconnect_wait(self) -> None:
        """paho's wait before a reconnect, the delay drawn by ``backoff`` (paho's own doubles
        the delay without jitter: a fleet cut off together would come back in lock-step).
        paho's loop waits twice after a failed first attempt (``loop_forever``'s first-connection
        loop, then its reconnect loop); one wait per attempt is kept, as logged."""
        if self._waited:
            return
        self._waited = True
        delay, self._next_delay = self._next_delay, None
        if delay is None:
            delay = self._jittered_delay()
        deadline = time.monotonic() + delay
        while not self._stopping() and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 1.0))

    def _stopping(self) -> bool:
        state = self._state.name
        return self._thread_terminate or state in ("MQTT_CS_DISCONNECTING", "MQTT_CS_DISCONNECTED")

    def _create_socket(self) -> Any:
        return _ReadBuffered(super()._create_socket())

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's handling of a QoS 0/1 MQTT 5 PUBLISH that carries no properties (what every
        homevitals publisher sends), without paho's Properties object: decoding took ~14 us
        per message, ~2 us without it. Any other PUBLISH (properties, QoS 2, MQTT 3.1.1, a
        truncated packet) goes to paho's own code."""
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != mqtt.MQTTv5 or qos == 2 or len(packet) < 2:
            return super()._handle_publish()
        topic_end = 2 + ((packet[0] << 8) | packet[1])
        props_at = topic_end + 2 if qos else topic_end
        if len(packet) <= props_at or packet[props_at] != 0:
            return super()._handle_publish()
        mid = ((packet[topic_end] << 8) | packet[topic_end + 1]) if qos else 0
        message = mqtt.MQTTMessage(mid=mid, topic=bytes(packet[2:topic_end]))
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = _NO_PROPERTIES
        message.payload = bytes(packet[props_at + 1 :])
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered_callbacks = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        """paho matches every message's topic against the per-topic callbacks first (a trie
        walk, ~7 % of ingest's time) even when there are none; without any, call on_message
        as paho would, with paho's own error handling."""
        if self._filtered_callbacks:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        sock = self._sock
        if not isinstance(sock, _ReadBuffered):
            return super().loop_read(max_packets)
        for _ in range(_READ_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN or sock.pending() == 0:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> None:
        """Acknowledge many received messages, given as (mid, qos), with one write.

        ``ack()`` queues each PUBACK as its own packet: a wake-up of paho's loop and a ``send``
        per message. Here the PUBACKs of QoS 1 messages are laid end to end (MQTT 5 allows the
        two-byte PUBACK meaning success, and 3.1.1 has no other) and queued as one write; paho
        writes it, resuming after a partial send, like any packet. QoS 2 goes through ``ack()``.
        """
        mids = []
        for mid, qos in acks:
            if qos == 1:
                mids.append(mid)
            elif qos == 2:
                self.ack(mid, qos)
        if not self._manual_ack or not mids:
            return
        for i in range(0, len(mids), _ACK_CHUNK):
            chunk = mids[i : i + _ACK_CHUNK]
            packet = struct.pack(f"!{len(chunk) * 'BBH'}", *_puback_fields(chunk))
            self._packet_queue(PUBACK, packet, 0, 1)


def _puback_fields(mids: list[int]) -> Iterator[int]:
    for mid in mids:
        yield PUBACK
        yield 2  # remaining length: the packet identifier only
        yield mid


def make_client(
    cfg: MqttConfig,
    client_id: str,
    *,
    clean_start: bool = True,
    session_expiry: int = 0,
    manual_ack: bool = False,
    receive_maximum: int | None = None,
) -> BufferedClient:
    """A paho client (callback API v2) configured for ``cfg``; not yet connected.

    ``clean_start=False`` with ``session_expiry`` > 0 asks the broker to keep the session (and
    QoS 1 messages queued for it) while the client is away, which ingest and alerts rely on.
    ``manual_ack=True`` leaves the PUBACK of each received message to ``client.ack``, sent only
    once the message is safe (written to InfluxDB, or committed to a local outbox).
    """
    v5 = cfg.protocol == "5"
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else clean_start,
        reconnect_on_failure=True,
        manual_ack=manual_ack,
    )
    client.uses_tls = cfg.tls.enabled
    if _PAHO_RECONNECT_WAIT:
        client.reconnect_delay_set(min_delay=1, max_delay=int(RECONNECT_MAX_SECONDS))
    else:  # no jitter from paho: at least a per-client first delay
        client.reconnect_delay_set(min_delay=random.randint(1, 3), max_delay=30)
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
    ``BufferedClient.reconnect`` has already logged with the address and the reason."""
    return not record.getMessage().startswith("Client is not connected")


def connect_async(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Start connecting in the background; paho's loop thread reconnects on its own after that."""
    ud = client.user_data_get() or {}
    if cfg.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho untyped
        props.SessionExpiryInterval = int(ud.get("session_expiry", 0))
        if ud.get("receive_maximum"):
            # MQTT 5 Receive Maximum: the broker sends at most this many unacknowledged QoS 1
            # messages, which bounds what a manual-ack consumer holds in memory.
            props.ReceiveMaximum = min(int(ud["receive_maximum"]), 65535)
        client.connect_async(
            cfg.host,
            cfg.port,
            keepalive=cfg.keepalive,
            clean_start=bool(ud.get("clean_start", True)),
            properties=props,
        )
    else:
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
    client.loop_start()


def reason_failed(reason_code: object) -> bool:
    """paho v2 passes ReasonCode objects (MQTT 5) or ints; both have is_failure / truthiness."""
    failure = getattr(reason_code, "is_failure", None)
    if failure is not None:
        return bool(failure)
    return bool(reason_code)
