"""How long a three-node RabbitMQ 3.10 cluster takes to serve MQTT again after losing its
majority (docs/cluster.md, the failure table's "two of three broker nodes are down").

Starts the loopback cluster of the tests (tests/cluster_servers.py), kills two nodes with
SIGKILL, starts them again on their ports and data (``--together``: both at once, as after a
power cut; else one, then the other once the first serves), and prints, per returning node, the
seconds until its MQTT listener accepts and until a QoS 1 publish through it is acknowledged
(which needs the quorum queue of a persistent session on a majority). Every process is stopped
by PID at the end.

    .venv/bin/python bench/cluster_majority.py [--together] [--timeout 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cluster_servers import RabbitCluster  # noqa: E402
from servers import _accepts  # noqa: E402


def _acked(port: int) -> bool:
    """A persistent-session subscriber and a QoS 1 publish through this node, acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{port}",
                    clean_session=False, protocol=mqtt.MQTTv311)
    try:
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        c.subscribe("probe/#", qos=1)
        info = c.publish("probe/x", b"x", qos=1)
        info.wait_for_publish(5)
        return info.is_published()
    except (OSError, RuntimeError, ValueError):
        return False
    finally:
        c.disconnect()
        c.loop_stop()


def _wait(what: str, check: object, since: float, timeout: float) -> float | None:
    while time.monotonic() - since < timeout:
        if callable(check) and check():
            return time.monotonic() - since
        time.sleep(1.0)
    print(f"  {what}: not after {timeout:.0f} s")
    return None


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--together", action="store_true", help="restart both nodes at once")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    cluster = RabbitCluster(Path(tempfile.mkdtemp(prefix="hv-majority-")))
    try:
        print(f"cluster started in {cluster.start():.1f} s")
        for node in cluster.nodes:
            if not _acked(node.mqtt_port):
                print(f"  {node.node}: no acknowledged publish before the kill")
        cluster.kill(1)
        cluster.kill(2)
        print("nodes 2 and 3 killed (kill -9); node 1 alone has no majority")
        time.sleep(3.0)
        groups = [[1, 2]] if args.together else [[1], [2]]
        for group in groups:
            started = time.monotonic()
            for i in group:
                cluster.nodes[i].spawn()
            for i in group:
                port = cluster.nodes[i].mqtt_port
                name = cluster.nodes[i].node
                listen = _wait(f"{name} MQTT listener", lambda p=port: _accepts(p), started,
                               args.timeout)
                acked = _wait(f"{name} acknowledged publish", lambda p=port: _acked(p), started,
                              args.timeout)
                print(f"  {name} started again: MQTT listener after {_s(listen)}, acknowledged"
                      f" QoS 1 publish after {_s(acked)}")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
