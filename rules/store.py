"""The rules' durable state and their outbox of decisions, in one database through SQLAlchemy Core
(``homevitals/infra/sqldb.py``, shared with the alert ledger): SQLite by default
(``rules.state_path``,
the same file and tables as before), PostgreSQL when ``rules.state_url`` is set (the cluster
profile, docs/cluster.md "Rules ownership").

The rule state (``rules/state.py``) and the decisions it leads to are written in one transaction
(``transaction`` + ``put_in``), as with the gateway's ``DurableQueue``, whose interface this keeps
for the outbox pump and the dead letters. Each row of the outbox names the worker that wrote it
(``owner``, the rules client id): a worker's pump publishes only its own rows, and a worker that
takes over patients adopts their pending decisions (``adopt``). Unlike the gateway's queue this
one is never bounded: an alert decision is never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    inspect,
)

from homevitals.infra.outbox import QueuedMessage
from homevitals.infra.sqldb import SQLAlchemyError, SqlDb
from homevitals.rules.errors import RulesError

__all__ = ["RulesStore"]

logger = logging.getLogger(__name__)

_META = MetaData()
_SEQ = Integer().with_variant(BigInteger(), "postgresql")
# The gateway queue's tables (homevitals/infra/outbox.py), so an existing state file opens
# as before.
OUTBOX = Table(
    "outbox", _META,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False), Column("payload", LargeBinary, nullable=False),
    Column("qos", Integer, nullable=False, server_default="1"),
    Column("retain", Integer, nullable=False, server_default="0"),
    Column("message_id", Text),
    Column("owner", Text),  # the worker that publishes it (NULL: any, a file from before)
    sqlite_autoincrement=True,  # never reuse a seq: the pump reads "after" the last one
)
PARKED = Table(
    "parked", _META,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("topic", Text, nullable=False), Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
)
_MINE = "(owner = ? OR owner IS NULL)"
_CHUNK = 500


class RulesStore:
    """``where``: a SQLite file or a SQLAlchemy URL; ``owner``: this worker's name."""

    def __init__(self, where: str | Path, owner: str = "rules") -> None:
        self.where, self.owner = str(where), owner
        try:
            self.db = SqlDb(where)
            _META.create_all(self.db.engine)
            have = {c["name"] for c in inspect(self.db.engine).get_columns("outbox")}
            if "owner" not in have:  # written by the DurableQueue of an older version
                with self.db.tx() as db:
                    db.execute("ALTER TABLE outbox ADD COLUMN owner TEXT")
        except SQLAlchemyError as exc:
            raise RulesError(f"cannot open the rules state {where}: {exc}") from exc

    def ensure_schema(self, sql: str) -> None:
        """Create the caller's own tables (``CREATE TABLE IF NOT EXISTS ...;`` statements)."""
        with self.db.tx() as db:
            for stmt in filter(None, (s.strip() for s in sql.split(";"))):
                db.execute(stmt)

    @contextmanager
    def transaction(self) -> Iterator[SqlDb]:
        """One atomic transaction for the rule state and ``put_in``."""
        with self.db.tx() as db:
            yield db

    def put_in(self, db: Any, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """A message inside a ``transaction()``."""
        db.execute(
            "INSERT INTO outbox(topic, payload, qos, retain, owner) VALUES (?,?,?,0,?)",
            (topic, payload, qos, self.owner),
        )

    def put(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
        message_id: str | None = None,
    ) -> int:
        with self.db.tx() as db:
            row = db.one(
                "INSERT INTO outbox(topic, payload, qos, retain, message_id, owner)"
                " VALUES (?,?,?,?,?,?) RETURNING seq",
                (topic, payload, qos, int(retain), message_id, self.owner),
            )
        return int(row[0])

    def peek(self, limit: int, after: int = 0) -> list[QueuedMessage]:
        rows = self.db.all(
            f"SELECT seq, topic, payload, qos, retain FROM outbox WHERE seq > ? AND {_MINE}"
            " ORDER BY seq LIMIT ?",
            (after, self.owner, limit),
        )
        return [QueuedMessage(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4])) for r in rows]

    def ack(self, seq: int) -> None:
        with self.db.tx() as db:
            db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def park(self, seq: int, reason: str) -> None:
        """Move a message the broker refused out of the way, keeping it."""
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO parked(seq, topic, payload, reason)"
                " SELECT seq, topic, payload, ? FROM outbox WHERE seq = ?",
                (reason, seq),
            )
            db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def adopt(self, topics: Sequence[str]) -> int:
        """Pending messages on ``topics`` written by another worker become this one's, with new
        sequence numbers (after everything its pump has read), in their order. Returns how many."""
        with self.db.tx() as db:
            rows: list[Any] = []
            for i in range(0, len(topics), _CHUNK):  # SQLite's bound on parameters
                part = topics[i:i + _CHUNK]
                where = f"topic IN ({','.join('?' * len(part))}) AND (owner IS NULL OR owner <> ?)"
                rows += db.all(
                    f"SELECT seq, topic, payload, qos, retain, message_id FROM outbox WHERE"
                    f" {where}{self.db.claim_clause}",
                    (*part, self.owner),
                )
            rows.sort(key=lambda r: int(r[0]))
            for _seq, topic, payload, qos, retain, mid in rows:
                db.execute(
                    "INSERT INTO outbox(topic, payload, qos, retain, message_id, owner)"
                    " VALUES (?,?,?,?,?,?)",
                    (topic, bytes(payload), qos, retain, mid, self.owner),
                )
            for row in rows:
                db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
        if rows:
            logger.warning("adopted %d pending decisions from another rules worker", len(rows))
        return len(rows)

    def __len__(self) -> int:
        row = self.db.one(f"SELECT COUNT(*) FROM outbox WHERE {_MINE}", (self.owner,))
        return int(row[0])

    def close(self) -> None:
        self.db.close()
