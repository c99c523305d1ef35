"""The rule engine's durable state, in the same database as its outbox of decisions: SQLite by
default, PostgreSQL in the cluster profile (``rules/store.py``).

Everything here is read and written inside the outbox's ``transaction()``, together with the
decisions it leads to: a crash can neither lose a decision nor repeat one, and a restart neither
re-alerts nor forgets an open condition, a window of recent samples or when data was last seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from homevitals.rules.conditions import Window
from homevitals.vocab import wire

__all__ = ["SCHEMA", "DecisionOutbox", "Executor", "HomeSeen", "OpenAlert", "OpenEpisode", "State"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS open_alerts (
    patient TEXT NOT NULL,
    rule TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (patient, rule)
);
CREATE TABLE IF NOT EXISTS rule_windows (
    patient TEXT NOT NULL, rule TEXT NOT NULL, samples TEXT NOT NULL,
    PRIMARY KEY (patient, rule)
);
CREATE TABLE IF NOT EXISTS last_seen (
    patient TEXT NOT NULL, measurement TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (patient, measurement)
);
CREATE TABLE IF NOT EXISTS homes_seen (
    home TEXT PRIMARY KEY, first_seen TEXT NOT NULL, last_alive TEXT NOT NULL,
    offline_since TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    patient TEXT NOT NULL, episode TEXT NOT NULL, alert_id TEXT NOT NULL,
    opened_at TEXT NOT NULL, severity TEXT NOT NULL, rule TEXT NOT NULL,
    PRIMARY KEY (patient, episode)
);
CREATE TABLE IF NOT EXISTS recovering (
    patient TEXT NOT NULL, rule TEXT NOT NULL, since TEXT NOT NULL,
    PRIMARY KEY (patient, rule)
);
CREATE TABLE IF NOT EXISTS batteries (
    device TEXT PRIMARY KEY, patient TEXT NOT NULL, percent REAL NOT NULL, time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS due_checks (
    patient TEXT NOT NULL, rule TEXT NOT NULL, home TEXT NOT NULL, due_at TEXT NOT NULL,
    worker TEXT NOT NULL,
    PRIMARY KEY (patient, rule)
);
CREATE INDEX IF NOT EXISTS due_checks_by_worker ON due_checks (worker, due_at);
"""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """One open episode of a patient: its alert, and the condition that set its severity."""

    alert_id: str
    opened_at: datetime
    severity: str
    rule: str


@dataclass(frozen=True, slots=True)
class HomeSeen:
    first_seen: datetime
    last_alive: datetime
    offline_since: datetime | None


def _t(value: str | None) -> datetime | None:
    return None if value is None else wire.parse_time(value, "state")


class Executor(Protocol):
    """One open transaction: a ``sqlite3.Connection`` or ``homevitals.infra.sqldb.SqlDb`` (``?``
    placeholders; every statement here is one both SQLite and PostgreSQL speak)."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Any: ...


class DecisionOutbox(Protocol):
    """Where the state lives with the decisions it leads to: ``rules/store.py``'s ``RulesStore``
    (the daemon's), or the gateway's ``DurableQueue`` on SQLite."""

    def ensure_schema(self, sql: str) -> None: ...

    def transaction(self) -> AbstractContextManager[Executor]: ...

    def put_in(self, db: Any, topic: str, payload: bytes, *, qos: int = 1) -> None: ...


def _upsert(table: str, keys: str, cols: str) -> str:
    """INSERT, or on a conflict of ``keys`` overwrite ``cols`` (for SQLite's INSERT OR REPLACE,
    which PostgreSQL does not speak)."""
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols.split(","))
    n = len(keys.split(",")) + len(cols.split(","))
    marks = ",".join("?" * n)
    return f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT({keys}) DO UPDATE SET {sets}"


def _later(table: str, col: str) -> str:
    """The later of the stored and the new time (ISO text sorts as it compares)."""
    return (f"{col}=CASE WHEN excluded.{col} > {table}.{col} THEN excluded.{col}"
            f" ELSE {table}.{col} END")


class State:
    """Typed access to the tables above through one open transaction's connection."""

    def __init__(self, db: Executor) -> None:
        self.db = db

    # conditions: one per patient and rule, each in an episode's alert (alert_id '': in none yet)
    def open_alert(self, patient: str, rule: str) -> OpenAlert | None:
        row = self.db.execute(
            "SELECT alert_id, opened_at FROM open_alerts WHERE patient=? AND rule=?",
            (patient, rule),
        ).fetchone()
        return None if row is None else OpenAlert(row[0], wire.parse_time(row[1], "opened_at"))

    def open(self, patient: str, rule: str, alert_id: str, at: datetime) -> None:
        self.db.execute(
            _upsert("open_alerts", "patient,rule", "alert_id,opened_at"),
            (patient, rule, alert_id, wire.format_time(at)),
        )

    def close(self, patient: str, rule: str) -> None:
        self.db.execute("DELETE FROM open_alerts WHERE patient=? AND rule=?", (patient, rule))
        self.db.execute("DELETE FROM recovering WHERE patient=? AND rule=?", (patient, rule))

    def adopt(self, patient: str, alert_id: str, rules: list[str]) -> None:
        """Conditions that held before their episode opened (a fast fall) now belong to it."""
        marks = ",".join("?" * len(rules))
        self.db.execute(
            f"UPDATE open_alerts SET alert_id=? WHERE patient=? AND alert_id='' AND rule IN"
            f" ({marks})",
            (alert_id, patient, *rules),
        )

    def holding(self, patient: str, alert_id: str) -> list[str]:
        """The rules whose conditions hold in the episode with this alert id."""
        rows = self.db.execute(
            "SELECT rule FROM open_alerts WHERE patient=? AND alert_id=? ORDER BY rule",
            (patient, alert_id),
        ).fetchall()
        return [str(r[0]) for r in rows]

    # open episodes: one per patient and episode (issue 14)
    def episode(self, patient: str, episode: str) -> OpenEpisode | None:
        row = self.db.execute(
            "SELECT alert_id, opened_at, severity, rule FROM episodes"
            " WHERE patient=? AND episode=?",
            (patient, episode),
        ).fetchone()
        if row is None:
            return None
        return OpenEpisode(row[0], wire.parse_time(row[1], "opened_at"), row[2], row[3])

    def open_episode(
        self, patient: str, episode: str, alert_id: str, at: datetime, severity: str, rule: str
    ) -> None:
        self.db.execute(
            _upsert("episodes", "patient,episode", "alert_id,opened_at,severity,rule"),
            (patient, episode, alert_id, wire.format_time(at), severity, rule),
        )

    def raise_episode(self, patient: str, episode: str, severity: str, rule: str) -> None:
        self.db.execute(
            "UPDATE episodes SET severity=?, rule=? WHERE patient=? AND episode=?",
            (severity, rule, patient, episode),
        )

    def close_episode(self, patient: str, episode: str) -> None:
        self.db.execute(
            "DELETE FROM episodes WHERE patient=? AND episode=?", (patient, episode)
        )

    # since when a silent stream (or home) has been heard again, while its alert is open
    def recovering(self, patient: str, rule: str) -> datetime | None:
        row = self.db.execute(
            "SELECT since FROM recovering WHERE patient=? AND rule=?", (patient, rule)
        ).fetchone()
        return None if row is None else _t(row[0])

    def set_recovering(
        self, patient: str, rule: str, since: datetime, restart: bool = False
    ) -> None:
        """Remember when data came back (kept unless ``restart``: it fell silent again)."""
        then = "DO UPDATE SET since=excluded.since" if restart else "DO NOTHING"
        self.db.execute(
            f"INSERT INTO recovering VALUES (?,?,?) ON CONFLICT(patient, rule) {then}",
            (patient, rule, wire.format_time(since)),
        )

    # windows of recent samples
    def window(self, patient: str, rule: str) -> Window:
        row = self.db.execute(
            "SELECT samples FROM rule_windows WHERE patient=? AND rule=?", (patient, rule)
        ).fetchone()
        return Window() if row is None else Window.loads(row[0])

    def save_window(self, patient: str, rule: str, w: Window) -> None:
        self.db.execute(
            _upsert("rule_windows", "patient,rule", "samples"), (patient, rule, w.dumps())
        )

    # when data was last seen
    def last_seen(self, patient: str, measurement: str) -> datetime | None:
        row = self.db.execute(
            "SELECT time FROM last_seen WHERE patient=? AND measurement=?", (patient, measurement)
        ).fetchone()
        return None if row is None else _t(row[0])

    def seen(self, patient: str, measurement: str, at: datetime) -> None:
        # max(): a late delivery of an old reading must not move "last seen" back in time.
        self.db.execute(
            "INSERT INTO last_seen VALUES (?,?,?) ON CONFLICT(patient, measurement)"
            " DO UPDATE SET " + _later("last_seen", "time"),
            (patient, measurement, wire.format_time(at)),
        )

    # homes (gateways)
    def home(self, home: str) -> HomeSeen | None:
        row = self.db.execute(
            "SELECT first_seen, last_alive, offline_since FROM homes_seen WHERE home=?", (home,)
        ).fetchone()
        if row is None:
            return None
        first, alive = _t(row[0]), _t(row[1])
        assert first is not None and alive is not None
        return HomeSeen(first, alive, _t(row[2]))

    def home_alive(self, home: str, at: datetime) -> None:
        t = wire.format_time(at)
        self.db.execute(
            "INSERT INTO homes_seen VALUES (?,?,?,NULL) ON CONFLICT(home)"
            " DO UPDATE SET " + _later("homes_seen", "last_alive") + ", offline_since=NULL",
            (home, t, t),
        )

    def home_offline(self, home: str, since: datetime) -> None:
        t = wire.format_time(since)
        self.db.execute(
            "INSERT INTO homes_seen VALUES (?,?,?,?) ON CONFLICT(home)"
            " DO UPDATE SET offline_since=excluded.offline_since",
            (home, t, t, t),
        )

    # device batteries
    def battery(self, device: str, patient: str, percent: float, at: datetime) -> None:
        self.db.execute(
            _upsert("batteries", "device", "patient,percent,time"),
            (device, patient, percent, wire.format_time(at)),
        )

    def batteries(self, patient: str) -> dict[str, float]:
        rows = self.db.execute(
            "SELECT device, percent FROM batteries WHERE patient=? ORDER BY device", (patient,)
        ).fetchall()
        return {str(d): float(p) for d, p in rows}

    # due times of the silence checks (missing data, a silent gateway): the rules' timer's rows
    def set_due(
        self, patient: str, rule: str, home: str, at: datetime | None, worker: str
    ) -> None:
        if at is None:
            self.db.execute("DELETE FROM due_checks WHERE patient=? AND rule=?", (patient, rule))
            return
        self.db.execute(
            _upsert("due_checks", "patient,rule", "home,due_at,worker"),
            (patient, rule, home, wire.format_time(at), worker),
        )

    def due_patients(self, now: datetime, worker: str) -> list[str]:
        """The patients with a check of this worker's due at ``now``."""
        rows = self.db.execute(
            "SELECT DISTINCT patient FROM due_checks WHERE worker=? AND due_at <= ?",
            (worker, wire.format_time(now)),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def next_due(self, worker: str) -> datetime | None:
        row = self.db.execute(
            "SELECT MIN(due_at) FROM due_checks WHERE worker=?", (worker,)
        ).fetchone()
        return None if row is None else _t(row[0])
