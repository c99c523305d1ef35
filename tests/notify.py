"""What systemd would see and what an operator's probe would see, for health tests.

``NotifySocket`` is systemd's side of sd_notify(3): a Unix datagram socket the test binds (an
abstract name, or a path), handed to the daemon as ``NOTIFY_SOCKET`` with ``WATCHDOG_USEC``."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


class NotifySocket:
    def __init__(self, *, abstract: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if abstract:
            name = f"homevitals-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:  # a short path: sun_path holds 108 bytes, pytest's tmp_path can be longer
            self._dir = tempfile.mkdtemp(prefix="hv-", dir="/tmp")
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)
        self.received: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, name="systemd-standin", daemon=True)
        self._reader.start()

    def env(self, watchdog_seconds: float = 1.0) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address, "WATCHDOG_USEC": str(int(watchdog_seconds * 1e6))}

    def _read(self) -> None:
        """Read as systemd does: at once, so the daemon's queue never fills."""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return  # closed
            self.received.append((time.monotonic(), data.decode()))

    def wait_for(self, line: str, timeout: float = 20.0) -> str:
        """The first datagram (already received, or within ``timeout``) with ``line`` as one of
        its lines."""
        deadline = time.monotonic() + timeout
        while True:
            for _at, msg in list(self.received):
                if line in msg.split("\n"):
                    return msg
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {line!r} within {timeout} s; got {self.received}")
            time.sleep(0.05)  # a wait-until poll

    def _pings_since(self, start: float) -> int:
        return sum(1 for at, msg in list(self.received)
                   if at >= start and "WATCHDOG=1" in msg.split("\n"))

    def pings(self, seconds: float) -> int:
        """How many WATCHDOG=1 arrive in the next ``seconds``: for a silence that must last (a
        window, not a wait for a timer; ``wait_pings`` waits for pings that must come)."""
        start = time.monotonic()
        time.sleep(seconds)  # the window in which the watchdog must stay silent
        return self._pings_since(start)

    def wait_pings(self, n: int, within: float) -> None:
        """``n`` WATCHDOG=1 arrive within ``within`` seconds from now; returns when they have."""
        start = time.monotonic()
        while self._pings_since(start) < n:
            if time.monotonic() - start >= within:
                raise AssertionError(f"{self._pings_since(start)} WATCHDOG=1 in {within} s,"
                                     f" wanted {n}; got {self.received[-5:]}")
            time.sleep(0.02)  # a wait-until poll

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(5)
        if self._dir is not None:
            Path(self.address).unlink(missing_ok=True)
            os.rmdir(self._dir)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def wait_status(port: int, path: str, status: int, *lines: str, timeout: float = 30.0) -> str:
    """Poll until ``path`` answers ``status`` with a body holding every one of ``lines`` (each a
    prefix of a body line); the body. Fails with the last answer."""
    deadline = time.monotonic() + timeout
    answer = (0, "")
    while time.monotonic() < deadline:
        answer = get(port, path)
        body_lines = answer[1].splitlines()
        if answer[0] == status and all(
            any(b.startswith(line) for b in body_lines) for line in lines
        ):
            return answer[1]
        time.sleep(0.1)  # a wait-until poll
    raise AssertionError(f"{path}: wanted {status} with {lines}, last answer {answer}")
