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

A write whose result nobody reads can be staged: it waits on the connection and goes out, in
one pipeline (one round trip), ahead of the next statement on that connection or with the
commit; a rollback forgets it (`install_staging` hooks the engine). The reply path stages its
last writes and events, so they and COMMIT travel together: per reply three round trips
fewer, and about 100 µs less database CPU, one request at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]
# the staged writes of a connection, in its (pooled connection's) info
_STAGED = "dosewise.staged_writes"


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
        send_staged(connection)
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
    send_staged(connection)
    driver = driver_connection(connection)
    try:
        driver.execute(script.encode())
    except psycopg.Error as error:
        _invalidate_if_lost(connection, driver, error)
        raise DBAPIError.instance(script, None, error, psycopg.Error) from error


def stage(connection: Connection, statement: DriverStatement, values: Mapping[str, Any]) -> None:
    """Run `statement` later in this transaction: before the next statement, or with the
    commit. For writes only: nothing reads its result, and an error in it comes then."""
    connection.info.setdefault(_STAGED, []).append((statement, {**statement.fixed, **values}))


def send_staged(connection: Connection, *, then_commit: bool = False) -> None:
    """The staged writes, and COMMIT if asked, in one pipeline: one round trip. With nothing
    staged, nothing is sent (the caller's commit commits)."""
    staged: list[tuple[DriverStatement, dict[str, Any]]] = connection.info.pop(_STAGED, [])
    if not staged:
        return
    driver = driver_connection(connection)
    try:
        with driver.pipeline():
            cursor = driver.cursor()
            for statement, parameters in staged:
                cursor.execute(statement.sql, parameters, prepare=True)
            if then_commit:
                # as a statement of the pipeline, not driver.commit(), whose own sync would
                # cost a second round trip before the pipeline's
                cursor.execute(b"COMMIT")
    except psycopg.Error as error:
        _invalidate_if_lost(connection, driver, error)
        raise DBAPIError.instance("(staged writes)", None, error, psycopg.Error) from error


def install_staging(engine: Engine) -> None:
    """Staged writes go ahead of any statement SQLAlchemy runs on their connection and of its
    commit; a rollback, or the pool's reset of a returned connection, forgets them."""
    event.listen(engine, "before_cursor_execute", _send_before_statement)
    event.listen(engine, "commit", send_staged)
    event.listen(engine, "rollback", _forget_staged)
    event.listen(engine, "reset", _forget_on_reset)


def _send_before_statement(connection: Connection, *_statement: Any) -> None:
    if _STAGED in connection.info:
        send_staged(connection)


def _forget_staged(connection: Connection) -> None:
    if not connection.invalidated:  # an invalidated connection's info went with it
        connection.info.pop(_STAGED, None)


def _forget_on_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    connection_record.info.pop(_STAGED, None)


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
