"""Fixtures of the cluster profile: three RabbitMQ nodes, two InfluxDB replicas and a
PostgreSQL server (the rules' shared state).

Started once per module (the broker cluster takes 20-40 s on two shared cores) and stopped by
PID after it, also when the start fails, so that the rest of the suite has the cores. Tests that
kill a node bring it back before they end, so the next test finds the cluster whole. Import the
fixtures into a test module (``from cluster_fixtures import ...``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_servers import RabbitCluster
from pg_servers import Postgres
from servers import Influxd, ServerError

__all__ = ["influx_replicas", "postgres", "rabbit_cluster"]


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    cluster = None
    try:
        cluster = RabbitCluster(tmp_path_factory.mktemp("rabbitmq"))
        seconds = cluster.start()
    except ServerError as exc:  # a binary missing or a node that would not start: never a skip
        if cluster is not None:
            cluster.stop()  # the nodes that did start: none is left behind
        pytest.fail(str(exc), pytrace=False)
    except BaseException:  # anything else: the nodes are stopped all the same
        if cluster is not None:
            cluster.stop()
        raise
    print(f"\nRabbitMQ cluster of 3 started in {seconds:.1f} s")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def influx_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Influxd]]:
    servers: list[Influxd] = []
    try:
        for name in ("influx-a", "influx-b"):
            server = Influxd(tmp_path_factory.mktemp(name))
            servers.append(server)
            server.start()
    except ServerError as exc:
        for server in servers:
            server.stop()
        pytest.fail(str(exc), pytrace=False)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres().start()
    try:
        yield pg
    finally:
        pg.cleanup()
