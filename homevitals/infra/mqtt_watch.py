"""The health of one paho client, seen only through paho's public callbacks.

paho's network loop runs in the thread of ``homevitals.infra.mqtt_connection.Connection``, and paho
calls our callbacks (``on_message`` ...) in that thread. Once the owner has set its callbacks,
``install`` wraps them, and the watch knows:

- which thread is the network thread: the one that calls ``on_pre_connect`` before each
  connection attempt (paho 2.x, ``Client.reconnect``), so nothing reads a private ``_thread``;
- whether that thread is inside one of our callbacks, since when, and whether it still makes
  progress there (a handler that waits on purpose, e.g. for room in a full backlog, ``beat``s);
- whether the session is up (successful CONNACK, no disconnect since) and subscribed (SUBACK).

``connected`` holds only while the session is up, paho's thread runs, and that thread has not
been held in a callback for longer than the keepalive: by then nothing has been read or answered
for a keepalive, and the broker drops the session at 1.5 times the keepalive (MQTT 5 section
3.1.2.10), while paho, blocked, could not yet tell us.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from homevitals.infra.mqtt import reason_failed
from homevitals.infra.runtime import Condition, Progress, Worker, thread_worker
from homevitals.vocab.config import MqttConfig

__all__ = ["MqttWatch"]

_WATCHED = ("on_connect", "on_disconnect", "on_subscribe", "on_message")


class MqttWatch:
    def __init__(self, cfg: MqttConfig) -> None:
        self.where = f"{cfg.host}:{cfg.port}"
        self.keepalive = cfg.keepalive
        self.handler = Progress()
        self.handler.idle()
        self.thread: threading.Thread | None = None
        self._up = False
        self._subscribed: str | None = "waiting for the first connection"
        self._in = ""  # the callback paho's thread is in (or was in last)
        self._topic: str | None = None  # of the message, when that callback is on_message

    def install(self, client: mqtt.Client) -> None:
        """Wrap the client's callbacks; call after setting them, before connecting."""
        previous = client.on_pre_connect

        def on_pre_connect(c: mqtt.Client, userdata: Any) -> None:
            self.thread = threading.current_thread()
            if previous is not None:
                previous(c, userdata)

        client.on_pre_connect = on_pre_connect
        for name in _WATCHED:
            callback = getattr(client, name)
            if callback is not None:
                timed = self._timed_message if name == "on_message" else self._timed
                setattr(client, name, timed(name, callback))

    def _timed(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        handler, track = self.handler, getattr(self, f"_track_{name.removeprefix('on_')}")

        def timed(*args: Any) -> Any:
            self._in, self._topic = name, None
            handler.beat()
            track(args)
            try:
                return callback(*args)
            finally:
                handler.idle()

        return timed

    def _timed_message(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """As ``_timed``, lean: it runs for every message (ingest's hot path)."""
        handler = self.handler

        def timed(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> Any:
            self._in, self._topic = name, msg.topic
            handler.beat()
            try:
                return callback(client, userdata, msg)
            finally:
                handler.idle()

        return timed

    # Each gets paho's callback arguments (callback API version 2).
    def _track_connect(self, args: tuple[Any, ...]) -> None:
        self._up = not reason_failed(args[3])
        self._subscribed = "waiting for the broker's SUBACK"

    def _track_disconnect(self, _args: tuple[Any, ...]) -> None:
        self._up = False
        self._subscribed = "not connected"

    def _track_subscribe(self, args: tuple[Any, ...]) -> None:
        refused = [str(rc) for rc in args[3] if reason_failed(rc)]
        self._subscribed = f"the broker refused: {', '.join(refused)}" if refused else None

    # --- what the runner asks ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._broker_problem() is None

    def workers(self) -> list[Worker]:
        return [
            thread_worker("mqtt-network", lambda: self.thread),
            Worker("mqtt-handler", self._handler_problem),
        ]

    def conditions(self, *, subscribed: bool = True) -> list[Condition]:
        out = [Condition("broker", self._broker_problem)]
        if subscribed:
            out.append(Condition("subscription", lambda: self._subscribed))
        return out

    def _handler_problem(self, stall: float) -> str | None:
        age = self.handler.stalled(stall)
        if age is None:
            return None
        return f"stuck in {self._where_in()} for {age:.0f} s (stalled)"

    def _where_in(self) -> str:
        return self._in if self._topic is None else f"{self._in} ({self._topic})"

    def _broker_problem(self) -> str | None:
        if self.thread is None:
            return f"not connected to {self.where} yet"
        if not self.thread.is_alive():
            return "paho's network thread has ended: nothing is received or sent"
        held = self.handler.busy_for()
        if held > self.keepalive:
            return (f"paho's network thread held {held:.0f} s in {self._where_in()}, past the"
                    f" keepalive ({self.keepalive} s): the broker no longer counts on this session")
        return None if self._up else f"not connected to {self.where}"
