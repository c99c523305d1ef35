"""Fleet load generator: M homes x D devices publishing readings straight to a broker.

For benchmarks and load tests, not for the demo. Readings are real wire-format messages (glucose,
blood pressure) on each home's own topics, with stable ids, so ingest treats them exactly as it
treats a gateway's. Several publisher processes share the work so that the Python publisher
(~18 k QoS 0 / ~7-11 k QoS 1 msgs/s per process on this class of machine, as measured with
bench/ingest_throughput.py, which drives this module) is less of a bottleneck.

    python -m homevitals.simulators.fleet --port 1883 --homes 1000 --devices 2 --readings 60

is the burst of a thousand gateways coming back after an hour offline (one reading a minute per
device, all replayed at once).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.vocab import wire
from homevitals.vocab.readings import FieldValue, Measurement, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

__all__ = ["FleetRun", "FleetSpec", "fleet_readings", "publish_fleet"]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    homes: int
    devices: int = 2
    readings: int = 60
    start: datetime = datetime(2026, 11, 20, tzinfo=UTC)
    interval: timedelta = timedelta(minutes=1)
    tag: str = "fleet"

    @property
    def total(self) -> int:
        return self.homes * self.devices * self.readings


def fleet_readings(spec: FleetSpec, part: int = 0, parts: int = 1) -> Iterator[Reading]:
    """The ``part``-th of ``parts`` slices of the fleet's readings (homes split between parts)."""
    for h in range(part, spec.homes, parts):
        home = f"home-{h:05d}"
        for d in range(spec.devices):
            bp = d % 2 == 1
            for i in range(spec.readings):
                t = spec.start + i * spec.interval
                fields = (
                    {
                        "systolic": FieldValue(120 + i % 30, Unit.MMHG),
                        "diastolic": FieldValue(80 + i % 10, Unit.MMHG),
                    }
                    if bp
                    else {"glucose": FieldValue(5.0 + (i % 40) / 10, Unit.MMOL_PER_L)}
                )
                yield Reading(
                    f"{spec.tag}-{h}-{d}-{i}",
                    home,
                    f"p-{h:05d}",
                    f"dev-{d}",
                    Measurement.BLOOD_PRESSURE if bp else Measurement.GLUCOSE,
                    fields,
                    t,
                    t,
                )


@dataclass(frozen=True)
class FleetRun:
    """What a fleet publish did: ``started``/``finished`` are wall-clock times (``time.time()``,
    comparable across processes) of the first publish and the last acknowledgement, so process
    start-up, connecting and encoding are not counted as broker time."""

    sent: int
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def _publish_part(
    port: int, spec: FleetSpec, part: int, parts: int, qos: int, inflight: int, prefix: str,
    ready: Any,
) -> tuple[int, float, float]:
    topics = Topics(prefix)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{spec.tag}-pub-{part}", protocol=mqtt.MQTTv5
    )
    # paho 2.x stalls when more than 65 535 QoS 1 messages wait (16-bit message ids wrap, MQTT 5
    # section 2.2.1; homevitals/infra/outbox.py): bound it.
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(inflight * 4)
    acked = [0]  # PUBACKs received (on_publish, paho's thread)
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    messages = [(topics.reading(r.home, r.device), wire.encode(r))
                for r in fleet_readings(spec, part, parts)]
    sent = 0
    ready.wait()  # every publisher connected with its messages encoded: start together
    started = time.time()
    for topic, payload in messages:
        while client.publish(topic, payload, qos=qos).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.0005)  # the bounded queue is full: wait for acknowledgements
        sent += 1
    deadline = time.monotonic() + 60
    while client.want_write() or (qos and acked[0] < sent and time.monotonic() < deadline):
        time.sleep(0.001)
    finished = time.time()
    client.disconnect()
    client.loop_stop()
    return sent, started, finished


def publish_fleet(
    port: int,
    spec: FleetSpec,
    *,
    processes: int = 2,
    qos: int = 1,
    inflight: int = 100,
    prefix: str = "homevitals",
) -> FleetRun:
    """Publish the whole fleet from ``processes`` processes (each with its slice of homes)."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(processes) as pool:
        ready = manager.Barrier(processes)
        parts = pool.starmap(
            _publish_part,
            [(port, spec, p, processes, qos, inflight, prefix, ready) for p in range(processes)],
        )
    run = FleetRun(sum(p[0] for p in parts), min(p[1] for p in parts), max(p[2] for p in parts))
    assert run.sent == spec.total, (run.sent, spec.total)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--readings", type=int, default=60)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1])
    a = ap.parse_args()
    spec = FleetSpec(a.homes, a.devices, a.readings)
    run = publish_fleet(a.port, spec, processes=a.processes, qos=a.qos)
    print(f"published {spec.total} readings in {run.seconds:.1f} s"
          f" ({spec.total / run.seconds:.0f} msgs/s)")


if __name__ == "__main__":
    main()
