"""Embedded defaults for the demo and for a single household: an MQTT broker with nothing to
install by hand and no root.

Debian's ``mosquitto`` binary is used when it is on the machine (started as a child process on a
free loopback port); otherwise amqtt runs inside this process. Measured on the project's 2-core
machine (bench/broker_embedded.py): Mosquitto carries far more than a household needs, and so does
amqtt (MQTT 3.1.1 only, so clients speak 3.1.1 to it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from homevitals.vocab.errors import HomevitalsError

__all__ = ["EmbeddedBroker", "free_port"]

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise HomevitalsError(
        f"the embedded MQTT broker did not open 127.0.0.1:{port} within {seconds:.0f} s"
    )


class EmbeddedBroker:
    """``with EmbeddedBroker() as b:`` gives ``b.port`` and ``b.protocol`` ("5" or "3.1.1")."""

    def __init__(self, prefer: str = "auto") -> None:
        self.port = free_port()
        self.kind = "mosquitto" if prefer != "amqtt" and _mosquitto() else "amqtt"
        self.protocol = "5" if self.kind == "mosquitto" else "3.1.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EmbeddedBroker:
        if self.kind == "mosquitto":
            self._start_mosquitto()
            _wait_port(self.port, 15)
        else:
            self._start_amqtt()  # returns once its listener is open (no probe: amqtt logs
            # an ERROR for a connection that sends no MQTT packet)
        logger.info("embedded broker: %s on 127.0.0.1:%d", self.kind, self.port)
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start_mosquitto(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="homevitals-broker-")
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 200000\nmax_inflight_messages 100\nlog_dest none\n"
            "set_tcp_nodelay true\n",
            encoding="utf-8",
        )
        binary = _mosquitto()
        assert binary is not None
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise HomevitalsError(
                "no MQTT broker available: install Debian's mosquitto,"
                " or pip install 'homevitals[demo]'"
            ) from exc
        cfg = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._broker = Broker(cfg, loop=loop)
            loop.run_until_complete(self._broker.start())
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise HomevitalsError(
                f"the embedded MQTT broker (amqtt) did not start on 127.0.0.1:{self.port}"
                " within 15 s"
            )

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._loop is not None and self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(p, os.X_OK):
            return p
    return None
