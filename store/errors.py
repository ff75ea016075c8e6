"""What the database layer reports in words, so no caller needs to know SQLAlchemy's errors."""

from __future__ import annotations

from services.ports import StoreConflict, StoreUnusable


class StoreError(Exception):
    """The database did not do the work; the message is one line that names the problem."""


class DatabaseUnavailable(StoreError, StoreUnusable):
    """The URL is unusable, or the database cannot be reached or refuses us."""


class TransactionAborted(StoreError, StoreConflict):
    """The database aborted the transaction: a deadlock, a lock or statement timeout, a
    serialization failure (PostgreSQL), a database locked too long (SQLite)."""


class RefusedValue(StoreError, ValueError):
    """The database refused a value as it was given (a NUL character in text, a number out
    of range): bad input, not an outage."""


class SchemaNotCurrent(StoreError, StoreUnusable):
    """The database has no schema yet, or an older one: `dosewise db upgrade` fixes it."""


def first_line(error: BaseException) -> str:
    """The driver's own reason, without the SQL and the background link SQLAlchemy appends."""
    reason = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    return lines[0] if lines else type(reason).__name__
