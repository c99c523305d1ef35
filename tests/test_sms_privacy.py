"""Privacy setting: an SMS can name the patient by initials and patient number only."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from daemons import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.simulators.household import demo_config
from homevitals.vocab import wire
from homevitals.vocab.clock import SystemClock
from homevitals.vocab.config import Config
from homevitals.vocab.readings import AlertDecision, AlertState, Severity


def test_initials_and_patient_number_instead_of_the_name(tmp_path: Path, mosquitto: Any) -> None:
    base = demo_config().model_dump(mode="json", exclude_none=True)
    base["homes"][0]["patients"][0]["number"] = "1042"
    base["mqtt"] = {"host": "127.0.0.1", "port": mosquitto.port}
    base["alerts"] = {
        "notifier": "console",
        "privacy": "initials",
        "client_id": f"alerts-{tmp_path.name}",
        "outbox_path": str(tmp_path / "ledger.sqlite"),
    }
    cfg = Config.model_validate(base)
    out = io.StringIO()
    app = AlertsApp(cfg, ConsoleNotifier(out), SystemClock())
    app.start()
    try:
        assert app.subscriber.subscribed.wait(20)
        t = datetime.now(UTC)
        d = AlertDecision(
            "a-privacy-1",
            AlertState.FIRING,
            "home-novak",
            "ana",
            "night-low-glucose",
            Severity.HIGH,
            "Night-time low glucose",
            t,
            "glucose",
            "glucose",
            3.4,
            "mmol/L",
            t,
        )
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rules-{tmp_path.name}")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish("homevitals/v1/alert/home-novak/ana", wire.encode(d), qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        wait_until("the SMS", lambda: "SMS to +15550100001" in out.getvalue(), 20)
        sms = out.getvalue()
        assert "homevitals HIGH: A.N. (patient 1042): glucose 3.4 mmol/L at" in sms
        assert "Ana" not in sms and "Novak" not in sms
    finally:
        app.stop()
