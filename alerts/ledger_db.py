"""The alert ledger's database: SQLAlchemy Core on SQLite or PostgreSQL, shared with the rules'
state (``homevitals/infra/sqldb.py``)."""

from __future__ import annotations

from homevitals.infra.sqldb import Cursor, LedgerDb, Rows, SQLAlchemyError, ledger_url

__all__ = ["Cursor", "LedgerDb", "Rows", "SQLAlchemyError", "ledger_url"]
