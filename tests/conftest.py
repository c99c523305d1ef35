"""Shared fixtures: real Mosquitto and InfluxDB processes on free 127.0.0.1 ports.

Session-scoped ``mosquitto`` and ``influxd`` are shared and must not be stopped by a test. A test
that stops, kills or restarts a server takes its own from ``mosquitto_factory`` /
``influxd_factory``; everything a fixture started is stopped by PID at teardown.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ is not a package: make servers importable

from servers import Influxd, Mosquitto, ServerError, V2CompatProxy  # noqa: E402

_db_names = itertools.count(1)


def _started(server: Mosquitto | Influxd) -> None:
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


def _build(cls: type[Mosquitto] | type[Influxd], *args: Any, **kwargs: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except ServerError as exc:  # binary missing: fail loudly, never skip
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker: Mosquitto = _build(Mosquitto, tmp_path_factory.mktemp("mosquitto"))
    _started(broker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server: Influxd = _build(Influxd, tmp_path_factory.mktemp("influxd"))
    _started(server)
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``mosquitto_factory(**Mosquitto kwargs)`` -> a started broker this test may stop."""
    made: list[Mosquitto] = []

    def make(**kwargs: Any) -> Mosquitto:
        broker: Mosquitto = _build(Mosquitto, tmp_path / f"mosquitto{len(made)}", **kwargs)
        made.append(broker)
        _started(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """``influxd_factory(auth_enabled=False)`` -> a started influxd this test may stop."""
    made: list[Influxd] = []

    def make(**kwargs: Any) -> Influxd:
        server: Influxd = _build(Influxd, tmp_path / f"influxd{len(made)}", **kwargs)
        made.append(server)
        _started(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def influx_db(influxd: Influxd) -> str:
    """A fresh, empty database on the shared influxd."""
    name = f"test{next(_db_names)}"
    influxd.create_database(name)
    return name


@pytest.fixture
def v2_proxy_factory() -> Iterator[Callable[[Influxd], V2CompatProxy]]:
    """``v2_proxy_factory(influxd)`` -> InfluxDB 1.8's /api/v2/write in front of that influxd."""
    made: list[V2CompatProxy] = []

    def make(server: Influxd) -> V2CompatProxy:
        proxy = V2CompatProxy(server.url)
        made.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def v2_proxy(
    influxd: Influxd, v2_proxy_factory: Callable[[Influxd], V2CompatProxy]
) -> V2CompatProxy:
    return v2_proxy_factory(influxd)
