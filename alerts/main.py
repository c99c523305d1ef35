"""The alerts daemon's one entry point: decisions from MQTT -> ledger -> SMS.

Threads: paho's network thread records each decision in the ledger (one SQLite commit) and only
then acknowledges it; one sender thread calls the notifier (a blocking HTTP request to Twilio)
off the network thread.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta

import paho.mqtt.client as mqtt

from homevitals import wire
from homevitals.alerts.errors import NotifyError
from homevitals.alerts.ledger import Ledger, Notification
from homevitals.alerts.notifier import Notifier
from homevitals.alerts.text import alert_text
from homevitals.clock import Clock
from homevitals.config import CareRole, Config
from homevitals.errors import WireError
from homevitals.readings import AlertDecision
from homevitals.subscriber import Subscriber
from homevitals.topics import Topics

__all__ = ["AlertsApp", "run_alerts"]

logger = logging.getLogger(__name__)


class AlertsApp:
    def __init__(self, cfg: Config, notifier: Notifier, clock: Clock) -> None:
        self.cfg = cfg
        self.acfg = cfg.alerts
        self.notifier = notifier
        self.clock = clock
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.ledger = Ledger(self.acfg.outbox_path)
        self.rejected = 0
        self.subscriber = Subscriber(
            cfg.mqtt, self.acfg.client_id, [self.topics.all_alerts], self.handle
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="alerts-sender", daemon=True)

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        try:
            d = wire.decode(msg.payload)
        except WireError as exc:
            self.rejected += 1
            logger.error("alerts cannot read a decision on %s: %s", msg.topic, exc)
            return
        if not isinstance(d, AlertDecision):
            self.rejected += 1
            return
        try:
            home, patient = self.cfg.patient(d.patient)
        except KeyError:
            self.rejected += 1
            logger.error("alert %s names unknown patient %s", d.alert_id, d.patient)
            return
        body = alert_text(d, patient.name, home.zone)
        # Routing by role and severity, escalation chains: issue 6. Here: the family doctor(s).
        notes = [
            (m.phone, m.name, str(m.role), body)
            for m in patient.care_team
            if m.role == CareRole.FAMILY_DOCTOR
        ]
        if self.ledger.record(d, notes, self.clock.now()):
            self._wake.set()

    def start(self) -> None:
        for n in self.ledger.interrupted():
            logger.warning(
                "SMS %d to %s was interrupted mid-send at the last stop; it will be sent "
                "again and may arrive twice",
                n.id,
                n.recipient,
            )
        self._sender.start()
        self.subscriber.start()

    def stop(self) -> None:
        self.subscriber.stop()
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=30)
        self.ledger.close()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            for n in self.ledger.due(self.clock.now()):
                if self._stop.is_set():
                    return
                self._send(n)

    def _send(self, n: Notification) -> None:
        now = self.clock.now()
        self.ledger.mark_sending(n, now)
        try:
            result = self.notifier.send(n.recipient, n.body)
        except NotifyError as exc:
            if exc.retryable and n.attempts + 1 < self.acfg.max_attempts:
                delay = min(
                    self.acfg.retry_initial_seconds * 2**n.attempts, self.acfg.retry_max_seconds
                )
                self.ledger.mark_retry(
                    n, now + timedelta(seconds=delay), str(exc), self.clock.now()
                )
                self._wake.set()
            else:
                logger.error("%s", exc)
                self.ledger.mark_failed(n, str(exc), self.clock.now())
            return
        self.ledger.mark_sent(n, result.sid, self.clock.now())
        logger.info("SMS %s to %s (%s) for alert %s", result.sid, n.recipient, n.role, n.alert_id)

    def idle(self) -> bool:
        return self.ledger.pending_count() == 0


def run_alerts(cfg: Config, notifier: Notifier, clock: Clock) -> None:
    app = AlertsApp(cfg, notifier, clock)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    stop.wait()
    app.stop()
