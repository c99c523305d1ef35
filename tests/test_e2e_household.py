"""The walking skeleton end to end: the demo household through four real daemon processes, a real
Mosquitto, a real influxd, and the real twilio client talking to a local Twilio stand-in that
checks every request against Twilio's OpenAPI description."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from daemons import Daemon, wait_until, write_config
from twilio_standin import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioStandin

from homevitals.ingest.influx_v1 import InfluxV1Store
from homevitals.simulators.household import demo_script

ZONE = ZoneInfo("Europe/Ljubljana")
DOCTOR = "+15550100001"
FAMILY = "+15550100002"
SENDER = "+15550109999"


def _config(tmp: Path, mqtt_port: int, influx_url: str, db: str, twilio_url: str) -> Path:
    text = (
        resources.files("homevitals.simulators").joinpath("households/demo.yaml").read_text("utf-8")
    )
    data: dict[str, Any] = yaml.safe_load(text)
    data["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port}
    data["store"] = {"kind": "influx_v1", "url": influx_url, "database": db}
    data["gateway"]["queue_path"] = str(tmp / "gw-queue.sqlite")
    data["rules"]["state_path"] = str(tmp / "rules.sqlite")
    data["alerts"] = {
        "notifier": "twilio",
        "outbox_path": str(tmp / "ledger.sqlite"),
        "twilio": {"from_number": SENDER, "api_base_url": twilio_url},
    }
    return write_config(tmp / "homevitals.yaml", data)


@pytest.fixture
def standin() -> Any:
    with TwilioStandin() as s:
        yield s


def test_household_through_the_whole_pipeline(
    tmp_path: Path, mosquitto: Any, influxd: Any, influx_db: str, standin: TwilioStandin
) -> None:
    cfg = _config(tmp_path, mosquitto.port, influxd.url, influx_db, standin.base_url)
    env = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
    daemons = [Daemon(name, cfg, tmp_path, env=env) for name in ("ingest", "rules", "alerts")]
    try:
        for d in daemons:
            d.wait_log("ready: subscribed")
        gateway = Daemon("gateway", cfg, tmp_path, "--simulate", "demo")
        assert gateway.wait(60) == 0, gateway.log()
        assert "0 still queued on disk" in gateway.log()

        store = InfluxV1Store(influxd.url, influx_db)
        start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
        glucose = wait_until(
            "6 glucose rows",
            lambda: len(r := store.query_readings("glucose", "ana", start, end)) == 6 and r,
        )
        bp = wait_until(
            "2 BP rows",
            lambda: len(r := store.query_readings("blood_pressure", "ana", start, end)) == 2 and r,
        )
        events = wait_until(
            "1 event row",
            lambda: len(r := store.query_readings("event", "ana", start, end)) == 1 and r,
        )

        # Every reading is stored with its value and the device's own time stamp.
        _, expected = demo_script(ZONE)
        got_glucose = [(r["time"], r["glucose"]) for r in glucose]
        want_glucose = [
            (e.local_time.astimezone(UTC), e.value) for e in expected if e.field == "glucose"
        ]
        assert got_glucose == [(t, pytest.approx(v, abs=0.05)) for t, v in want_glucose]
        got_bp = [(r["time"], r["systolic"], r["diastolic"]) for r in bp]
        want_sys = [e for e in expected if e.field == "systolic"]
        want_dia = [e for e in expected if e.field == "diastolic"]
        assert got_bp == [
            (s.local_time.astimezone(UTC), s.value, d.value)
            for s, d in zip(want_sys, want_dia, strict=True)
        ]
        assert events[0]["kind"] == "call_button"
        assert events[0]["time"] == datetime(2026, 11, 20, 19, 45, tzinfo=ZONE).astimezone(UTC)

        # Exactly the SMS a doctor should get: the call button, the night-time low, its all clear.
        wait_until("3 SMS", lambda: len(standin.messages) >= 3, timeout=30)
        time.sleep(1.5)  # room for a duplicate to show up, if there were one
        msgs = list(standin.messages)
        assert standin.violations == []
        assert {m.to for m in msgs} == {DOCTOR}
        assert all(m.from_ == SENDER for m in msgs)
        call = [m.body for m in msgs if "call button" in (m.body or "")]
        low = [m.body for m in msgs if "HIGH" in (m.body or "")]
        clear = [m.body for m in msgs if "ALL CLEAR" in (m.body or "")]
        assert len(msgs) == 3 and len(call) == 1 and len(low) == 1 and len(clear) == 1, [
            m.body for m in msgs
        ]
        assert call[0].startswith(
            "homevitals CRITICAL: Ana Novak pressed the call button at 19:45."
            " Call for help from home. Reply ACK "
        )
        assert low[0].startswith(
            "homevitals HIGH: Ana Novak: glucose 3.4 mmol/L at 03:10. Night-time low glucose"
            " (below 3.9 mmol/L between 22:00 and 07:00). Reply ACK "
        )
        assert "glucose 5.8 mmol/L at 07:30" in clear[0]
        assert not any("3.6" in (m.body or "") for m in msgs)  # 15:00 is not night: no SMS

        # Ingest keeps the alert decisions next to the data (dashboard annotations, reports).
        alerts = wait_until("3 alert rows", lambda: len(
            r := store.query_readings("alert", "ana", start, end)) == 3 and r)
        assert sorted((r["rule"], r["state"]) for r in alerts) == [
            ("call-button", "firing"), ("night-low-glucose", "firing"),
            ("night-low-glucose", "resolved")]

        for d in daemons:
            assert d.terminate() == 0, d.log()

        history = Daemon("alerts", cfg, tmp_path, "history", "--patient", "ana", env=env)
        assert history.wait(30) == 0
        out = history.log()
        lines = out.splitlines()
        sent = [line for line in lines if line.lstrip().startswith(("firing", "resolved"))]
        assert len(sent) == 3 and all(" sent " in line and DOCTOR in line for line in sent), out
        assert "night-low-glucose" in out and "call-button" in out and "Dr. Marko Kranjc" in out
    finally:
        for d in daemons:
            d.kill()
