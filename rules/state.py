"""The rule engine's durable state, in the same SQLite database as its outbox of decisions.

Everything here is read and written inside ``DurableQueue.transaction()``, together with the
decisions it leads to: a crash can neither lose a decision nor repeat one, and a restart neither
re-alerts nor forgets an open condition, a window of recent samples or when data was last seen.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from homevitals import wire
from homevitals.rules.conditions import Window

__all__ = ["SCHEMA", "HomeSeen", "OpenAlert", "OpenEpisode", "State"]

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


class State:
    """Typed access to the tables above through one open transaction's connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
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
            "INSERT OR REPLACE INTO open_alerts VALUES (?,?,?,?)",
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
            "INSERT OR REPLACE INTO episodes VALUES (?,?,?,?,?,?)",
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
        verb = "INSERT OR REPLACE" if restart else "INSERT OR IGNORE"
        self.db.execute(
            f"{verb} INTO recovering VALUES (?,?,?)", (patient, rule, wire.format_time(since))
        )

    # windows of recent samples
    def window(self, patient: str, rule: str) -> Window:
        row = self.db.execute(
            "SELECT samples FROM rule_windows WHERE patient=? AND rule=?", (patient, rule)
        ).fetchone()
        return Window() if row is None else Window.loads(row[0])

    def save_window(self, patient: str, rule: str, w: Window) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO rule_windows VALUES (?,?,?)", (patient, rule, w.dumps())
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
            " DO UPDATE SET time=max(time, excluded.time)",
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
            " DO UPDATE SET last_alive=max(last_alive, excluded.last_alive), offline_since=NULL",
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
            "INSERT OR REPLACE INTO batteries VALUES (?,?,?,?)",
            (device, patient, percent, wire.format_time(at)),
        )

    def batteries(self, patient: str) -> dict[str, float]:
        rows = self.db.execute(
            "SELECT device, percent FROM batteries WHERE patient=? ORDER BY device", (patient,)
        ).fetchall()
        return {str(d): float(p) for d, p in rows}
