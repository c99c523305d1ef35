"""Reconnecting like a fleet (issue 13, section 6): jittered, growing reconnect delays, so that
clients cut off together do not come back in lock-step, and a failed attempt logged once with
where it tried (host:port, TLS or not) and why."""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from certs import make_tls_files
from daemons import Daemon, wait_until, write_config
from servers import free_port

from homevitals.infra.backoff import Backoff
from homevitals.infra.mqtt import connect_async, disconnect, make_client
from homevitals.simulators.household import demo_config
from homevitals.vocab.config import MqttConfig, TlsConfig

FLEET = 1000


def _fleet_delays(attempts: int) -> list[list[float]]:
    """The first ``attempts`` delays of each of FLEET clients (each with its own seed)."""
    out = []
    for i in range(FLEET):
        b = Backoff(1.0, 30.0, random.Random(i))
        out.append([b.next() for _ in range(attempts)])
    return out


def test_a_fleet_cut_off_together_retries_spread_out() -> None:
    delays = _fleet_delays(12)
    first = [d[0] for d in delays]
    assert 1.0 <= min(first) and max(first) <= 3.0
    # Spread evenly over [1, 3): no 100 ms slot holds more than twice its share (50 clients).
    slots = Counter(int((d - 1.0) * 10) for d in first)
    assert len(slots) == 20 and max(slots.values()) <= 100, slots
    # Later attempts spread wider and grow, never past the cap, never below the base.
    third = [d[2] for d in delays]
    assert statistics.pstdev(third) > 2 * statistics.pstdev(first)
    assert statistics.median(third) > statistics.median(first)
    last = [d[-1] for d in delays]
    assert all(1.0 <= x <= 30.0 for row in delays for x in row)
    assert statistics.median(last) > 10 and len({round(x, 3) for x in last}) > FLEET // 2


def test_after_a_success_the_delays_start_small_again() -> None:
    b = Backoff(1.0, 30.0, random.Random(7))
    for _ in range(10):
        b.next()
    b.reset()
    assert 1.0 <= b.next() <= 3.0
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(5.0, 1.0)


def test_clients_come_back_spread_out_after_a_broker_restart(mosquitto_factory: Any) -> None:
    broker = mosquitto_factory()
    cfg = MqttConfig(port=broker.port)
    connects: dict[int, list[float]] = {i: [] for i in range(12)}
    lock = threading.Lock()
    clients = []
    for i in range(12):
        client = make_client(cfg, f"fleet-{i}")

        def on_connect(*_a: Any, i: int = i) -> None:
            with lock:
                connects[i].append(time.monotonic())

        client.on_connect = on_connect
        connect_async(client, cfg)
        clients.append(client)
    try:
        wait_until("12 connections", lambda: all(connects.values()), 20)
        broker.stop()
        time.sleep(0.3)  # an outage of the broker (not a timer wait): clients see it go
        broker.start()
        wait_until("12 reconnections", lambda: all(len(t) == 2 for t in connects.values()), 40)
        again = [t[1] for t in connects.values()]
        # paho's own delay (1 s, no jitter) brings all twelve back within a few milliseconds.
        assert max(again) - min(again) > 0.5, sorted(round(t - min(again), 3) for t in again)
    finally:
        for c in clients:
            disconnect(c)


def _attempts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot reach the MQTT broker" in r.message]


@pytest.mark.parametrize("tls", [False, True])
def test_an_unreachable_broker_is_logged_with_where_and_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tls: bool
) -> None:
    port = free_port()  # nothing listens there
    tls_cfg = TlsConfig(enabled=True, ca_file=str(make_tls_files(tmp_path)[0])) if tls else None
    cfg = MqttConfig(port=port, tls=tls_cfg or TlsConfig())
    caplog.set_level(logging.DEBUG)
    client = make_client(cfg, f"nowhere-{tls}")
    connect_async(client, cfg)
    try:
        wait_until("two attempts", lambda: len(_attempts(caplog)) >= 2, 10)
    finally:
        disconnect(client)
    where = f"cannot reach the MQTT broker at 127.0.0.1:{port} ({'TLS' if tls else 'no TLS'}):"
    for message in _attempts(caplog):
        assert message.startswith(f"{where} [Errno 111] Connection refused; next attempt in ")
    warnings = [r for r in caplog.records if "cannot reach" in r.message]
    assert {r.levelname for r in warnings} == {"WARNING"}
    # Once per attempt, and the next attempt comes when the line said it would.
    said = float(warnings[0].getMessage().rsplit(" in ", 1)[1].removesuffix(" s"))
    assert warnings[1].created - warnings[0].created == pytest.approx(said, abs=0.3)
    assert not [r for r in caplog.records if "Client is not connected" in r.getMessage()]


def test_a_daemon_says_where_it_cannot_connect(tmp_path: Path) -> None:
    port = free_port()
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["mqtt"] = {"host": "127.0.0.1", "port": port}
    base["rules"]["state_path"] = str(tmp_path / "rules.sqlite")
    rules = Daemon("rules", write_config(tmp_path / "hv.yaml", base), tmp_path)
    try:
        rules.wait_log(f"cannot reach the MQTT broker at 127.0.0.1:{port} (no TLS):")
        rules.wait_log("next attempt in", 10)
        log = wait_until("a second attempt", lambda: rules.log().count(
            f"127.0.0.1:{port}") >= 2 and rules.log(), timeout=15)
        assert "Connection refused" in log
        assert "Client is not connected" not in log
    finally:
        rules.kill()
