"""The runner's contract with systemd, through a real notify socket the test binds: READY=1 waits
for readiness (or, alive but still waiting, for the grace period), the watchdog is fed only while
every declared thread progresses, and the environment is read as sd_notify(3) says."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from daemons import wait_until
from notify import NotifySocket, get, wait_status

from homevitals.infra.runtime import Condition, Progress, Runner, Worker, thread_worker
from homevitals.infra.sdnotify import SystemdNotifier
from homevitals.vocab.config import MetricsConfig


class Looping:
    """An app with one worker thread that stamps its progress each time round, unless held."""

    def __init__(self) -> None:
        self.progress = Progress()
        self.hold = threading.Event()
        self.done = threading.Event()
        self.ready: str | None = "waiting for the broker"
        self.thread = threading.Thread(target=self._loop, name="looping", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.wait(0.1):
            self.progress.beat()
            while self.hold.is_set() and not self.done.is_set():
                self.done.wait(0.1)

    def workers(self) -> Sequence[Worker]:
        return [thread_worker("looping", self.thread, self.progress)]

    def conditions(self) -> Sequence[Condition]:
        return [Condition("broker", lambda: self.ready)]


def test_ready_waits_for_readiness_and_the_watchdog_for_progress() -> None:
    app, systemd = Looping(), NotifySocket(abstract=False)
    runner = Runner(app, MetricsConfig(port=0, stall_seconds=0.5), list,
                    notifier=SystemdNotifier(systemd.env(1.0)), ready_grace=600)
    try:
        with runner.serving():
            assert runner.health is not None
            port = runner.health.port
            systemd.wait_pings(2, 1.5)  # alive, not ready: the watchdog is fed ...
            assert not any("READY=1" in m for _, m in systemd.received)  # ... READY=1 is not
            assert wait_status(port, "/readyz", 503, "broker: waiting for the broker")
            app.ready = None
            assert "STATUS=alive and ready" in systemd.wait_for("READY=1", 5).split("\n")
            app.hold.set()
            wait_status(port, "/healthz", 503, "looping: no progress for")
            wait_until("systemd told of the stall", lambda: any(
                m.startswith("STATUS=stalled: looping: no progress for")
                for _, m in systemd.received), 5)
            assert systemd.pings(1.5) == 0
            app.hold.clear()
            wait_status(port, "/healthz", 200, "looping: ok")
            app.done.set()
            wait_status(port, "/healthz", 503, "looping: not running (the thread has ended)")
        assert get(port, "/healthz")[0] == 0  # closed with the block
        systemd.wait_for("STOPPING=1", 5)
    finally:
        app.done.set()
        systemd.close()


def test_ready_after_the_grace_period_while_waiting_for_the_broker() -> None:
    app, systemd = Looping(), NotifySocket()
    runner = Runner(app, None, list, notifier=SystemdNotifier(systemd.env(1.0)), ready_grace=1.0)
    try:
        with runner.serving():
            ready = systemd.wait_for("READY=1", 5).split("\n")
            assert "STATUS=waiting: broker: waiting for the broker" in ready
    finally:
        app.done.set()
        systemd.close()


def test_environment_as_sd_notify_reads_it() -> None:
    assert not SystemdNotifier({}).enabled and SystemdNotifier({}).notify("READY=1") is False
    other = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    assert SystemdNotifier(other).watchdog_seconds is None  # meant for pid 1, not us
    ours = {**other, "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(ours).watchdog_seconds == 2.0
    assert SystemdNotifier(ours).address == "\0x"
    assert not SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
