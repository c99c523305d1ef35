"""systemd's notification protocol (sd_notify(3)), without a dependency: one datagram per state.

``NOTIFY_SOCKET`` names a Unix datagram socket, a path or, when it starts with ``@``, an abstract
name (Linux: a leading NUL byte). ``WATCHDOG_USEC`` is the unit's ``WatchdogSec=`` in
microseconds, meant for the process ``WATCHDOG_PID`` when that is set (sd_watchdog_enabled(3)).
Outside systemd neither is set and every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]

logger = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(env)
        self._sock: socket.socket | None = None
        if self.address and self.address[0] not in "/\0":
            logger.warning("NOTIFY_SOCKET %r is not a Unix socket: not notifying systemd", address)
            self.address = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *states: str) -> bool:
        """Send ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...`` as one datagram;
        False if it could not be sent (the caller may try again)."""
        if not self.address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the caller: a receiver that does not read (its queue holds
                # net.unix.max_dgram_qlen datagrams) costs a ping, not a stuck daemon.
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(states).encode(), self.address)
        except BlockingIOError:
            logger.debug("systemd's notify socket is full: %s not sent", states)
            return False
        except OSError as exc:
            logger.warning("cannot notify systemd on %r: %s", self.address, exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None
