"""The alert service's stories as a doctor lives them: real daemon processes, a real Mosquitto,
the real twilio client against the Twilio stand-in, signed webhooks, SIGKILL and restart.

Where a story waits for an escalation or a reminder, the alert service runs in this process on a
simulated clock (``Story.here``) and the test moves the clock past the due time instead of
sleeping until it (issue 16). The daemon stories keep intervals of seconds
(escalate_after_minutes: 0.05 = 3 s); every wait is bounded and generous, never a tight
wall-clock assertion.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.publish as mqtt_publish
import pytest
from daemons import Daemon, wait_until, write_config
from servers import free_port
from twilio.request_validator import RequestValidator
from twilio_standin import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioStandin

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.twilio_notifier import TwilioNotifier
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config
from homevitals.vocab.readings import AlertDecision, FieldValue, Reading
from homevitals.vocab.topics import Topics
from homevitals.vocab.units import Unit

DOCTOR, BACKUP, MANAGER, FAMILY = "+15550100001", "+15550100002", "+15550100003", "+15550100004"
STRANGER = "+15550100999"
SENDER = "+15550109999"
PUBLIC_URL = "https://alerts.health-centre.example/twilio"
ENV = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
ZONE = ZoneInfo("Europe/Ljubljana")


@pytest.fixture
def standin() -> Any:
    with TwilioStandin() as s:
        yield s


class Story:
    """One alerts daemon (and optionally the rules daemon) around a fresh ledger."""

    def __init__(self, tmp: Path, mqtt_port: int, standin: TwilioStandin, **alerts: Any) -> None:
        self.tmp, self.port, self.standin = tmp, mqtt_port, standin
        self.webhook_port = free_port()
        routes = alerts.pop("routes", [{
            "chain": ["family_doctor", "backup_doctor", "health_manager"],
            "escalate_after_minutes": 0.05, "renotify_minutes": 0.05, "max_reminders": 1,
        }])
        self.data = {
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "homes": [{
                "id": "home-novak", "timezone": "Europe/Ljubljana",
                "patients": [{"id": "ana", "name": "Ana Novak", "care_team": [
                    {"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR},
                    {"name": "Dr. Nina Zupan", "role": "backup_doctor", "phone": BACKUP},
                    {"name": "Maja Kos", "role": "health_manager", "phone": MANAGER},
                    {"name": "Petra Novak", "role": "family_member", "phone": FAMILY},
                ]}],
                "devices": [{"id": "glucometer-1", "kind": "glucose_meter", "patient": "ana"}],
            }],
            "rules": {
                "client_id": f"rules-{secrets.token_hex(4)}",
                "state_path": str(tmp / "rules.sqlite"),
                "definitions": [{
                    "id": "night-low-glucose", "kind": "threshold", "measurement": "glucose",
                    "field": "glucose", "below": 3.9, "clear_at": 4.4, "unit": "mmol/L",
                    "window": {"start": "22:00", "end": "07:00"}, "severity": "high",
                    "reason": "Night-time low glucose (below 3.9 mmol/L between 22:00 and 07:00)",
                }],
            },
            "alerts": {
                "client_id": f"alerts-{secrets.token_hex(4)}",
                "notifier": "twilio",
                "outbox_path": str(tmp / "ledger.sqlite"),
                "retry_initial_seconds": 0.3,
                "sweep_seconds": 1,
                "twilio": {"from_number": SENDER, "api_base_url": standin.base_url,
                           "timeout_seconds": 3},
                "webhook": {"host": "127.0.0.1", "port": self.webhook_port,
                            "public_url": PUBLIC_URL},
                "routes": routes,
                **alerts,
            },
        }
        self.config = write_config(tmp / "homevitals.yaml", self.data)
        self.daemons: list[Daemon] = []
        self.app: AlertsApp | None = None
        self.clock = SimulatedClock(datetime.now(UTC))

    def start(self, name: str = "alerts") -> Daemon:
        d = Daemon(name, self.config, self.tmp, env=ENV)
        self.daemons.append(d)
        d.wait_log("ready: subscribed")
        return d

    def here(self) -> AlertsApp:
        """The alert service in this process, on ``self.clock``, with the real twilio client
        against the stand-in and the signed webhook, as the daemon wires them."""
        cfg = Config.model_validate(self.data)
        notifier = TwilioNotifier(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=SENDER,
                                  api_base_url=self.standin.base_url, timeout=3)
        self.app = AlertsApp(cfg, notifier, self.clock, auth_token=TEST_AUTH_TOKEN)
        self.app.start()
        assert self.app.subscriber.subscribed.wait(20)
        return self.app

    def advance(self, minutes: float) -> None:
        """Move the clock on, then wait until the service has taken and sent all that is due."""
        self.clock.advance(timedelta(minutes=minutes))
        self.quiet()

    def quiet(self) -> None:
        app = self.app
        assert app is not None
        wait_until("nothing due and nothing left to send", lambda: not app.ledger.due_alerts(
            self.clock.now()) and app.ledger.pending_count() == 0)

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()
        for d in self.daemons:
            d.kill()

    def decide(self, severity: str = "critical", state: str = "firing",
               alert_id: str | None = None, rule: str = "call-button") -> str:
        aid = alert_id or "a" + secrets.token_hex(15)
        now = datetime.now(UTC)
        d = AlertDecision(
            alert_id=aid, state=state, home="home-novak", patient="ana",  # type: ignore[arg-type]
            rule=rule, severity=severity, reason="Call for help from home",  # type: ignore[arg-type]
            time=now, measurement="event", field="call_button", observed_at=now,
        )
        mqtt_publish.single(Topics().alert("home-novak", "ana"), wire.encode(d), qos=1,
                            hostname="127.0.0.1", port=self.port)
        return aid

    def sms_to(self, number: str) -> list[str]:
        return [m.body or "" for m in self.standin.messages if m.to == number]

    def wait_sms(self, number: str, count: int = 1, timeout: float = 30) -> list[str]:
        return wait_until(f"{count} SMS to {number}",
                          lambda: len(b := self.sms_to(number)) >= count and b, timeout)

    def ledger(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.tmp / "ledger.sqlite", timeout=10) as db:
            return db.execute(sql, args).fetchall()

    def post(self, path: str, params: dict[str, str], signature: str | None = None) -> tuple[
        int, str
    ]:
        sig = signature or RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            PUBLIC_URL + path, params)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.webhook_port}/twilio{path}",
            data=urllib.parse.urlencode(params).encode(), method="POST",
            headers={"X-Twilio-Signature": sig,
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def history(self) -> str:
        h = Daemon("alerts", self.config, self.tmp, "history", "--patient", "ana", env=ENV)
        assert h.wait(30) == 0, h.log()
        return h.log()


@pytest.fixture
def story(tmp_path: Path, mosquitto: Any, standin: TwilioStandin) -> Any:
    s = Story(tmp_path, mosquitto.port, standin)
    yield s
    s.stop()


def ack_code(body: str) -> str:
    found = re.search(r"Reply ACK (\d+)", body)
    assert found, body
    return found.group(1)


def test_overnight_low_reaches_the_doctor_with_flags_and_an_ack_code(story: Story) -> None:
    story.start("rules")
    story.start("alerts")
    night = datetime(2026, 11, 21, 3, 10, tzinfo=ZONE)

    def publish(t: datetime, value: float, flags: tuple[str, ...] = ()) -> None:
        r = Reading(reading_id="r" + secrets.token_hex(8), home="home-novak", patient="ana",
                    device="glucometer-1", measurement="glucose",  # type: ignore[arg-type]
                    fields={"glucose": FieldValue(value, Unit("mmol/L"))}, time=t,
                    received_at=t, flags=flags)
        mqtt_publish.single(Topics().reading("home-novak", "glucometer-1"), wire.encode(r),
                            qos=1, hostname="127.0.0.1", port=story.port)

    publish(night, 3.4, ("body_movement",))
    [low] = story.wait_sms(DOCTOR)
    # The threshold detail is dropped to keep one SMS segment (160 characters).
    assert re.fullmatch(
        r"homevitals HIGH: Ana Novak: glucose 3\.4 mmol/L at 03:10\. Night-time low"
        r" glucose\. Device flags: body movement\. Reply ACK \d{4}", low), low
    publish(night + timedelta(minutes=20), 4.2)  # inside the hysteresis band: still open
    publish(night + timedelta(hours=4, minutes=20), 5.8)
    _, clear = story.wait_sms(DOCTOR, 2)
    assert clear.startswith("homevitals ALL CLEAR: Ana Novak: glucose 5.8 mmol/L at 07:30.")
    assert f"(alert ACK {ack_code(low)})" in clear
    wait_until("nothing left to send", lambda: story.ledger(
        "SELECT COUNT(*) FROM notifications WHERE state IN ('pending','sending')") == [(0,)])
    assert len(story.sms_to(DOCTOR)) == 2
    assert story.standin.violations == []


def test_unacknowledged_alert_escalates_twice_then_reminds(story: Story) -> None:
    story.data["alerts"]["routes"][0].update(escalate_after_minutes=10, renotify_minutes=15)
    story.here()
    story.decide()
    [first] = story.wait_sms(DOCTOR)
    assert first.startswith("homevitals CRITICAL: Ana Novak pressed the call button at ")
    story.advance(9.9)
    assert story.sms_to(BACKUP) == []  # not yet
    story.advance(0.1)
    [second] = story.wait_sms(BACKUP)
    assert second.startswith("ESCALATED, not acknowledged by Dr. Marko Kranjc. homevitals"
                             " CRITICAL: Ana Novak pressed the call button")
    story.advance(10)
    [third] = story.wait_sms(MANAGER)
    assert third.startswith("ESCALATED, not acknowledged by Dr. Marko Kranjc, Dr. Nina Zupan.")
    story.advance(15)
    for number in (DOCTOR, BACKUP, MANAGER):  # max_reminders: 1, to everyone told
        assert story.wait_sms(number, 2)[1].startswith("REMINDER 1, still not acknowledged.")
    story.advance(15)
    story.advance(24 * 60)  # the chain has ended: nothing more, however long
    counts = Counter(m.to for m in story.standin.messages)
    assert counts == {DOCTOR: 2, BACKUP: 2, MANAGER: 2}, counts  # never the family member
    out = story.history()
    assert "escalated to step 2 of 3: Dr. Nina Zupan (backup_doctor)" in out
    assert "escalated to step 3 of 3: Maja Kos (health_manager)" in out
    assert "end of the chain: no more reminders" in out


def test_ack_by_signed_sms_stops_the_escalation_and_a_forged_one_is_rejected(
    story: Story,
) -> None:
    story.data["alerts"]["routes"][0]["escalate_after_minutes"] = 10
    story.here()
    story.decide()
    [body] = story.wait_sms(DOCTOR)
    code = ack_code(body)
    ack = {"MessageSid": "SM" + secrets.token_hex(16), "From": DOCTOR, "To": SENDER,
           "Body": f"ack {code}", "AccountSid": TEST_ACCOUNT_SID}

    forged = story.post("/inbound", ack, signature="bm90IGEgc2lnbmF0dXJl")
    assert forged == (403, "")
    wrong_url = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        f"http://127.0.0.1:{story.webhook_port}/twilio/inbound", ack)
    assert story.post("/inbound", ack, signature=wrong_url)[0] == 403
    stranger = {**ack, "MessageSid": "SM" + secrets.token_hex(16), "From": STRANGER}
    assert story.post("/inbound", stranger) == (
        200, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>')
    assert story.ledger("SELECT acked_at FROM alerts") == [(None,)]

    status, reply = story.post("/inbound", ack)
    assert status == 200
    assert f"<Message>homevitals: alert ACK {code} for Ana Novak acknowledged." in reply
    assert story.post("/inbound", ack)[1].endswith("<Response></Response>")  # same MessageSid
    story.advance(60)  # past the escalation: nobody else is woken
    assert [m.to for m in story.standin.messages] == [DOCTOR]
    out = story.history()
    assert "acknowledged by Dr. Marko Kranjc (family_doctor, +15550100001) via SMS reply" in out
    assert re.search(r"acknowledged \S+ by Dr. Marko Kranjc", out)


def test_alert_service_killed_mid_escalation_continues_and_sends_nothing_twice(
    story: Story,
) -> None:
    alerts = story.start()
    story.decide()
    story.wait_sms(DOCTOR)
    story.standin.delay_next(4.0)  # the escalation to the backup doctor hangs at Twilio ...
    wait_until("the backup's SMS in flight", lambda: story.ledger(
        "SELECT 1 FROM notifications WHERE recipient=? AND state='sending'", BACKUP))
    alerts.proc.kill()  # ... and the service dies mid-request (SIGKILL)
    alerts.proc.wait(10)
    restarted = story.start()
    story.wait_sms(MANAGER, timeout=40)  # the chain goes on after the restart
    wait_until("the backup's SMS settled", lambda: story.ledger(
        "SELECT state FROM notifications WHERE recipient=? AND kind LIKE 'escalation-%'",
        BACKUP) == [("sent",)])
    firsts = Counter(m.to for m in story.standin.messages if not (m.body or "").startswith(
        "REMINDER"))
    assert firsts == {DOCTOR: 1, BACKUP: 1, MANAGER: 1}, firsts
    assert "interrupted mid-send" in restarted.log()
    out = story.history()
    assert "found at Twilio after a restart, not sent again" in out
    assert story.standin.violations == []


def test_twilio_429_and_500_are_retried_with_growing_delay(story: Story) -> None:
    # No escalation or reminder while the retries run, however slow the machine is.
    story.data["alerts"]["routes"][0]["escalate_after_minutes"] = 10
    write_config(story.config, story.data)
    story.standin.fail_next(status=429)
    story.standin.fail_next(status=500)
    story.start()
    story.decide()
    [body] = story.wait_sms(DOCTOR)
    assert body.startswith("homevitals CRITICAL")
    assert [r.status for r in story.standin.requests][:3] == [429, 500, 201]
    retries = story.ledger("SELECT time, entry FROM log WHERE entry LIKE '%will be retried%'")
    assert len(retries) == 2
    assert "HTTP 429" in retries[0][1] and "HTTP 500" in retries[1][1]
    # The stand-in has the SMS a moment before the service has recorded Twilio's answer.
    wait_until("the SMS recorded as sent", lambda: story.ledger(
        "SELECT attempts, state FROM notifications WHERE recipient=?", DOCTOR) == [(3, "sent")])


@pytest.mark.parametrize(
    ("code", "message"),
    [(21211, "The 'To' number +15550100001 is not a valid phone number."),
     (21610, "Attempt to send to unsubscribed recipient")],
)
def test_permanent_error_moves_to_the_next_person_at_once(
    tmp_path: Path, mosquitto: Any, standin: TwilioStandin, code: int, message: str
) -> None:
    s = Story(tmp_path, mosquitto.port, standin, routes=[{
        "chain": ["family_doctor", "backup_doctor"], "escalate_after_minutes": 10}])
    try:
        standin.fail_next(status=400, code=code, message=message)
        s.start()
        s.decide()
        [body] = s.wait_sms(BACKUP, timeout=20)  # not after 10 minutes: at once
        assert body.startswith("ESCALATED, not acknowledged by Dr. Marko Kranjc.")
        assert s.sms_to(DOCTOR) == []
        out = s.history()
        assert f"Twilio error {code}" in out and message in out
        assert "nobody at step 1 reachable" in out
    finally:
        s.stop()


def test_undelivered_status_callback_escalates_and_is_recorded(story: Story) -> None:
    story.data["alerts"]["routes"][0]["escalate_after_minutes"] = 10
    write_config(story.config, story.data)
    story.start()
    story.decide()
    story.wait_sms(DOCTOR)
    [sid] = [m.sid for m in story.standin.messages]
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003",
              "AccountSid": TEST_ACCOUNT_SID, "To": DOCTOR}
    assert story.post("/status", params, signature="forged")[0] == 403
    assert story.post("/status", params)[0] == 204
    story.wait_sms(BACKUP, timeout=20)
    out = story.history()
    assert f"sid {sid} (undelivered)" in out and "undelivered (error 30003)" in out


def test_ack_from_the_command_line_and_history(story: Story) -> None:
    story.here()
    story.decide()
    code = ack_code(story.wait_sms(DOCTOR)[0])
    ack = Daemon("alerts", story.config, story.tmp, "ack", code, "--by", "Nurse Eva", env=ENV)
    assert ack.wait(30) == 0, ack.log()
    assert "acknowledged alert" in ack.log() and "by Nurse Eva" in ack.log()
    story.advance(1)  # the command line wrote its SMS at its own (wall) time: catch up with it
    # The doctor who was told hears that it is taken care of; nobody is escalated to.
    [_, told] = story.wait_sms(DOCTOR, 2)
    assert told.startswith("homevitals: Nurse Eva acknowledged the CRITICAL alert about Ana Novak"
                           f" (ACK {code})")
    story.advance(60)
    assert story.sms_to(BACKUP) == []
    again = Daemon("alerts", story.config, story.tmp, "ack", code, env=ENV)
    assert again.wait(30) == 1 and f"error: no open alert has the code {code}" in again.log()
    out = story.history()
    assert "acknowledged by Nurse Eva via the command line" in out
    assert "call-button  critical  acknowledged" in out
