"""Which embedded broker for the demo? Mosquitto (child process) vs amqtt (in-process), measured
in the same run with the same paho publisher and subscriber.

    .venv/bin/python bench/broker_embedded.py [--messages 5000]

Prints msgs/s for QoS 0 and QoS 1 (publish -> received by a subscriber that only counts), and the
resident memory of this process before and after amqtt ran in it. Never gates anything.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.infra.embedded import EmbeddedBroker

PAYLOAD = b"x" * 206  # the size of a typical reading message


def run(port: int, protocol: int, qos: int, n: int) -> float:
    got = 0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal got
        got += 1
        if got == n:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{qos}", protocol=protocol)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/#", qos=qos)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{qos}", protocol=protocol)
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    infos = [pub.publish("bench/x", PAYLOAD, qos=qos) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    done.wait(60)
    elapsed = time.perf_counter() - t0
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    if got < n:
        print(f"    lost {n - got} of {n}")
    return got / elapsed


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    n = ap.parse_args().messages
    print(f"{n} messages of {len(PAYLOAD)} bytes, paho publisher -> broker -> paho subscriber")
    print(f"peak RSS of this process before any broker: {rss_mb():.0f} MB")
    for kind in ("mosquitto", "amqtt"):
        with EmbeddedBroker(kind) as b:
            protocol = mqtt.MQTTv5 if b.protocol == "5" else mqtt.MQTTv311
            for qos in (0, 1):
                rate = run(b.port, protocol, qos, n)
                print(f"  {kind:<10} QoS {qos}: {rate:8.0f} msgs/s")
        print(f"peak RSS of this process after {kind}: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
