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

State is two tables in the ledger's database, written in the ledger's transactions
(``alerts/ledger_db.py``: SQLite or PostgreSQL), so the count survives a restart mid-hour.
Each SMS is charged once, by its notification id: a retry or a resend after a crash is not
charged again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, Index, Integer, MetaData, Table, Text

from homevitals.alerts.errors import AlertsError
from homevitals.alerts.ledger import LedgerDb, Notification
from homevitals.alerts.ledger_db import SQLAlchemyError
from homevitals.alerts.text import digest_line, digest_text, display_name
from homevitals.vocab import wire
from homevitals.vocab.config import Config
from homevitals.vocab.readings import AlertDecision, Severity

__all__ = ["AlarmBudget"]

logger = logging.getLogger(__name__)

_META = MetaData()
Table(
    "sms_budget", _META,
    Column("notification_id", Integer, primary_key=True, autoincrement=False),
    Column("recipient", Text, nullable=False), Column("patient", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("digest", Integer, nullable=False, server_default="0"),
    Index("sms_budget_window", "recipient", "patient", "at"),
)
Table(
    "sms_folded", _META,
    Column("notification_id", Integer, primary_key=True, autoincrement=False),
    Column("recipient", Text, nullable=False), Column("patient", Text, nullable=False),
    Column("alert_id", Text, nullable=False), Column("at", Text, nullable=False),
    Column("line", Text, nullable=False), Column("digest_id", Integer),
    Index("sms_folded_open", "digest_id", "recipient", "patient"),
)
_WINDOW = timedelta(hours=1)
_KEEP = timedelta(days=1)  # charges older than this cannot matter (retries end well before)
_DIGEST = "digest-"


class AlarmBudget:
    def __init__(self, where: LedgerDb | str | Path, cfg: Config) -> None:
        """``where``: the ledger's database (shared), or a SQLite file of its own."""
        self.cfg = cfg
        self.per_hour = cfg.alerts.sms_per_hour
        self._own = not isinstance(where, LedgerDb)
        try:
            self._db = where if isinstance(where, LedgerDb) else LedgerDb(where)
            self._lock = self._db.lock
            _META.create_all(self._db.engine)
        except SQLAlchemyError as exc:
            raise AlertsError(f"cannot open the alarm budget in {where}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[LedgerDb]:
        with self._db.tx() as db:
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
            "INSERT INTO sms_budget(notification_id, recipient, patient, at, digest)"
            " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
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
            "INSERT INTO sms_folded(notification_id, recipient, patient, alert_id, at,"
            " line) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
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

    def _digest(self, db: LedgerDb, recipient: str, patient: str, now: datetime) -> int:
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
        made = db.one(
            "INSERT INTO notifications(alert_id, kind, recipient, name, role, body,"
            " step, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,0,?,?)"
            " ON CONFLICT DO NOTHING RETURNING id",
            (last_alert, f"{_DIGEST}{first}", recipient, who, role, body, t, t),
        )
        if made is None:
            return 0
        digest_id = int(made[0])
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
        if self._own:
            self._db.close()
