"""Composition root of ``homevitals console``: the console wired to the alert ledger, the
escalator, the store and the report figures.

The console stage never imports another stage; this module (like ``cli``) may. The inbox reads
the alerts daemon's ledger through its public functions (``history``, ``alert``, ``told``) and
acknowledges through ``Escalator.acknowledge``, the function an SMS ``ACK 4821`` and
``homevitals alerts ack`` call, so the escalation stops the same way and the ledger's log says
who acknowledged. The patient page draws ``reports.figures`` from ``reports.metrics``, so the
page and the printed report agree.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from homevitals.alerts.escalation import Escalator
from homevitals.alerts.ledger import AlertRow, Ledger, Note
from homevitals.console.accounts import Accounts, Role
from homevitals.console.app import ConsoleApp
from homevitals.console.followups import FollowUps
from homevitals.console.ports import InboxAlert
from homevitals.console.web import ConsoleServer
from homevitals.ingest.store import Store
from homevitals.roots.alert_readings import history_with_readings
from homevitals.roots.console_records import StoreRecords
from homevitals.roots.console_summaries import build_summaries
from homevitals.vocab import wire
from homevitals.vocab.clock import Clock
from homevitals.vocab.config import CareRole, Config

__all__ = [
    "LedgerBook", "StoreRecords", "add_account", "build_console", "open_accounts", "run_console",
]

logger = logging.getLogger(__name__)

_CLOSED = ("acknowledged", "resolved")


class LedgerBook:
    """The console's view of the alert ledger (``AlertBook``)."""

    def __init__(self, cfg: Config, ledger: Ledger, escalator: Escalator) -> None:
        self.cfg, self.ledger, self.escalator = cfg, ledger, escalator

    def _alerts(self, patient: str | None, keep: Callable[[dict[str, object]], bool]
                = lambda _r: True) -> list[InboxAlert]:
        """Alerts from the ledger's history rows that ``keep`` accepts; only those are read
        in full, so a long history costs one query, not one per alert ever opened."""
        ids = list(dict.fromkeys(
            str(r["alert_id"]) for r in self.ledger.history(patient) if keep(r)))
        rows = [r for r in (self.ledger.alert(i) for i in ids) if r is not None]
        return [self._view(r) for r in rows]

    def _view(self, r: AlertRow) -> InboxAlert:
        d = r.decoded()
        open_ = r.state not in _CLOSED
        told = tuple(f"{n} ({role})" for _, n, role in self.ledger.told(r.alert_id)) if open_ \
            else ()
        return InboxAlert(
            r.alert_id, r.home, r.patient, r.rule, r.severity, r.state, d.reason,
            wire.parse_time(r.opened_at, "opened_at"), d.value, d.unit, d.observed_at,
            r.step + 1,
            wire.parse_time(r.next_step_at, "next_step_at") if r.next_step_at else None,
            told, r.acked_at, r.acked_by, d.measurement, d.trend)

    def open_alerts(self) -> list[InboxAlert]:
        return [a for a in self._alerts(None, lambda r: r["alert_state"] not in _CLOSED)
                if a.is_open]

    def all_alerts(self, since: datetime) -> list[InboxAlert]:
        t = wire.format_time(since)
        return self._alerts(None, lambda r: str(r["opened_at"]) >= t)

    def patient_alerts(self, patient: str) -> list[InboxAlert]:
        return sorted(self._alerts(patient), key=lambda a: a.opened_at, reverse=True)

    def acknowledge(self, alert_id: str, by: str, phone: str | None) -> bool:
        row = self.ledger.alert(alert_id)
        if row is None or row.acked_at or row.resolved or not row.ack_code:
            return False
        done = self.escalator.acknowledge(row.ack_code, by, "the console", phone=phone)
        return done is not None and done.alert_id == alert_id

    def tell_health_manager(self, alert_id: str, body: str) -> int:
        row = self.ledger.alert(alert_id)
        if row is None:
            return 0
        _, patient = self.cfg.patient(row.patient)
        now = self.escalator.clock.now()
        notes = [Note(m.phone, m.name, str(m.role), body, "follow-up-overdue", row.step, now)
                 for m in patient.care_team if m.role == CareRole.HEALTH_MANAGER]
        return self.ledger.add(alert_id, notes, now,
                               entry="follow-up overdue: the health manager is told")


# --- wiring ----------------------------------------------------------------------------------
def open_accounts(cfg: Config, clock: Clock) -> Accounts:
    c = cfg.console
    return Accounts(c.db_path, clock, session_hours=c.session_hours,
                    lockout_failures=c.lockout_failures, lockout_minutes=c.lockout_minutes)


def build_console(cfg: Config, store: Store, clock: Clock) -> tuple[ConsoleServer, Ledger]:
    ledger = Ledger(cfg.alerts.ledger_url or cfg.alerts.outbox_path)
    book = LedgerBook(cfg, ledger, Escalator(cfg, ledger, clock))
    records = StoreRecords(cfg, store, partial(history_with_readings, ledger), clock,
                           build_summaries(cfg, store))
    hours = {str(k): v for k, v in cfg.console.follow_up_hours.items()}
    tasks = FollowUps(cfg.console.db_path, clock, hours)
    app = ConsoleApp(cfg, open_accounts(cfg, clock), book, records, tasks, clock)
    return ConsoleServer(app), ledger


def run_console(cfg: Config, store: Store, clock: Clock) -> None:
    server, ledger = build_console(cfg, store, clock)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    worker = threading.Thread(target=_overdue_worker, args=(server.app, stop),
                              name="console-followups", daemon=True)
    worker.start()
    if isinstance(server.app.records, StoreRecords):
        threading.Thread(target=_risk_worker, args=(server.app.records, stop),
                         name="console-risk", daemon=True).start()
    logger.info("ready: console at http://%s:%d/", cfg.console.host, server.port)
    stop.wait()
    worker.join(timeout=10)
    server.stop()
    server.app.accounts.close()
    server.app.followups.close()
    ledger.close()


def _overdue_worker(app: ConsoleApp, stop: threading.Event) -> None:
    """Every ``follow_up_check_seconds``: overdue follow-ups go to the health manager by SMS."""
    while not stop.wait(app.ccfg.follow_up_check_seconds):
        try:
            app.escalate_overdue()
        except Exception:  # the worker's edge: a locked ledger now must not end the checks
            logger.exception("checking overdue follow-ups failed; trying again later")


def _risk_worker(records: StoreRecords, stop: threading.Event) -> None:
    """Every ``console.risk.refresh_minutes``: every patient's risk tier, from the store."""
    while True:
        try:
            started = time.monotonic()
            n = records.refresh_risk()
            logger.info("risk tiers of %d patients computed in %.1f s", n,
                        time.monotonic() - started)
        except Exception:  # the worker's edge: a store down now must not end the refreshes
            logger.exception("computing risk tiers failed; trying again later")
        if stop.wait(records.cfg.console.risk.refresh_minutes * 60):
            return


def add_account(cfg: Config, clock: Clock, username: str, name: str, role: str,
                phone: str | None, password: str) -> None:
    """``homevitals console adduser``: the first admin, or any account, from the terminal."""
    accounts = open_accounts(cfg, clock)
    try:
        accounts.add(username, name, Role(role), password, phone, "(command line)")
    finally:
        accounts.close()
