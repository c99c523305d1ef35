"""The alarm budget (issue 14): at most N SMS per recipient and patient in any 60 minutes.

A doctor who gets a hundred SMS in a night stops reading them. So before the sender hands an SMS
to the notifier it asks ``admit``: a critical alert's SMS always goes (and counts); any other
goes while fewer than ``alerts.sms_per_hour`` SMS went to that person about that patient in the
last 60 minutes, and is otherwise *folded*: not sent, kept in the audit trail (state ``folded``)
with a one-line summary. ``digests`` turns everything folded for that person and patient into
one digest SMS (an ordinary outbox row, so it has the outbox's retry and crash guarantees) as
soon as the window allows and no digest went to them in the last 60 minutes; the folded rows
become ``digested``. While a digest is waiting, every other SMS that is not critical joins it
(the storm goes on): so a storm costs N SMS in its first hour and one digest an hour after that,
not N an hour of trickling digests. The digest counts against the budget too.

Folding does not stop an escalation: the chain moves on when nobody acknowledges, and the next
person has a budget of their own.

State is two tables in the ledger's SQLite file (WAL, synchronous=FULL, ``BEGIN IMMEDIATE`` per
decision, as ``alerts/ledger.py`` does), so the count survives a restart mid-hour. Each SMS is
charged once, by its notification id: a retry or a resend after a crash is not charged again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from homevitals import wire
from homevitals.alerts.errors import AlertsError
from homevitals.alerts.ledger import Notification
from homevitals.alerts.text import digest_line, digest_text, display_name
from homevitals.config import Config
from homevitals.readings import AlertDecision, Severity
from homevitals.sqlite_tx import immediate, open_wal

__all__ = ["AlarmBudget"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sms_budget (
    notification_id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL, patient TEXT NOT NULL, at TEXT NOT NULL,
    digest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sms_budget_window ON sms_budget(recipient, patient, at);
CREATE TABLE IF NOT EXISTS sms_folded (
    notification_id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL, patient TEXT NOT NULL, alert_id TEXT NOT NULL, at TEXT NOT NULL,
    line TEXT NOT NULL, digest_id INTEGER
);
CREATE INDEX IF NOT EXISTS sms_folded_open ON sms_folded(digest_id, recipient, patient);
"""
_WINDOW = timedelta(hours=1)
_KEEP = timedelta(days=1)  # charges older than this cannot matter (retries end well before)
_DIGEST = "digest-"


class AlarmBudget:
    def __init__(self, path: str | Path, cfg: Config) -> None:
        self.cfg = cfg
        self.per_hour = cfg.alerts.sms_per_hour
        self._lock = threading.RLock()
        try:
            # busy_timeout: the ledger's connection writes too
            self._db = open_wal(path, busy_timeout_ms=10000)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AlertsError(f"cannot open the alarm budget in {path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with immediate(self._db, self._lock) as db:
            yield db

    def _spent(self, recipient: str, patient: str, now: datetime) -> tuple[int, int]:
        """SMS (and of them digests) to this person about this patient in the last hour."""
        since = wire.format_time(now - _WINDOW)
        row = self._db.execute(
            "SELECT COUNT(*), coalesce(SUM(digest), 0) FROM sms_budget WHERE recipient=?"
            " AND patient=? AND at > ?",
            (recipient, patient, since),
        ).fetchone()
        return int(row[0]), int(row[1])

    def _folded_waiting(self, recipient: str, patient: str) -> bool:
        return bool(self._db.execute(
            "SELECT 1 FROM sms_folded WHERE digest_id IS NULL AND recipient=? AND patient=?",
            (recipient, patient),
        ).fetchone())

    def _charge(
        self, n_id: int, recipient: str, patient: str, now: datetime, digest: bool = False
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sms_budget(notification_id, recipient, patient, at, digest)"
            " VALUES (?,?,?,?,?)",
            (n_id, recipient, patient, wire.format_time(now), int(digest)),
        )

    def _log(self, alert_id: str, now: datetime, entry: str) -> None:
        self._db.execute(
            "INSERT INTO log(time, alert_id, entry) VALUES (?,?,?)",
            (wire.format_time(now), alert_id, entry),
        )

    # --- the send path ------------------------------------------------------------------------
    def admit(self, n: Notification, now: datetime) -> bool:
        """True: send it now (it is charged); False: it was folded, or is no longer pending."""
        with self._tx() as db:
            if db.execute(
                "SELECT 1 FROM sms_budget WHERE notification_id=?", (n.id,)
            ).fetchone():
                return True  # charged at an earlier attempt (a retry, or a resend after a crash)
            row = db.execute(
                "SELECT patient, severity, decision, ack_code FROM alerts WHERE alert_id=?",
                (n.alert_id,),
            ).fetchone()
            if row is None:
                return True  # not an alert of ours (a hand-made row): nothing to count it by
            patient, severity, decision, code = row
            spent, _ = self._spent(n.recipient, patient, now)
            if (
                severity == Severity.CRITICAL
                or n.kind.startswith(_DIGEST)
                # Issue 20: the patient's own SMS has no digest form (a digest is in the care
                # team's words, with codes); the shipped routes send them only about a low or a
                # crisis, so it goes, and counts.
                or n.role == "patient"
                or (spent < self.per_hour and not self._folded_waiting(n.recipient, patient))
            ):
                self._charge(n.id, n.recipient, patient, now)
                db.execute("DELETE FROM sms_budget WHERE at < ?", (wire.format_time(now - _KEEP),))
                return True
            self._fold(n, patient, decision, code or "", now)
        return False

    def _fold(self, n: Notification, patient: str, decision: str, code: str, now: datetime) -> None:
        cur = self._db.execute(
            "UPDATE notifications SET state='folded' WHERE id=? AND state='pending'", (n.id,)
        )
        if not cur.rowcount:
            return  # cancelled meanwhile (acknowledged, resolved)
        d = wire.decode(decision.encode())
        assert isinstance(d, AlertDecision)
        home, p = self.cfg.patient(patient)
        line = digest_line(d, n.kind, code, now, home.zone, glucose_unit=p.glucose_unit)
        self._db.execute(
            "INSERT OR IGNORE INTO sms_folded(notification_id, recipient, patient, alert_id, at,"
            " line) VALUES (?,?,?,?,?,?)",
            (n.id, n.recipient, patient, n.alert_id, wire.format_time(now), line),
        )
        self._log(
            n.alert_id,
            now,
            f"{n.kind} SMS to {n.name} ({n.role}, {n.recipient}) folded by the alarm budget"
            f" ({self.per_hour} SMS per hour about {patient}): it goes in the next digest",
        )
        logger.info("SMS %d to %s folded by the alarm budget", n.id, n.recipient)

    # --- digests ------------------------------------------------------------------------------
    def _waiting(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT recipient, patient FROM sms_folded WHERE digest_id IS NULL"
            ).fetchall()
        return [(str(r), str(p)) for r, p in rows]

    def _may_digest(self, recipient: str, patient: str, now: datetime) -> bool:
        spent, digests = self._spent(recipient, patient, now)
        return spent < self.per_hour and digests == 0

    def digest_due(self, now: datetime) -> bool:
        """Is a digest waiting that may go now?"""
        with self._lock:
            return any(self._may_digest(r, p, now) for r, p in self._waiting())

    def digests(self, now: datetime) -> int:
        """Queue one digest SMS per person and patient with folded SMS, where the window allows
        it and no digest went to them in the last hour; the number queued."""
        made = 0
        for recipient, patient in self._waiting():
            with self._tx() as db:
                if self._may_digest(recipient, patient, now):
                    made += self._digest(db, recipient, patient, now)
        return made

    def _digest(self, db: sqlite3.Connection, recipient: str, patient: str, now: datetime) -> int:
        folded = db.execute(
            "SELECT f.notification_id, f.alert_id, f.line, n.name, n.role FROM sms_folded f"
            " JOIN notifications n ON n.id = f.notification_id WHERE f.digest_id IS NULL"
            " AND f.recipient=? AND f.patient=? ORDER BY f.notification_id",
            (recipient, patient),
        ).fetchall()
        if not folded:
            return 0
        _, p = self.cfg.patient(patient)
        name = display_name(p.name, p.id, p.number, self.cfg.alerts.privacy)
        body = digest_text(name, [str(f[2]) for f in folded], self.per_hour)
        first, last_alert, who, role = folded[0][0], folded[-1][1], folded[-1][3], folded[-1][4]
        t = wire.format_time(now)
        cur = db.execute(
            "INSERT OR IGNORE INTO notifications(alert_id, kind, recipient, name, role, body,"
            " step, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,0,?,?)",
            (last_alert, f"{_DIGEST}{first}", recipient, who, role, body, t, t),
        )
        if not cur.rowcount:
            return 0
        digest_id = cur.lastrowid
        assert digest_id is not None
        self._charge(digest_id, recipient, patient, now, digest=True)
        ids = [f[0] for f in folded]
        marks = ",".join("?" * len(ids))
        db.execute(f"UPDATE sms_folded SET digest_id=? WHERE notification_id IN ({marks})",
                   (digest_id, *ids))
        db.execute(
            f"UPDATE notifications SET state='digested' WHERE id IN ({marks})"
            " AND state='folded'",
            ids,
        )
        for alert_id in sorted({str(f[1]) for f in folded}):
            self._log(alert_id, now, f"folded SMS to {who} ({recipient}) listed in digest SMS"
                      f" {_DIGEST}{first} ({len(folded)} held back)")
        return 1

    # --- reading ------------------------------------------------------------------------------
    def folded_total(self) -> int:
        """Every SMS ever folded (for /metrics: homevitals_alerts_sms_folded_total)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM sms_folded").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
