"""Hot statements run on the session's own psycopg connection, past SQLAlchemy's execution layer.

The tracker's inbound-SMS path makes a few small statements per reply. SQLAlchemy's execute
(execution context, compiled-cache lookup, parameter processing, result wrapping) cost about
half of the tracker's CPU per reply there, more than psycopg and the database's answer
together (profiled under bench/webhook.py). A DriverStatement is a Core statement compiled
once for psycopg and executed with psycopg's own server-side prepared statements, inside the
transaction the session already has open, so commit and rollback stay the session's.

Only what SQLAlchemy's type processing would add must be done by the caller: bind aware
datetimes (psycopg sends them as timestamptz; UTCDateTime's check is the caller's), and read
instants with `utc` (psycopg returns them in the session's TimeZone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DriverStatement:
    """SQL text with psycopg's %(name)s placeholders and the values the statement fixed itself
    (literals SQLAlchemy made parameters: a LIMIT, the members of an IN list)."""

    sql: str
    fixed: Mapping[str, Any]

    @classmethod
    def compile(cls, statement: ClauseElement, *names: str) -> DriverStatement:
        """`statement` with its named parameters `names` left for each execution."""
        # the IN lists are expanded now, so the text is final and the server can prepare it
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        expanded = compiled.construct_expanded_state(dict.fromkeys(names))
        fixed = {key: value for key, value in expanded.parameters.items() if key not in names}
        return cls(expanded.statement, fixed)

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> psycopg.Cursor[Any]:
        """Run in the connection's transaction; a driver error comes out as SQLAlchemy's own
        (the unit of work turns a lost connection into DatabaseUnavailable)."""
        driver = driver_connection(connection)
        cursor = driver.cursor()
        parameters = {**self.fixed, **values}
        try:
            cursor.execute(self.sql, parameters, prepare=True)
        except psycopg.Error as error:
            _invalidate_if_lost(connection, driver, error)
            raise DBAPIError.instance(self.sql, parameters, error, psycopg.Error) from error
        return cursor


def run_script(connection: Connection, script: str) -> None:
    """Several statements without parameters in one simple-query message: one round trip."""
    driver = driver_connection(connection)
    try:
        driver.execute(script.encode())
    except psycopg.Error as error:
        _invalidate_if_lost(connection, driver, error)
        raise DBAPIError.instance(script, None, error, psycopg.Error) from error


def driver_connection(connection: Connection) -> psycopg.Connection[Any]:
    """psycopg's connection under SQLAlchemy's (in its transaction)."""
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    return driver


def _invalidate_if_lost(
    connection: Connection, driver: psycopg.Connection[Any], error: psycopg.Error
) -> None:
    if driver.broken or driver.closed:
        connection.invalidate(error)  # never handed out again by the pool


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
