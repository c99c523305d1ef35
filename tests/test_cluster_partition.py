"""A network partition between broker nodes (docs/cluster.md, failure table), with each of the
three RabbitMQ nodes on a host of its own: a network namespace joined to the test's by a bridge
(tests/cluster_netns.py). Under load from three gateways, node 3 is cut off from nodes 1 and 2
(the gateways and the ingest worker still reach every node). With
``cluster_partition_handling = pause_minority``, node 3 pauses and closes its listeners; its
gateway moves to the next node of its list and publishes again what was not acknowledged. After
the link is healed, node 3 resumes and rejoins. Every reading is stored exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_netns import NetnsRabbitCluster
from daemons import Daemon, wait_until, write_config
from servers import Influxd, ServerError
from test_cluster_ingest import Feeder, Gateway, _homes, _ids

DB = "partition"
GATEWAYS = 3
TOTAL = 3000
RESUME_LIMIT_S = 30.0


@pytest.fixture
def netns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsRabbitCluster]:
    cluster = NetnsRabbitCluster(tmp_path_factory.mktemp("rabbitmq-netns"))
    try:
        seconds = cluster.start()
    except ServerError as exc:  # never a skip; and nothing is left behind
        cluster.stop()
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        cluster.stop()
        raise
    print(f"\nRabbitMQ cluster of 3 in network namespaces started in {seconds:.1f} s")
    yield cluster
    cluster.stop()


def _count(influx: Influxd) -> int:
    body = influx.query('SELECT COUNT("glucose") FROM "glucose"', db=DB)
    series = body["results"][0].get("series", [])  # type: ignore[index]
    return int(series[0]["values"][0][1]) if series else 0


def _ingest(tmp: Path, cluster: NetnsRabbitCluster, influx: Influxd) -> Daemon:
    data: dict[str, Any] = {
        "mqtt": {"protocol": "3.1.1", "brokers": cluster.mqtt_brokers},
        "homes": _homes(),
        "store": {"kind": "influx_v1", "url": influx.url, "database": DB, "timeout_seconds": 3},
        "ingest": {
            "client_id": "ingest-partition", "source": "amqp",
            "amqp": {"urls": cluster.amqp_urls, "queue": "ingest.partition"},
            "batch_size": 50, "batch_seconds": 0.2, "backlog_max": 100,
            "retry_initial_seconds": 0.2, "retry_max_seconds": 1,
        },
    }
    work = tmp / "ingest"
    work.mkdir()
    return Daemon("ingest", write_config(work / "hv.yaml", data), work)


def test_a_partition_pauses_the_minority_node_and_loses_and_doubles_nothing(
    tmp_path: Path, netns_cluster: NetnsRabbitCluster, influxd: Influxd
) -> None:
    cluster = netns_cluster
    influxd.create_database(DB)
    worker = _ingest(tmp_path, cluster, influxd)  # on node 1 (the majority side)
    gateways: list[Gateway] = []
    figures: dict[str, float] = {}
    try:
        worker.wait_log("consuming", 60)
        # Gateway k starts at node k+1: the third gateway publishes to node 3, the one cut off.
        gateways = [Gateway(tmp_path, cluster.mqtt_brokers, k) for k in range(GATEWAYS)]
        feeder = Feeder(gateways, TOTAL)  # about 75 readings/s for 40 s
        feeder.start()
        wait_until("300 rows", lambda: _count(influxd) >= 300, 60, 0.2)

        cut_at = time.monotonic()
        cluster.cut(2, 0)
        cluster.cut(2, 1)
        wait_until("node 3 paused", lambda: not cluster.nodes[2].serving(), 60, 0.2)
        figures["node 3 paused after the cut, s"] = time.monotonic() - cut_at
        assert cluster.nodes[0].serving() and cluster.nodes[1].serving()
        at = _count(influxd)
        wait_until("250 more rows", lambda: _count(influxd) >= at + 250, 60, 0.2)
        figures["250 more rows stored after the cut, s"] = time.monotonic() - cut_at
        time.sleep(3.0)  # partitioned a while longer, under load

        cluster.heal()
        healed_at = time.monotonic()
        wait_until("node 3 serving again", cluster.nodes[2].serving, 90, 0.2)
        wait_until("node 3 back in the cluster",
                   lambda: cluster.running_nodes(2) == {n.node for n in cluster.nodes}, 60, 0.5)
        figures["node 3 resumed and rejoined after the heal, s"] = time.monotonic() - healed_at

        feeder.join(120)
        wait_until(f"{TOTAL} rows", lambda: _count(influxd) >= TOTAL, 120, 0.2)
        time.sleep(1.0)  # room for a late duplicate to land, were there one
        for gw in gateways:
            ids = _ids(influxd, gw.patient, DB)
            assert len(ids) == len(set(ids)), f"{gw.patient}: duplicates stored"
            assert sorted(ids) == sorted(gw.sent), f"{gw.patient}: {len(gw.sent) - len(ids)} lost"
        assert _count(influxd) == TOTAL
        print(f"\n{TOTAL} readings from {GATEWAYS} gateways across a partition of node 3:"
              " lost 0, duplicates 0")
        for what, value in figures.items():
            print(f"  {what}: {value:.1f}")
        assert figures["250 more rows stored after the cut, s"] < RESUME_LIMIT_S
        assert figures["node 3 resumed and rejoined after the heal, s"] < RESUME_LIMIT_S
    finally:
        for gw in gateways:
            gw.stop()
        worker.kill()
