"""The fleet's publishers for the ingest bench: the fleet simulator's paho processes, or one C
``mosquitto_pub`` per topic (the publisher Mosquitto's authors wrote)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from homevitals.simulators.fleet import FleetRun, FleetSpec, fleet_readings, publish_fleet
from homevitals.vocab import wire
from homevitals.vocab.topics import Topics

__all__ = ["Publish", "mosquitto_pub_publishers", "paho_publishers"]

# publish(port, spec) prepares the messages and returns the call that sends them, so that CPU
# accounting can start after the preparation.
Publish = Callable[[int, FleetSpec], Callable[[], FleetRun]]


def paho_publishers(processes: int) -> Publish:
    """The fleet simulator: ``processes`` paho publishers, each with its slice of the homes.
    They start and encode in their own processes, inside the CPU accounting."""
    return lambda port, spec: lambda: publish_fleet(port, spec, processes=processes)


def mosquitto_pub_publishers(tmp: Path) -> Publish:
    """One C ``mosquitto_pub -l`` per topic (home x device), each reading its device's payloads
    from a file, 100 QoS 1 messages in flight each: the publisher Mosquitto's authors wrote."""
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        sys.exit("--publisher mosquitto_pub needs mosquitto_pub: apt-get install mosquitto-clients")

    def publish(port: int, spec: FleetSpec) -> Callable[[], FleetRun]:
        topics = Topics("homevitals")
        lines: dict[str, list[bytes]] = {}
        for r in fleet_readings(spec):
            lines.setdefault(topics.reading(r.home, r.device), []).append(wire.encode(r))
        files = []
        for i, (topic, payloads) in enumerate(lines.items()):
            path = tmp / f"{spec.tag}-{i}.lines"
            path.write_bytes(b"\n".join(payloads) + b"\n")
            files.append((topic, path))

        def go() -> FleetRun:
            started = time.time()
            procs = []
            for i, (topic, path) in enumerate(files):
                with path.open("rb") as stdin:
                    procs.append(subprocess.Popen(
                        [exe, "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1",
                         "-M", "100", "-i", f"{spec.tag}-c{i}", "-t", topic, "-l"],
                        stdin=stdin,
                    ))
            for p in procs:
                if p.wait(600) != 0:
                    sys.exit(f"mosquitto_pub exited with {p.returncode}")
            return FleetRun(spec.total, started, time.time())

        return go

    return publish
