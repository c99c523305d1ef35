"""A stage's durable state through SQLAlchemy Core: the same code on the embedded SQLite and on
PostgreSQL 15 (issue 17, "Alerts and state"). The alert ledger (``alerts/ledger.py``) and the
rules' state and outbox of decisions (``rules/store.py``) both use it.

Statements keep the ``?`` placeholders the stages have always written; ``execute`` hands them to
the driver in its own paramstyle (SQLite's ``?``, psycopg's ``%s``) through
``Connection.exec_driver_sql``, with no SQL compile per statement.
Only statements both dialects speak are used (``INSERT ... ON CONFLICT DO NOTHING``,
``RETURNING``). A transaction (``tx``) is the one place writes happen:

- SQLite: ``BEGIN IMMEDIATE`` on a WAL file with ``synchronous=FULL`` (a commit survives
  ``kill -9`` and power loss): one writer at a time, so a claim, an ACK and a step serialise.
- PostgreSQL: READ COMMITTED, with ``FOR UPDATE SKIP LOCKED`` where a due row is claimed
  (``claim_clause``), so several alert workers share the due steps without waiting on each other.

Transactions nest: a helper called inside one runs on its connection (per thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["Cursor", "LedgerDb", "Rows", "SQLAlchemyError", "SqlDb", "ledger_url"]


def ledger_url(where: str | Path) -> str:
    """A SQLAlchemy URL as given, or a SQLite file path made into one."""
    s = str(where)
    return s if "://" in s else f"sqlite:///{Path(s)}"


class Cursor(Protocol):
    """What a statement gives back: DB-API cursor-like (SQLAlchemy's ``CursorResult``)."""

    @property
    def rowcount(self) -> int: ...

    def keys(self) -> Any: ...

    def fetchall(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Rows:
    """The rows of a read, fetched before its connection went back to the pool."""

    rowcount = -1

    def __init__(self, keys: list[str], rows: list[Any]) -> None:
        self._keys, self._rows = keys, rows

    def keys(self) -> list[str]:
        return self._keys

    def fetchall(self) -> list[Any]:
        return self._rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class SqlDb:
    def __init__(self, where: str | Path, busy_timeout_ms: int = 10000) -> None:
        self.url = ledger_url(where)
        self.engine: Engine = create_engine(
            self.url,
            connect_args={"check_same_thread": False} if self.url.startswith("sqlite") else {},
            pool_pre_ping=not self.url.startswith("sqlite"),  # a failed-over primary: reconnect
        )
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.lock = threading.RLock()  # one transaction at a time per process, as before
        self._local = threading.local()
        if self.sqlite:
            self._sqlite_hooks(busy_timeout_ms)

    def _sqlite_hooks(self, busy_timeout_ms: int) -> None:
        # pysqlite's own transaction handling is switched off, and each transaction begins as the
        # ledger needs (SQLAlchemy 2.0 docs, "Serializable isolation / Savepoints / Transactional
        # DDL" for the pysqlite driver).
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None
            for pragma in ("journal_mode=WAL", "synchronous=FULL",
                           f"busy_timeout={int(busy_timeout_ms)}"):
                dbapi.execute(f"PRAGMA {pragma}")

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    @property
    def claim_clause(self) -> str:
        """Appended to a SELECT of due rows: lock what this worker takes, skip what another took.
        SQLite's single writer needs none."""
        return "" if self.sqlite else " FOR UPDATE SKIP LOCKED"

    @contextmanager
    def tx(self) -> Iterator[SqlDb]:
        """One atomic transaction (nested: the enclosing one), committed when the block ends."""
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self.lock, self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    self._local.conn = conn
                    yield self
            finally:
                self._local.conn = None
                conn.info["write"] = False

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor:
        """One statement: in the thread's transaction, else on its own (read) connection."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return cast(Cursor, self._run(conn, sql, args))
        with self.lock, self.engine.connect() as own:
            result = self._run(own, sql, args)
            if not result.returns_rows:
                own.commit()
                return cast(Cursor, result)
            rows = Rows(list(result.keys()), list(result.fetchall()))
            own.rollback()  # a read: nothing to keep
        return rows

    def _run(self, conn: Connection, sql: str, args: Sequence[object]) -> Any:
        # The driver's own paramstyle, without a compile per statement (several times faster on
        # the rules' path: a reading is some 30 statements): SQLite takes the ``?`` as they
        # are, psycopg ``%s`` (with a literal ``%`` doubled).
        if sql.count("?") != len(args):
            raise ValueError(f"{sql.count('?')} placeholders, {len(args)} values: {sql}")
        if not args:  # no parameters: the driver takes the text as it is
            return conn.exec_driver_sql(sql)
        if not self.sqlite:  # psycopg's format paramstyle
            sql = sql.replace("%", "%%").replace("?", "%s")
        return conn.exec_driver_sql(sql, tuple(args))

    def all(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        return list(self.execute(sql, args).fetchall())

    def one(self, sql: str, args: Sequence[object] = ()) -> Any:
        return self.execute(sql, args).fetchone()

    def close(self) -> None:
        self.engine.dispose()


LedgerDb = SqlDb  # the alert ledger's name for it
