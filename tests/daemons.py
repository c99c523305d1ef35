"""Run homevitals daemons as real processes for tests: started by the test, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from homevitals.vocab.clock import TEST_CLOCK_ENV

HOMEVITALS = [sys.executable, "-m", "homevitals.roots.cli"]


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write a config for daemons under test. The server daemons keep persistent MQTT sessions
    (the broker queues QoS 1 messages for them while they are away), so on a broker shared by
    several tests each test's daemons get client ids of their own, unless the test chose one
    (a config dumped from a model carries the default ``homevitals-<stage>``: that is replaced
    too); otherwise one test's ingest would receive what another test published."""
    unique = path.parent.name
    for stage in ("ingest", "rules", "alerts"):
        section = dict(data.get(stage) or {})
        if section.get("client_id") in (None, f"homevitals-{stage}"):
            section["client_id"] = f"homevitals-{stage}-{unique}"
        data = {**data, stage: section}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Daemon:
    """``homevitals <command> -c CONFIG`` with its log in a file; ``wait_log`` waits for a line."""

    def __init__(
        self,
        command: str,
        config: Path,
        workdir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.log_path = workdir / f"{command}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*HOMEVITALS, "--log-level", "INFO", command, "-c", str(config), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.command} exited ({self.proc.returncode}) before {text!r}:\n{self.log()}"
                )
            time.sleep(0.05)  # a wait-until poll of the log
        raise AssertionError(
            f"{self.command} did not log {text!r} within {timeout} s:\n{self.log()}"
        )

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.command} did not finish within {timeout} s:\n{self.log()}"
            ) from None

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class TestClock:
    """Moves the clock of daemons started with ``env()``
    (``homevitals.vocab.clock.OffsetFileClock``):
    a test advances their time instead of sleeping until a timer is due."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "test-clock-offset"
        self.seconds = 0.0
        self.path.write_text("0", encoding="utf-8")

    def env(self) -> dict[str, str]:
        return {TEST_CLOCK_ENV: str(self.path)}

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(self.seconds), encoding="utf-8")
        tmp.replace(self.path)  # atomic: a daemon never reads half a number


def wait_until(what: str, check: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)  # a wait-until poll
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
