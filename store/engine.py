"""Engines for the shared database: PostgreSQL in production, SQLite as the embedded default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from store.driver import install_staging
from store.errors import DatabaseUnavailable, RefusedValue, first_line

SQLITE_BUSY_TIMEOUT_MS = 5000
# how long a new PostgreSQL connection may take: a database behind a dead link or a full
# backlog fails the request within Twilio's 15 s wait (twice: a second try on a fresh
# connection), rather than hanging a thread
CONNECT_TIMEOUT_S = 3

# Engine too: the composition root names the type without importing sqlalchemy itself
__all__ = [
    "CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Engine",
    "create_engine",
    "session_factory",
    "unavailable_on_error",
    "url_for_humans",
]


def create_engine(url: str, *, pool_size: int | None = None, pre_ping: bool = True) -> Engine:
    """An engine for `url`; refuses a URL it cannot use with one readable line.

    `pool_size` caps the pooled connections (no overflow); `pre_ping=False` saves a round trip
    per checkout, at the price of one failed use of each connection a database restart broke.
    """
    try:
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        pool: dict[str, Any] = {}
        if pool_size is not None and not sqlite:
            pool = {"pool_size": pool_size, "max_overflow": 0}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            pool["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = sqlalchemy.create_engine(parsed, pool_pre_ping=pre_ping and not sqlite, **pool)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as error:
        raise DatabaseUnavailable(
            f"{url_for_humans(url)} is not a database URL dosewise can use ({error})"
        ) from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    else:
        install_staging(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # records leave the store as plain values, so nothing needs reloading after commit
    return sessionmaker(engine, expire_on_commit=False)


def url_for_humans(url: str | URL) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the database URL"


def _configure_sqlite(engine: Engine) -> None:
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # let SQLAlchemy emit BEGIN itself: the sqlite3 module's own handling skips it for SELECT
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the services read while one of them writes
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: a transaction that reads and then writes would
    # otherwise fail at once with SQLITE_BUSY (no waiting) when another process wrote meanwhile
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def unavailable_on_error(engine: Engine) -> Iterator[None]:
    """A driver error inside (locked, unreachable, a table missing) becomes one
    DatabaseUnavailable line, which the commands print and the tracker answers with 503; a
    value the database refuses (a NUL in text) is RefusedValue: bad input, answered 400."""
    try:
        yield
    except DataError as error:
        raise RefusedValue(f"the database refuses the value given: {first_line(error)}") from error
    except DBAPIError as error:
        where = url_for_humans(engine.url)
        raise DatabaseUnavailable(f"database {where}: {first_line(error)}") from error
