"""The alarm budget (issue 14): at most ``alerts.sms_per_hour`` SMS per person and patient in
any 60 minutes, the rest folded into one digest SMS; critical always goes through.

The alert service runs in-process on a simulated clock (an hour of storm in a few seconds), with
a real Mosquitto carrying the decisions, the console notifier printing each SMS, and the same
SQLite ledger file across a restart.
"""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
import yaml
from daemons import wait_until

from homevitals.alerts.app import AlertsApp
from homevitals.alerts.notifier import ConsoleNotifier
from homevitals.alerts.telemetry import alerts_metrics as _metrics
from homevitals.infra.runtime import Runner
from homevitals.vocab import wire
from homevitals.vocab.clock import SimulatedClock
from homevitals.vocab.config import Config, MetricsConfig
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

DOCTOR = "+15550100001"
T0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 02:00 in Ljubljana
_SMS = re.compile(r"^SMS to (\+\d+) \(sid [^)]+\):\n  (.*)$", re.MULTILINE)


class Service:
    """The alert service on a simulated clock; ``restart`` keeps the ledger file."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp, self.port = tmp, port
        self.clock = SimulatedClock(T0)
        self.out = io.StringIO()
        self.data: dict[str, Any] = {
            "mqtt": {"host": "127.0.0.1", "port": port},
            "homes": [{
                "id": "home-novak", "timezone": "Europe/Ljubljana",
                "patients": [{"id": "ana", "name": "Ana Novak", "care_team": [
                    {"name": "Dr. Marko Kranjc", "role": "family_doctor", "phone": DOCTOR},
                ]}],
            }],
            "alerts": {
                "client_id": f"alerts-budget-{tmp.name}"[:60],
                "notifier": "console",
                "outbox_path": str(tmp / "ledger.sqlite"),
                # One SMS per alert: no escalation or reminder within the test's two hours.
                "routes": [{"chain": ["family_doctor"], "escalate_after_minutes": 720,
                            "renotify_minutes": 720, "max_reminders": 0}],
            },
        }
        (tmp / "homevitals.yaml").write_text(yaml.safe_dump(self.data))
        self.cfg = Config.model_validate(self.data)
        self.app = self._start()

    def _start(self) -> AlertsApp:
        app = AlertsApp(self.cfg, ConsoleNotifier(self.out), self.clock)
        app.start()
        assert app.subscriber.subscribed.wait(20)
        return app

    def restart(self) -> None:
        self.app.stop()
        self.app = self._start()

    def sms(self) -> list[tuple[str, str]]:
        return _SMS.findall(self.out.getvalue())

    def ledger(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.tmp / "ledger.sqlite", timeout=10) as db:
            return db.execute(sql, args).fetchall()

    def alert(self, minute: float, n: int, severity: str = "medium", state: str = "firing") -> str:
        """At T0 + minute, a decision; waits until the service has sent or folded its SMS."""
        self.clock.set(T0 + timedelta(minutes=minute))
        t = self.clock.now()
        aid = f"storm{n:027d}"
        if severity == "critical":
            d = AlertDecision(
                alert_id=aid, state="firing", home="home-novak", patient="ana",  # type: ignore[arg-type]
                rule="call-button", severity="critical",  # type: ignore[arg-type]
                reason="Call for help from home", time=t, measurement="event",
                field="call_button", observed_at=t,
            )
        else:
            d = AlertDecision(
                alert_id=aid, state=state, home="home-novak", patient="ana",  # type: ignore[arg-type]
                rule="cgm-signal-lost-night", severity=severity,  # type: ignore[arg-type]
                reason="No glucose reading for 30 minutes at night", time=t,
                measurement="glucose", observed_at=t - timedelta(minutes=30),
            )
        mqtt_publish.single(Topics().alert("home-novak", "ana"), wire.encode(d), qos=1,
                            hostname="127.0.0.1", port=self.port)
        wait_until(f"alert {n} handled", lambda: self.ledger(
            "SELECT state FROM notifications WHERE alert_id=? AND kind=? AND state NOT IN"
            " ('pending','sending')", aid, "firing" if state == "firing" else "resolved"), 20)
        return aid

    def settle_digest(self, minute: float) -> None:
        self.clock.set(T0 + timedelta(minutes=minute))
        wait_until("no digest waiting or unsent", lambda: not self.app.budget.digest_due(
            self.clock.now()) and not self.ledger(
            "SELECT 1 FROM notifications WHERE state IN ('pending','sending')"), 20)

    def codes(self, *aids: str) -> list[str]:
        return [self.ledger("SELECT ack_code FROM alerts WHERE alert_id=?", a)[0][0] for a in aids]


@pytest.fixture
def service(tmp_path: Path, mosquitto: Any) -> Iterator[Service]:
    s = Service(tmp_path, mosquitto.port)
    yield s
    s.app.stop()


def test_a_storm_is_capped_at_four_sms_and_one_digest_per_hour(service: Service) -> None:
    # The missing-data flapping of the DST night: a new alert every 5 minutes for an hour.
    aids = [service.alert(5 * i, i) for i in range(12)]
    sent = service.sms()
    assert len(sent) == 4 and all(to == DOCTOR for to, _ in sent)
    assert service.ledger("SELECT state, COUNT(*) FROM notifications GROUP BY state") == [
        ("folded", 8), ("sent", 4),
    ]
    service.settle_digest(59.9)  # all four SMS are within the last 60 minutes
    assert len(service.sms()) == 4
    service.settle_digest(60)  # the first has left the window: one may go, and it is the digest
    (to, digest), = service.sms()[4:]
    codes = service.codes(*aids[4:])
    lines = "; ".join(f"{2 + (20 + 5 * i) // 60:02d}:{(20 + 5 * i) % 60:02d} MEDIUM no glucose"
                      f" data ACK {c}" for i, c in enumerate(codes))
    assert to == DOCTOR and digest == (
        f"homevitals DIGEST for Ana Novak: 8 SMS held back (4 per hour): {lines}."
    )
    assert service.ledger("SELECT state, COUNT(*) FROM notifications GROUP BY state") == [
        ("digested", 8), ("sent", 5),
    ]
    # The digest counts: the next alert is folded again; and while that one waits for the next
    # digest, so is the one after, though a slot has opened (the storm goes on).
    service.alert(61, 12)
    service.alert(66, 13)
    assert len(service.sms()) == 5
    assert service.app.budget.folded_total() == 10
    service.settle_digest(119.9)  # one digest an hour
    assert len(service.sms()) == 5
    service.settle_digest(120)
    assert service.sms()[5][1].startswith(
        "homevitals DIGEST for Ana Novak: 2 SMS held back (4 per hour): 03:01 MEDIUM no glucose"
        " data ACK ")
    assert len(service.sms()) == 6

    # The audit trail shows each folded SMS and the digest that carried it.
    history = subprocess.run(
        [sys.executable, "-m", "homevitals.roots.cli", "alerts", "history", "--config",
         str(service.tmp / "homevitals.yaml"), "--patient", "ana"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    smsline = re.compile(r"^  (firing|digest-\d+) +(\w+) ", re.MULTILINE)
    assert sorted(Counter(smsline.findall(history)).items()) == [
        (("digest-14", "sent"), 1), (("digest-5", "sent"), 1), (("firing", "digested"), 10),
        (("firing", "sent"), 4),
    ], history
    assert history.count("folded by the alarm budget (4 SMS per hour about ana)") == 10
    assert history.count("listed in digest SMS digest-") == 10
    # ... and the metric a Prometheus scrape of the alerts daemon reads.
    runner = Runner(service.app, MetricsConfig(port=0), lambda: _metrics(service.app))
    with runner.serving():
        assert runner.health is not None
        port = runner.health.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
    assert "homevitals_alerts_sms_folded_total 10.0" in metrics


def test_critical_goes_through_over_budget_and_counts(service: Service) -> None:
    for i in range(4):
        service.alert(5 * i, i)
    service.alert(20, 4, "critical")
    service.alert(25, 5)
    sent = [body for _, body in service.sms()]
    assert len(sent) == 5 and sent[4].startswith(
        "homevitals CRITICAL: Ana Novak pressed the call button at 02:20.")
    assert service.ledger("SELECT COUNT(*) FROM notifications WHERE state='folded'") == [(1,)]
    # The critical SMS counts: at +60 min, +5, +10, +15 and +20 are still in the window.
    service.settle_digest(60)
    assert len(service.sms()) == 5
    service.settle_digest(65)
    assert service.sms()[5][1].startswith("homevitals DIGEST for Ana Novak: 1 SMS held back")


def test_the_count_survives_a_restart_mid_hour(service: Service) -> None:
    for i in range(3):
        service.alert(5 * i, i)
    service.restart()  # a new process state on the same ledger file, 10 minutes in
    service.alert(15, 3)
    service.alert(20, 4)
    service.restart()
    service.alert(25, 5)
    assert len(service.sms()) == 4
    assert service.ledger("SELECT state, COUNT(*) FROM notifications GROUP BY state") == [
        ("folded", 2), ("sent", 4),
    ]
    service.settle_digest(61)
    assert [b[:48] for _, b in service.sms()[4:]] == [
        "homevitals DIGEST for Ana Novak: 2 SMS held back"]
    # The doctor heard of alert 4 through the digest, so its all clear is theirs too (folded
    # again: 5, 10, 15 and the digest at 61 fill the window).
    service.alert(62, 4, state="resolved")
    assert service.ledger(
        "SELECT kind, state FROM notifications WHERE alert_id=? ORDER BY id", f"storm{4:027d}"
    ) == [("firing", "digested"), ("resolved", "folded")]
