"""Embedded store for one household's demo: SQLite, no server.

The same points as InfluxDB (``homevitals.ingest.points``), keyed by the series and the point's
time (the item's time shifted within its second by its id), so a redelivered reading replaces its
row exactly as InfluxDB overwrites its point and two readings of one second keep two rows. WAL
mode lets a report read while ingest writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from homevitals.ingest.errors import StoreError
from homevitals.ingest.points import from_ns, row_time_ns, rows_in_span, span_ns, to_point
from homevitals.ingest.store import Row, Storable

__all__ = ["SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    home TEXT NOT NULL,
    patient TEXT NOT NULL,
    device TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    tags TEXT NOT NULL,    -- JSON object of the other tags (an event's kind)
    fields TEXT NOT NULL,  -- JSON object, names and values as in InfluxDB
    PRIMARY KEY (measurement, home, patient, device, time_ns)
) WITHOUT ROWID
"""
_KEY_TAGS = ("home", "patient", "device")


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # One connection shared by ingest's writer thread and readers, guarded by a lock.
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}", retryable=False) from exc
        self._lock = threading.Lock()

    def write(self, items: Sequence[Storable]) -> None:
        rows = [_db_row(item) for item in items]
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _error(self.path, exc) from exc

    def query_readings(
        self, measurement: str, patient: str | None, start: datetime, end: datetime
    ) -> list[Row]:
        sql = "SELECT * FROM points WHERE measurement = ? AND time_ns >= ? AND time_ns < ?"
        args: list[str | int] = [measurement, *span_ns(start, end)]
        if patient is not None:
            sql += " AND patient = ?"
            args.append(patient)
        with self._lock:
            try:
                found = self._db.execute(sql + " ORDER BY time_ns", args).fetchall()
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from exc
        return rows_in_span([_row(r) for r in found], start, end)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _db_row(item: Storable) -> tuple[str, str, str, str, int, str, str]:
    p = to_point(item)
    extra = {k: v for k, v in p.tags.items() if k not in _KEY_TAGS}
    return (
        p.measurement,
        p.tags.get("home", ""),
        p.tags.get("patient", ""),
        p.tags.get("device", ""),
        p.time_ns,
        json.dumps(extra, sort_keys=True),
        json.dumps(dict(p.fields)),
    )


def _row(r: tuple[str, str, str, str, int, str, str]) -> Row:
    measurement, home, patient, device, ns, tags, fields = r
    row: Row = {"home": home, "patient": patient}
    row.update(device=device, **json.loads(tags), **json.loads(fields))
    row["time_ns"] = row_time_ns(measurement, ns, row)
    row["time"] = from_ns(row["time_ns"])
    return row


def _error(path: str, exc: sqlite3.Error) -> StoreError:
    # "database is locked" is another process holding the write lock past busy_timeout: transient.
    locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    return StoreError(f"SQLite store {path}: {exc}", retryable=locked)
