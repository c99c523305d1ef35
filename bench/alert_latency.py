"""Latency from a call-button press published on MQTT to the Twilio request, p50 / p99.

Real processes as in production: Mosquitto, the rules daemon and the alerts daemon (twilio client
pointed at the local Twilio stand-in, in this process). Each press opens a new alert (presses are
11 simulated minutes apart, beyond the 10-minute fold), so every press is one SMS. Measured idle
and with a background of ~1 000 glucose readings/s from another home going through the same rules
daemon. Prints figures; never gates on wall time.

    .venv/bin/python bench/alert_latency.py [--presses 60] [--rate 1000]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from daemons import Daemon, wait_until, write_config  # noqa: E402
from servers import Mosquitto  # noqa: E402
from twilio_standin import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioStandin  # noqa: E402

from homevitals.vocab import wire  # noqa: E402
from homevitals.vocab.readings import Event, FieldValue, Reading  # noqa: E402
from homevitals.vocab.topics import Topics  # noqa: E402
from homevitals.vocab.units import Unit  # noqa: E402

ENV = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
T = Topics()


def _config(tmp: Path, port: int, twilio_url: str) -> Path:
    def home(hid: str, pid: str, phone: str) -> dict[str, object]:
        return {
            "id": hid, "timezone": "Europe/Ljubljana",
            "patients": [{"id": pid, "name": pid.title(), "care_team": [
                {"name": "Dr. A", "role": "family_doctor", "phone": phone}]}],
            "devices": [{"id": f"{pid}-glucometer", "kind": "glucose_meter", "patient": pid},
                        {"id": f"{pid}-button", "kind": "call_button", "patient": pid}],
        }

    data = {
        "mqtt": {"host": "127.0.0.1", "port": port},
        "homes": [home("home-a", "ana", "+15550100001"), home("home-b", "bob", "+15550100002")],
        "rules": {"state_path": str(tmp / "rules.sqlite"), "definitions": [
            {"id": "low-glucose", "kind": "threshold", "measurement": "glucose",
             "field": "glucose", "below": 3.9, "clear_at": 4.4, "unit": "mmol/L",
             "severity": "high", "reason": "Low glucose"},
            {"id": "call-button", "kind": "event", "event": "call_button",
             "severity": "critical", "reason": "Call for help from home"},
        ]},
        "alerts": {"notifier": "twilio", "outbox_path": str(tmp / "ledger.sqlite"),
                   "twilio": {"from_number": "+15550109999", "api_base_url": twilio_url}},
    }
    return write_config(tmp / "bench.yaml", data)


class Load(threading.Thread):
    """~``rate`` normal glucose readings/s from home-b, QoS 1, at most 200 in flight."""

    def __init__(self, port: int, rate: int) -> None:
        super().__init__(daemon=True)
        self.rate, self.sent, self.stop = rate, 0, threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-load")
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        t0 = time.monotonic()
        sim = datetime(2026, 11, 21, 12, tzinfo=UTC)
        topic = T.reading("home-b", "bob-glucometer")
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while self.sent < due:
                t = sim + timedelta(seconds=self.sent)
                r = Reading(reading_id=f"L{self.sent}", home="home-b", patient="bob",
                            device="bob-glucometer", measurement="glucose",  # type: ignore[arg-type]
                            fields={"glucose": FieldValue(6.0, Unit("mmol/L"))}, time=t,
                            received_at=t)
                self.client.publish(topic, wire.encode(r), qos=1)
                self.sent += 1
            time.sleep(0.005)
        self.client.loop_stop()


def _presses(port: int, standin: TwilioStandin, n: int, start: datetime) -> list[float]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-press")
    client.connect("127.0.0.1", port)
    client.loop_start()
    out = []
    try:
        for i in range(n):
            before = len(standin.messages)
            t = start + timedelta(minutes=11 * i)
            e = Event(event_id="e" + secrets.token_hex(8), home="home-a", patient="ana",
                      device="ana-button", kind="call_button",  # type: ignore[arg-type]
                      time=t, received_at=t)
            sent_at = datetime.now(UTC)
            client.publish(T.event("home-a", "ana-button"), wire.encode(e), qos=1)
            wait_until("the SMS", lambda b=before: len(standin.messages) > b, timeout=60,
                       interval=0.002)
            out.append((standin.messages[before].created_at - sent_at).total_seconds() * 1000)
            time.sleep(0.05)
    finally:
        client.loop_stop()
    return out


def _report(name: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"{name:<34} n={len(ms):<4} p50 {q[49]:7.1f} ms   p99 {q[98]:7.1f} ms"
          f"   max {max(ms):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presses", type=int, default=60)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, TwilioStandin() as standin:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        cfg = _config(tmp, broker.port, standin.base_url)
        daemons = [Daemon(name, cfg, tmp, env=ENV) for name in ("rules", "alerts")]
        try:
            for dm in daemons:
                dm.wait_log("ready: subscribed")
            start = datetime(2026, 11, 20, 18, tzinfo=UTC)
            idle = _presses(broker.port, standin, args.presses, start)
            load = Load(broker.port, args.rate)
            load.start()
            time.sleep(2.0)  # let the background reach its pace
            t0, sent0 = time.monotonic(), load.sent
            busy = _presses(broker.port, standin, args.presses,
                            start + timedelta(minutes=11 * args.presses))
            rate = (load.sent - sent0) / (time.monotonic() - t0)
            load.stop.set()
            load.join(10)
            print(f"alert latency, publish -> Twilio request ({args.presses} presses each)")
            _report("idle", idle)
            _report(f"with {rate:,.0f} readings/s background", busy)
            print(f"violations of the Twilio contract: {len(standin.violations)}")
        finally:
            for dm in daemons:
                dm.kill()
            broker.stop()


if __name__ == "__main__":
    main()
