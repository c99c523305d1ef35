"""The one module that touches paho's private names (ruff SLF001 keeps them out elsewhere).

``BufferedClient``, ingest's fast receive path (``make_client(..., fast_receive=True)``), is a
subclass of paho's ``Client`` that relies on the private names in FAST_RECEIVE_NAMES. It is used
only when the installed paho has every one of them (``missing``, checked when ingest builds its
client); otherwise ingest runs on plain paho and a WARNING names what is missing. Every other
client is plain paho, kept connected by composition (homevitals/infra/mqtt_connection.py).

The names are the same in paho 2.1 and 2.2; scripts/test.sh runs tests/test_mqtt_client.py and
tests/test_paho_fallback.py against both (the lowest allowed version in ``.venv-paho-min``).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = [
    "FAST_RECEIVE_NAMES",
    "BufferedClient",
    "client_class",
    "missing",
]

logger = logging.getLogger(__name__)

# Every private name of paho's Client that the class below reads, calls or overrides.
FAST_RECEIVE_NAMES = (
    "_create_socket", "_handle_publish", "_handle_on_message", "_packet_read", "_loop_rc_handle",
    "_packet_queue", "_send_puback", "_easy_log", "_in_packet", "_sock", "_protocol",
    "_manual_ack", "_in_callback_mutex", "_userdata",
)

# One recv() from the kernel serves this many bytes of paho's small reads.
_READ_SIZE = 64 * 1024
# Packets handled per loop_read() while whole packets wait in the buffer; after that paho's loop
# runs once (PUBACKs, keepalive) before reading on.
_READ_BURST = 1000
# PUBACKs per queued write (4 bytes each).
_ACK_CHUNK = 1024
PUBACK = PacketTypes.PUBACK << 4


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
    - ``on_message`` is called without walking the per-topic callback trie when there is none.

    The protocol, callbacks, TLS and every other packet are paho's own (the private names it
    relies on: FAST_RECEIVE_NAMES); tests/test_mqtt_client.py runs it against the real Mosquitto."""

    _filtered_callbacks = False

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


def ack_many(client: mqtt.Client, acks: Iterable[tuple[int, int]]) -> None:
    """``BufferedClient.ack_many``, or one ``ack`` per message on any other client."""
    if isinstance(client, BufferedClient):
        client.ack_many(acks)
        return
    for mid, qos in acks:
        client.ack(mid, qos)


def missing(names: Iterable[str], cls: type[mqtt.Client] = mqtt.Client) -> list[str]:
    """The names of ``names`` that an instance of ``cls`` lacks (a paho release renamed them)."""
    probe = cls(CallbackAPIVersion.VERSION2)
    return [name for name in names if not hasattr(probe, name)]


# The class the guard checks; a test replaces it with a subclass that lacks a name.
FAST_CLIENT: type[mqtt.Client] = BufferedClient


def client_class(*, fast_receive: bool) -> type[mqtt.Client]:
    """``BufferedClient`` if asked for and every paho internal it needs is present; else plain
    paho, with a WARNING naming what is missing."""
    if not fast_receive:
        return mqtt.Client
    absent = missing(FAST_RECEIVE_NAMES, FAST_CLIENT)
    if not absent:
        return FAST_CLIENT
    logger.warning(
        "paho-mqtt %s lacks %s, which the fast receive path relies on: using plain paho instead",
        paho.mqtt.__version__, ", ".join(absent),
    )
    return mqtt.Client
