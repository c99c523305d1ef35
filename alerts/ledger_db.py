"""The alert ledger's database: SQLAlchemy Core on SQLite or PostgreSQL, shared with the rules'
state (``homevitals/sqldb.py``)."""

from __future__ import annotations

from homevitals.sqldb import Cursor, LedgerDb, Rows, SQLAlchemyError, ledger_url

__all__ = ["Cursor", "LedgerDb", "Rows", "SQLAlchemyError", "ledger_url"]
