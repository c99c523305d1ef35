"""The alerts daemon's parts, wired: decisions from MQTT -> ledger -> SMS, timers, webhook (its
entry point is ``alerts/main.py``).

Threads: paho's network thread records each decision in the ledger (SQLite commits) and only then
acknowledges it; one sender thread calls the notifier (a blocking HTTP request to Twilio) and is
the only thread that talks to Twilio; one timer thread sleeps on the injected clock until the
next escalation step or reminder is due in the ledger (``alerts/timers.py``); one thread records
the decisions that were held on disk while the ledger was unreachable (``alerts/held.py``); the
webhook's HTTP threads take ACK replies and delivery reports. They share only the ledger, which
locks. Each is declared to the runner (``workers``), with the broker session and the subscription
as readiness (``conditions``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
from sqlalchemy.exc import SQLAlchemyError

from homevitals.alerts.budget import AlarmBudget
from homevitals.alerts.errors import AlertsError, NotifyError
from homevitals.alerts.escalation import Escalator
from homevitals.alerts.held import HeldDecisions
from homevitals.alerts.ledger import Ledger, Notification
from homevitals.alerts.notifier import FindsSent, Notifier
from homevitals.alerts.patient_text import patient_reply
from homevitals.alerts.templates import language
from homevitals.alerts.text import display_name
from homevitals.alerts.timers import DueWorker
from homevitals.alerts.webhook import Webhook
from homevitals.infra.deadletter import DeadLetters
from homevitals.infra.outbox import DurableQueue, OutboxPump
from homevitals.infra.runtime import Condition, Progress, Worker, thread_worker
from homevitals.infra.subscriber import Subscriber
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import Config, PatientConfig
from homevitals.vocab.errors import WireError
from homevitals.vocab.origin import Registry
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

__all__ = ["AlertsApp"]

logger = logging.getLogger(__name__)

_ACK = re.compile(r"\bACK\s*#?\s*(\d{4,9})\b", re.IGNORECASE)
_DEAD_DELIVERY = ("failed", "undelivered")


class AlertsApp:
    def __init__(
        self, cfg: Config, notifier: Notifier, clock: Clock, *, auth_token: str | None = None,
        ack_codes: Callable[[int], int] | None = None, timer_thread: bool = True,
    ) -> None:
        """``timer_thread=False``: a driver takes the timer's passes itself (``timers.step``,
        a replay at its scheduler ticks) instead of the thread that sleeps on the clock."""
        self.timer_thread = timer_thread
        self.cfg = cfg
        self.acfg = cfg.alerts
        self.notifier = notifier
        self.clock = clock
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.ledger = Ledger(self.acfg.ledger_url or self.acfg.outbox_path, ack_codes)
        self.budget = AlarmBudget(self.ledger.db, cfg)  # issue 14, the ledger's database
        self._wake = threading.Event()
        self.escalator = Escalator(
            cfg, self.ledger, clock, lambda *_: self.timers.kick(), on_new=self._wake.set
        )
        # sweep_seconds: the longest one sleep of the timer lasts, for due times that another
        # process (the CLI, the console) wrote.
        self.timers = DueWorker(self.escalator, self.acfg.sweep_seconds, self._wake.set)
        self.registry = Registry(cfg.homes)
        self.sms = {"sent": 0, "failed": 0}  # since start, for /metrics (counters)
        for p in (p for h in cfg.homes for p in h.patients):
            language(p.language)  # issue 20: no templates for a patient's language fails start
        # Dead letters wait in the ledger's database file (tables of their own) for the broker.
        self.outbox = DurableQueue(self.acfg.outbox_path)
        self.dead = DeadLetters("alerts", self.outbox, self.topics, clock)
        self.subscriber = Subscriber(
            cfg.mqtt_for("alerts"), self.acfg.client_id, list(self.topics.alerts_subscriptions),
            self.handle, self.dead.keep,
        )
        self.pump = OutboxPump(self.subscriber.client, self.outbox, name="alerts")
        self.dead.on_kept = self.pump.notify
        self.held = HeldDecisions(self.outbox, self.escalator.on_decision, self._on_held_recorded,
                                  self.dead.keep)
        self.subscriber.on_connected.append(self.pump.set_connected)
        self.subscriber.client.on_publish = (
            lambda _c, _ud, mid, rc, _p=None: self.pump.on_publish(mid, rc)
        )
        self.webhook: Webhook | None = None
        if self.acfg.webhook is not None:
            if not auth_token:
                raise AlertsError("alerts.webhook needs the Twilio auth token to check signatures")
            self.webhook = Webhook(self.acfg.webhook, auth_token, self.on_inbound, self.on_status)
        # Twilio's timeout plus a margin: a request older than that can no longer be in flight.
        timeout = self.acfg.twilio.timeout_seconds if self.acfg.twilio else 10.0
        self.reconcile_after = timedelta(seconds=timeout + 2.0)
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="alerts-sender", daemon=True)
        self.sender_progress = Progress()

    def workers(self) -> list[Worker]:
        out = [
            *self.subscriber.watch.workers(),
            thread_worker("alerts-sender", self._sender, self.sender_progress),
            self.pump.worker(),  # dead letters to the broker
            self.held.worker(),  # decisions that wait for the ledger
            *([self.timers.worker()] if self.timer_thread else []),
        ]
        return out + ([self.webhook.worker()] if self.webhook is not None else [])

    def conditions(self) -> list[Condition]:
        return self.subscriber.watch.conditions()

    # --- inputs -------------------------------------------------------------------------------
    def handle(self, msg: mqtt.MQTTMessage) -> None:
        """A decision, checked against its topic and the configuration, into the ledger; what
        fails a check is dead-lettered (the Subscriber acknowledges it after)."""
        try:
            d = wire.decode(msg.payload)
        except WireError as exc:
            self.dead.keep(msg.topic, msg.payload, exc.reason, str(exc))
            return
        if not isinstance(d, AlertDecision):
            self.dead.keep(
                msg.topic, msg.payload, "wrong_topic", f"a {type(d).__name__} on {msg.topic}"
            )
            return
        mismatch = self.registry.check(self.topics.parse(msg.topic), d)
        if mismatch is not None:
            self.dead.keep(msg.topic, msg.payload, mismatch.reason, mismatch.error)
            return
        # Into the ledger, or, while the database is unreachable (a PostgreSQL failover, or no
        # primary at all), held on this worker's disk until it is back (alerts/held.py).
        if self.held.offer(d, msg.topic, msg.payload):
            self._wake.set()

    def _on_held_recorded(self) -> None:
        self._wake.set()
        self.timers.kick()

    def on_inbound(self, params: dict[str, str]) -> str | None:
        """An SMS to our number. Only ``ACK <code>`` from a care-team number does anything."""
        sid, sender, body = (
            params.get("MessageSid", ""),
            params.get("From", ""),
            params.get("Body", ""),
        )
        if not sid or not self.ledger.inbound_first(sid, sender, body, self.clock.now()):
            logger.info("inbound SMS %s already handled: ignored", sid)
            return None
        patient = next(
            (p for h in self.cfg.homes for p in h.patients if p.phone and p.phone == sender), None
        )
        if patient is not None:
            return self._from_patient(sid, sender, body, patient)
        known = any(
            m.phone == sender for h in self.cfg.homes for p in h.patients for m in p.care_team
        )
        if not known:
            logger.warning("inbound SMS %s from %s, who is on no care team: ignored", sid, sender)
            self.ledger.inbound_outcome(sid, "ignored: sender on no care team")
            return None
        found = _ACK.search(body)
        if found is None:
            self.ledger.inbound_outcome(sid, "no ACK code")
            return "homevitals: to acknowledge an alert, reply ACK and its code, e.g. ACK 4821."
        code = found.group(1)
        row = self.escalator.acknowledge(code, sender, "SMS reply", phone=sender)
        if row is None:
            self.ledger.inbound_outcome(sid, f"ACK {code}: no open alert of yours")
            return f"homevitals: no open alert with code {code} for your patients."
        self.ledger.inbound_outcome(sid, f"acknowledged {row.alert_id}")
        self._wake.set()
        self.timers.kick()  # its due time is gone
        _, patient = self.cfg.patient(row.patient)
        name = display_name(patient.name, patient.id, patient.number, self.cfg.alerts.privacy)
        return f"homevitals: alert ACK {code} for {name} acknowledged. Thank you."

    def _from_patient(self, sid: str, sender: str, body: str, patient: PatientConfig) -> str:
        """The patient's own number (issue 20): "OK" (a word of ``ok_words`` in their language)
        or "ACK <code>" acknowledges their step only; the escalation goes on (escalation.py)."""
        words = language(patient.language)
        found = _ACK.search(body)
        plain = body.strip().strip(".!。！").casefold()
        if found is None and plain not in words.ok_words:
            self.ledger.inbound_outcome(sid, "patient: no OK or ACK code")
            return words.patient["hint"]
        row, noted = self.escalator.patient_ok(
            patient, sender, found.group(1) if found else None
        )
        if row is None:
            self.ledger.inbound_outcome(sid, "patient OK: no open alert")
            return patient_reply(patient.language)
        self.ledger.inbound_outcome(
            sid, f"patient OK for {row.alert_id}" + ("" if noted else " (noted before)")
        )
        self._wake.set()
        return patient_reply(patient.language, again=not noted)

    def on_status(self, params: dict[str, str]) -> None:
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        n = self.ledger.delivery(sid, status, params.get("ErrorCode", ""), self.clock.now())
        if n is None:
            logger.info("status callback for unknown message %s (%s)", sid, status)
            return
        if status in _DEAD_DELIVERY:
            logger.error("SMS %s to %s was %s", sid, n.recipient, status)
            if self.escalator.on_dead_end(n.alert_id, n.step, n.kind, f"SMS {status}"):
                self._wake.set()

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for n in self.ledger.interrupted():
            logger.warning(
                "SMS %d to %s was interrupted mid-send at the last stop; it will be"
                " looked up at the provider before anything is sent again",
                n.id,
                n.recipient,
            )
        if self.timer_thread:
            self.timers.start()  # its first pass takes what came due while the daemon was down
        if self.webhook is not None:
            self.webhook.start()
        self._sender.start()
        self.pump.start()
        self.held.start()
        self.subscriber.start()

    def stop(self) -> None:
        if self.pump.connected.is_set():
            self.pump.drain(5.0)
        self.pump.stop()
        self.subscriber.stop()
        self.held.stop()
        if self.webhook is not None:
            self.webhook.stop()
        self.timers.stop()
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=30)
        self.budget.close()
        self.ledger.close()
        self.outbox.close()

    def idle(self) -> bool:
        return self.ledger.pending_count() == 0

    # --- sending (the sender thread only) -----------------------------------------------------
    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self.sender_progress.beat()
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._send_due()
            except SQLAlchemyError as exc:  # the database away (a failover): try again
                logger.warning("alert ledger unavailable, sending waits: %s", exc)

    def _send_due(self) -> None:
        self._reconcile()
        self.budget.digests(self.clock.now())
        for n in self.ledger.due(self.clock.now()):
            if self._stop.is_set():
                return
            self.sender_progress.beat(allow=self.reconcile_after.total_seconds())
            try:
                if self.budget.admit(n, self.clock.now()):  # else folded into a digest
                    self._send(n)
            except SQLAlchemyError:
                raise  # the ledger is away: the SMS stays as it is ("sending" is reconciled)
            except Exception as exc:  # the sender's edge: one SMS must not end all sending
                logger.exception("sending SMS %d failed unexpectedly", n.id)
                self.ledger.mark_failed(n, f"{type(exc).__name__}: {exc}", self.clock.now())
                self.sms["failed"] += 1

    def _reconcile(self) -> None:
        """Settle SMS left in 'sending' by a crash: sent if Twilio has it, else send again.

        A row in 'sending' older than the provider's timeout cannot be in flight any more, here
        or at another alert worker sharing the ledger (killed mid-send). Twilio's Messages list
        is filtered by To; the date is checked on ``date_created`` because ``date_sent`` stays
        empty while a message is queued (so a DateSent filter would miss exactly these)."""
        now = self.clock.now()
        for n in self.ledger.interrupted():
            started = wire.parse_time(n.sending_at, "sending_at") if n.sending_at else now
            if now - started < self.reconcile_after:
                continue  # Twilio may still be working on it: look again later
            if not isinstance(self.notifier, FindsSent):
                self.ledger.mark_unsent(
                    n,
                    now,
                    f"{n.kind} SMS to {n.recipient} interrupted;"
                    " this provider cannot be asked: sending again",
                )
                continue
            try:
                found = self.notifier.find_sent(n.recipient, n.body, started - timedelta(minutes=1))
            except NotifyError as exc:
                logger.warning("cannot look up interrupted SMS %d yet: %s", n.id, exc)
                continue
            if found is not None:
                self.ledger.mark_sent(
                    n, found.sid, now, how="found at Twilio after a restart, not sent again"
                )
            else:
                self.ledger.mark_unsent(
                    n,
                    now,
                    f"{n.kind} SMS to {n.recipient} interrupted and not at Twilio: sending again",
                )
                self._wake.set()

    def _send(self, n: Notification) -> None:
        now = self.clock.now()
        if not self.ledger.mark_sending(n, now, self.acfg.client_id):
            return  # another alert worker sends it (a shared ledger), or it was cancelled
        try:
            result = self.notifier.send(n.recipient, n.body)
        except NotifyError as exc:
            self._failed(n, exc, now)
            return
        self.ledger.mark_sent(n, result.sid, self.clock.now())
        self.sms["sent"] += 1
        logger.info("SMS %s to %s (%s) for alert %s", result.sid, n.recipient, n.role, n.alert_id)

    def _failed(self, n: Notification, exc: NotifyError, now: datetime) -> None:
        if exc.retryable and n.attempts + 1 < self.acfg.max_attempts:
            delay = min(
                self.acfg.retry_initial_seconds * 2**n.attempts, self.acfg.retry_max_seconds
            )
            self.ledger.mark_retry(n, now + timedelta(seconds=delay), str(exc), self.clock.now())
            self._wake.set()
            return
        logger.error("%s", exc)
        self.ledger.mark_failed(n, str(exc), self.clock.now())
        self.sms["failed"] += 1
        if self.escalator.on_dead_end(n.alert_id, n.step, n.kind, str(exc)):
            self._wake.set()
