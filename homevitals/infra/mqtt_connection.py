"""Keeping one paho client connected, through paho's public API only (composition, as aiomqtt
wraps paho rather than subclassing it).

One thread of ours per client runs paho's ``reconnect()`` and ``loop()``: paho's own protocol,
callbacks, QoS 1 retries and keepalive, with our reconnect policy around them:

- reconnects wait a jittered, growing delay (``homevitals.infra.backoff``; paho's own doubles
  without jitter, and a fleet cut off together would come back in lock-step), reset by every
  accepted CONNACK;
- a failed attempt is logged once, with the broker's address, TLS or not, the socket error and
  when the next attempt comes.

The thread calls ``on_pre_connect`` before each attempt, so ``homevitals.infra.mqtt_watch`` knows it
as the network thread; callbacks run in it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from homevitals.infra.backoff import Backoff

__all__ = ["RECONNECT_MAX_SECONDS", "RECONNECT_MIN_SECONDS", "Connection"]

logger = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0
# paho's loop() waits at most this long in select(); a publish from another thread wakes it.
_LOOP_SECONDS = 1.0


class Connection:
    """``addresses``: the broker nodes of a cluster (docs/cluster.md), tried in turn; a failed
    attempt or a lost connection moves to the next, and a whole round without a CONNACK waits
    the backoff delay. One address: the single broker, as before."""

    def __init__(self, client: mqtt.Client, where: str, tls: bool,
                 addresses: list[tuple[str, int]] | None = None,
                 retarget: Callable[[str, int], None] | None = None) -> None:
        self.client = client
        self.where = where
        self.tls = tls
        self.addresses = addresses or []
        self._retarget = retarget  # points the client at another node (homevitals.infra.mqtt)
        self._next = 0  # index of the address in use
        self._failed_in_round = 0
        self.backoff = Backoff(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"mqtt-{where}", daemon=True)

    def start(self) -> None:
        """Connect in the background and stay connected; callbacks must be set by now."""
        previous = self.client.on_connect

        def on_connect(c: mqtt.Client, userdata: Any, *args: Any) -> None:
            reason = args[1] if len(args) > 1 else None
            if not getattr(reason, "is_failure", bool(reason)):
                self.backoff.reset()
                self._failed_in_round = 0
            if previous is not None:
                previous(c, userdata, *args)

        self.client.on_connect = on_connect
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send DISCONNECT (what is queued goes first) and end the thread."""
        self.client.disconnect()
        self._stop.set()
        self.thread.join(timeout)

    def halt(self, timeout: float = 5.0) -> None:
        """End the thread without a DISCONNECT: the connection stays open and unserved, as if
        the network thread had died (fault injection, health tests)."""
        self._stop.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.reconnect()
            except OSError as exc:
                delay = self._failed()
                logger.warning(
                    "cannot reach the MQTT broker at %s (%s): %s; next attempt in %.1f s",
                    self.where, "TLS" if self.tls else "no TLS", exc, delay,
                )
                self._stop.wait(delay)
                continue
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stop.is_set():
                rc = self.client.loop(_LOOP_SECONDS)
            if not self._stop.is_set():
                self._stop.wait(self._failed())
        self._flush()

    def _failed(self) -> float:
        """Move to the next broker of the list; the delay before trying it: none while the
        round of the list is not over, the backoff's after a whole round failed."""
        if len(self.addresses) < 2 or self._retarget is None:
            return self.backoff.next()
        self._failed_in_round += 1
        self._next = (self._next + 1) % len(self.addresses)
        host, port = self.addresses[self._next]
        self._retarget(host, port)
        self.where = f"{host}:{port}"
        if self._failed_in_round < len(self.addresses):
            return 0.1 * random.uniform(0.5, 1.5)  # jitter: a fleet must not move in step
        self._failed_in_round = 0
        return self.backoff.next()

    def _flush(self) -> None:
        """After ``stop``: let the DISCONNECT (and what was queued before it) leave."""
        for _ in range(50):
            if not self.client.want_write():
                return
            if self.client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
