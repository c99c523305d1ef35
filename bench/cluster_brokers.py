"""RabbitMQ 3.10 (MQTT plugin, quorum queues) against NATS 2.9 (JetStream, R3) on loopback.

For each broker: the time a three-node cluster takes to start; MQTT 3.1.1 QoS 1 throughput
through one node (a paho publisher with ``--inflight`` unacknowledged, a persistent-session
subscriber on another node that counts); then the same under load with the publisher's node
killed by SIGKILL part-way: the publisher fails over to the next node of its list and publishes
again whatever was not acknowledged (as the gateway's durable queue does), and the subscriber
counts readings lost and duplicated.

    .venv/bin/python bench/cluster_brokers.py [--messages 20000] [--broker rabbitmq nats]

Everything shares the machine's cores: figures are for comparing the two here, not capacity.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster_servers import NatsCluster, RabbitCluster  # noqa: E402

TOPIC = "bench/readings"


def _client(client_id: str, clean: bool) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv311, clean_session=clean)


class Subscriber:
    """A persistent QoS 1 session on one node; counts every id it gets."""

    def __init__(self, broker: str) -> None:
        self.seen: Counter[int] = Counter()
        self.ready = threading.Event()
        self.client = _client("bench-sub", clean=False)
        self.client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        host, port = broker.split(":")
        self.client.connect(host, int(port), keepalive=60)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.seen[int(msg.payload.split(b",", 1)[0])] += 1

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """Publishes ids 0..n-1 with at most ``inflight`` unacknowledged; on a lost connection it
    moves to the next broker of its list and publishes every unacknowledged id again."""

    def __init__(self, brokers: list[str], inflight: int) -> None:
        self.brokers, self.inflight = brokers, inflight
        self.failovers = 0
        self.reconnect_seconds: list[float] = []
        self._room = threading.Semaphore(inflight)

    def run(self, n: int, payload: bytes) -> float:
        started = time.monotonic()
        todo = list(range(n))
        index = 0
        while todo:
            client = self._connect(index)
            todo = self._publish_all(client, todo, payload)
            client.loop_stop()
            if todo:
                index = (index + 1) % len(self.brokers)
                self.failovers += 1
        return time.monotonic() - started

    def _connect(self, index: int) -> mqtt.Client:
        lost_at = time.monotonic()
        self._room = threading.Semaphore(self.inflight)
        while True:
            host, port = self.brokers[index].split(":")
            client = _client(f"bench-pub-{time.monotonic_ns()}", clean=True)
            client.max_inflight_messages_set(self.inflight)
            client.on_publish = lambda *_: self._room.release()
            try:
                client.connect(host, int(port), keepalive=10)
            except OSError:
                index = (index + 1) % len(self.brokers)
                time.sleep(0.2)
                continue
            client.loop_start()
            deadline = time.monotonic() + 10
            while not client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.failovers:
                self.reconnect_seconds.append(time.monotonic() - lost_at)
            return client

    def _publish_all(self, client: mqtt.Client, todo: list[int], payload: bytes) -> list[int]:
        sent: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        for ident in todo:
            while not self._room.acquire(timeout=0.5):
                if not client.is_connected():
                    break
            if not client.is_connected() and len(sent) > 2 * self.inflight:
                break
            sent.append((ident, client.publish(TOPIC, b"%d," % ident + payload, qos=1)))
        deadline = time.monotonic() + 30
        while client.is_connected() and time.monotonic() < deadline:
            if all(info.is_published() for _, info in sent[-self.inflight:]):
                break
            time.sleep(0.05)
        done = {ident for ident, info in sent if info.is_published()}
        return [i for i in todo if i not in done]


def measure(kind: str, workdir: Path, n: int, inflight: int) -> dict[str, Any]:
    cluster: RabbitCluster | NatsCluster
    cluster = RabbitCluster(workdir / kind) if kind == "rabbitmq" else NatsCluster(workdir / kind)
    figures: dict[str, Any] = {"broker": kind}
    try:
        started = time.monotonic()
        cluster.start()
        brokers = cluster.mqtt_brokers
        payload = b"x" * 200  # the size of a reading on the wire
        sub = Subscriber(brokers[1])
        sub.ready.wait(60)
        # Until a replicated persistent session is subscribed: NATS opens its ports at once,
        # but a session needs JetStream's meta leader and an R3 stream first.
        figures["start_s"] = time.monotonic() - started
        pub = Publisher(brokers, inflight)
        seconds = pub.run(n, payload)
        sub.wait_for(n, 60)
        figures["qos1_msgs_per_s"] = n / seconds
        figures["clean_lost"] = n - len(sub.seen)
        sub.seen.clear()
        pub = Publisher(brokers, inflight)
        killer = threading.Timer(seconds / 3, cluster.kill, args=(0,))
        killer.start()
        pub.run(n, payload)
        killer.join()
        sub.wait_for(n, 60)
        figures["kill_lost"] = n - len(sub.seen)
        figures["kill_duplicates"] = sum(c - 1 for c in sub.seen.values())
        figures["kill_republished"] = pub.failovers
        figures["failover_s"] = max(pub.reconnect_seconds, default=0.0)
        sub.close()
    finally:
        cluster.stop()
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument("--broker", nargs="+", default=["rabbitmq", "nats"])
    args = ap.parse_args()
    print(f"{args.messages} QoS 1 messages of 200 bytes, {args.inflight} in flight, 3 nodes")
    print("| broker | cluster start s | QoS 1 msgs/s | lost (no kill) | kill -9: lost | "
          "duplicates | publisher failover s |")
    print("|---|---|---|---|---|---|---|", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on a kill too
    with tempfile.TemporaryDirectory(prefix="cluster-brokers-") as tmp:
        for kind in args.broker:
            f = measure(kind, Path(tmp), args.messages, args.inflight)
            print(f"| {f['broker']} | {f['start_s']:.1f} | {f['qos1_msgs_per_s']:.0f} | "
                  f"{f['clean_lost']} | {f['kill_lost']} | {f['kill_duplicates']} | "
                  f"{f['failover_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
