"""`homevitals replay`: each shipped scenario through the whole pipeline (real Mosquitto, the real
gateway, ingest, rules and alerts) in simulated time, and what the care team would receive."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from homevitals.roots.replay import run_replay

ZONE = ZoneInfo("Europe/Ljubljana")
DOCTOR, BACKUP, MANAGER = "+15550100001", "+15550100003", "+15550100004"

# scenario -> the SMS the care team receives: (to, rule, kind, local time), within 3 minutes
# (a fault-free step settles before the clock moves, so the times are exact to the tick).
EXPECTED = {
    "night-low": [
        (DOCTOR, "night-low-glucose", "firing", "2026-11-21 03:06"),
        (DOCTOR, "night-low-glucose", "resolved", "2026-11-21 07:05"),
    ],
    "hypertensive-crisis": [
        (DOCTOR, "hypertensive-crisis", "firing", "2026-11-21 08:15:40"),
        (DOCTOR, "hypertensive-crisis", "resolved", "2026-11-21 19:28:40"),
    ],
    "call-button-night": [
        (DOCTOR, "call-button", "firing", "2026-11-21 02:40"),
        (BACKUP, "call-button", "escalation-1", "2026-11-21 02:45"),
        (MANAGER, "call-button", "escalation-2", "2026-11-21 02:50"),
        (DOCTOR, "call-button", "reminder-1", "2026-11-21 03:00"),
        (BACKUP, "call-button", "reminder-1", "2026-11-21 03:00"),
        (MANAGER, "call-button", "reminder-1", "2026-11-21 03:00"),
    ],
    "cgm-signal-loss": [
        (DOCTOR, "cgm-signal-lost", "firing", "2026-11-21 01:25"),
        # issue 14: the all clear once readings have flowed again for 10 minutes
        (DOCTOR, "cgm-signal-lost", "resolved", "2026-11-21 02:00"),
    ],
    "dead-gateway": [
        (MANAGER, "gateway-offline", "firing", "2026-11-20 21:40"),
        (MANAGER, "gateway-offline", "resolved", "2026-11-20 22:50"),  # back for 10 minutes
    ],
    "device-faults": [
        (DOCTOR, "call-button", "firing", "2026-11-20 15:30"),
    ],
    "normal-week": [],
}


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _local(t: object) -> datetime:
    return datetime.fromisoformat(str(t).replace("Z", "+00:00")).astimezone(ZONE)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_scenario_sends_exactly_the_expected_sms(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_replay(name, out, stream=(tmp_path / "summary.txt").open("w")) == 0
    sms = _jsonl(out / "notifications.jsonl")
    got = [(n["to"], n["rule"], n["kind"], _local(n["time"])) for n in sms]
    assert len(got) == len(EXPECTED[name]), got
    for (to, rule, kind, at), (gto, grule, gkind, gat) in zip(EXPECTED[name], got, strict=True):
        want = datetime.fromisoformat(at).replace(tzinfo=ZONE)
        assert (gto, grule, gkind) == (to, rule, kind)
        assert abs(gat - want) <= timedelta(minutes=3), (name, kind, gat, want)
    for n in sms:  # what a doctor reads on the phone, in the patient's own time zone
        assert n["state"] == "sent" and "Ana Novak" in str(n["text"])
    summary = (tmp_path / "summary.txt").read_text()
    assert "MISSED" not in summary and "UNEXPECTED" not in summary, summary
    assert "steps did not settle" not in summary, summary


def test_sms_text_and_alert_lifecycle_of_the_night_low(tmp_path: Path) -> None:
    run_replay("night-low", tmp_path, stream=(tmp_path / "s.txt").open("w"))
    first = _jsonl(tmp_path / "notifications.jsonl")[0]
    assert first["role"] == "family_doctor" and first["severity"] == "high"
    assert str(first["text"]).startswith(
        "homevitals HIGH: Ana Novak: glucose 3.3 mmol/L at 03:05. Night-time low glucose"
    )
    (alert,) = _jsonl(tmp_path / "alerts.jsonl")
    # The doctor's scripted "ACK {code}" reply at 03:16 acknowledged it; it resolved at 07:05.
    assert _local(alert["opened_at"]).strftime("%H:%M") == "03:06"
    assert _local(alert["acked_at"]).strftime("%H:%M") == "03:16"
    assert _local(alert["resolved_at"]).strftime("%H:%M") == "07:05"
    (reply,) = _jsonl(tmp_path / "replies.jsonl")
    assert reply["text"] == f"ACK {alert['ack_code']}"
    assert "acknowledged" in str(reply["answer"])


def test_faults_lose_nothing_and_keep_real_times(tmp_path: Path) -> None:
    run_replay("device-faults", tmp_path, stream=(tmp_path / "s.txt").open("w"))
    rows = (tmp_path / "readings.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "time,local_time,home,patient,device,measurement,field,value,flags,id"
    # The BP record taken during the link drop arrived two hours later, stored at 07:37.
    assert any(",2026-11-20T07:37:00+01:00,home-novak,ana,bp-1,blood_pressure,systolic,134.0,"
               in r for r in rows), rows
    # The truncated glucose record is kept as a rejected point, with the parser's reason.
    assert any(",rejected,bad_value,0x2A18: flags 0x06 announce a glucose concentration but only"
               " 10 bytes" in r for r in rows), rows
    # The press during the broker outage carries its real time, in the store and in the SMS.
    assert any(",2026-11-20T15:10:00+01:00,home-novak,ana,button-1,event,call_button,press,"
               in r for r in rows), rows
    (sms,) = _jsonl(tmp_path / "notifications.jsonl")
    assert "pressed the call button at 15:10. Call for help" in str(sms["text"])
    assert _local(sms["time"]).strftime("%H:%M") == "15:30"  # sent when the broker was back


def test_same_scenario_and_seed_give_identical_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        run_replay("device-faults", tmp_path / run, stream=(tmp_path / f"{run}.txt").open("w"))
    for f in ("notifications.jsonl", "alerts.jsonl", "readings.csv", "replies.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_cli_replay_on_amqtt_matches_mosquitto_and_seed_changes_readings(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "homevitals.roots.cli", "--log-level", "ERROR",
                               "replay", *args], capture_output=True, text=True, timeout=240)

    a = cli("night-low", "--out", str(tmp_path / "m"), "--broker", "mosquitto")
    b = cli("night-low", "--out", str(tmp_path / "q"), "--broker", "amqtt")
    c = cli("night-low", "--out", str(tmp_path / "s"), "--seed", "99")
    for r in (a, b, c):
        assert r.returncode == 0, r.stderr
    assert "pipeline: embedded mosquitto broker, sqlite store" in a.stdout
    assert "pipeline: embedded amqtt broker, sqlite store" in b.stdout
    for f in ("notifications.jsonl", "alerts.jsonl", "readings.csv"):
        assert (tmp_path / "m" / f).read_bytes() == (tmp_path / "q" / f).read_bytes(), f
    assert (tmp_path / "m" / "readings.csv").read_text() != (tmp_path / "s" / "readings.csv"
                                                              ).read_text()
    assert ", seed 99" in c.stdout


def test_an_sms_storm_is_capped_by_the_alarm_budget(tmp_path: Path) -> None:
    """Issue 14: a flapping missing-data rule would send 18 SMS in three hours; the doctor gets
    at most 4 in any 60 minutes, and every held-back SMS is listed in a digest."""
    assert run_replay("sms-storm", tmp_path, stream=(tmp_path / "s.txt").open("w")) == 0
    notes = _jsonl(tmp_path / "notifications.jsonl")
    sent = [n for n in notes if n["state"] == "sent"]
    held = [n for n in notes if n["state"] != "sent"]
    assert [(str(n["kind"]).split("-")[0], _local(n["time"]).strftime("%H:%M")) for n in sent] == [
        ("firing", "01:05"), ("resolved", "01:15"), ("firing", "01:25"), ("resolved", "01:35"),
        ("digest", "02:05"), ("firing", "03:05"), ("digest", "03:05"), ("resolved", "03:15"),
        ("firing", "03:25"), ("digest", "04:05"),
    ]
    times = [_local(n["time"]) for n in sent]
    assert all(sum(t <= u < t + timedelta(hours=1) for u in times) <= 4 for t in times)
    assert len(held) == 11 and {n["state"] for n in held} == {"digested"}
    digests = [str(n["text"]) for n in sent if str(n["kind"]).startswith("digest-")]
    assert [d.split(":", 1)[1].split(" (")[0] for d in digests] == [
        " 2 SMS held back", " 6 SMS held back", " 3 SMS held back"]
    summary = (tmp_path / "s.txt").read_text()
    assert "10 SMS (11 more folded into digests)" in summary, summary
    assert "MISSED" not in summary and "UNEXPECTED" not in summary, summary
