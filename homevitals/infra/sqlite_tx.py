"""SQLite as every durable stage keeps its state: one connection in WAL mode with
``synchronous=FULL`` (a commit survives ``kill -9`` and power loss), shared by the threads of one
process under a lock, written in ``BEGIN IMMEDIATE`` transactions (the gateway's and the rule
engine's outbox, the alert ledger, the alarm budget)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["immediate", "open_wal"]


def open_wal(path: str | Path, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are ``immediate``'s), WAL, FULL sync;
    ``busy_timeout_ms`` when another process writes the same file (the CLI's acks). Raises
    ``sqlite3.Error``: the caller converts it into its own exception, naming the file."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    if busy_timeout_ms is not None:
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return db


@contextmanager
def immediate(
    db: sqlite3.Connection,
    lock: threading.Lock | threading.RLock,
    on_rollback: Callable[[], None] | None = None,
) -> Iterator[sqlite3.Connection]:
    """One atomic transaction, the lock held throughout: committed when the block ends, rolled
    back (then ``on_rollback``, e.g. to recount a cached size) when it raises."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            if on_rollback is not None:
                on_rollback()
            raise
        db.execute("COMMIT")
