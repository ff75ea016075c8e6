"""Hot statements run on the session's own psycopg connection, past SQLAlchemy's execution layer.

The tracker's inbound-SMS path makes a few small statements per reply, and SQLAlchemy's
execute (execution context, compiled-cache lookup, parameter processing, result wrapping)
costs more CPU there than psycopg and the database's answer together (docs/benchmarks.md).
A DriverStatement is a Core statement compiled
once for psycopg and executed with psycopg's own server-side prepared statements, inside the
transaction the session already has open, so commit and rollback stay the session's.

Only what SQLAlchemy's type processing would add must be done by the caller: bind aware
datetimes (psycopg sends them as timestamptz; UTCDateTime's check is the caller's), and read
instants with `utc` (psycopg returns them in the session's TimeZone).

A write whose result nobody reads can be staged: it waits on the connection and goes out, in
one message (one round trip), ahead of the next statement on that connection or with the
commit; a rollback forgets it (`install_staging` hooks the engine). The reply path stages its
last writes and events, so they and COMMIT travel together: two round trips fewer per reply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg
from psycopg import pq
from psycopg.pq import abc as pq_types
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from store.types import require_aware

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]
# the staged writes of a connection, in its (pooled connection's) info
_STAGED = "dosewise.staged_writes"
# the names of the statements this connection has prepared on the server for them
_PREPARED = "dosewise.prepared"
_OUR_PREPARED_STATEMENTS = (
    "SELECT name FROM pg_prepared_statements WHERE left(name, 9) = 'dosewise_'"
)
# what makes psycopg DEALLOCATE ALL (psycopg._preparing) besides a rollback
_DEALLOCATES = re.compile(r"\s*(?:DROP|ALTER|DISCARD|DEALLOCATE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ServerStatement:
    """A statement as PREPARE takes it: its name, $n text and the parameter names in order."""

    name: str
    sql: str
    names: tuple[str, ...]


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

    @cached_property
    def server_side(self) -> ServerStatement:
        """The statement for PREPARE: $n placeholders in the order of `names`."""
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        sql = _PLACEHOLDER.sub(placeholder, self.sql)
        digest = hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:16]
        return ServerStatement(f"dosewise_{digest}", sql, tuple(names))

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> psycopg.Cursor[Any]:
        """Run in the connection's transaction; a driver error comes out as SQLAlchemy's own
        (the unit of work turns a lost connection into DatabaseUnavailable). Staged writes go
        in the same message, ahead of it: one round trip for both."""
        parameters = {**self.fixed, **values}
        if connection.info.get(_STAGED):
            return _send_staged(connection, then=(self, parameters))
        driver = driver_connection(connection)
        cursor = driver.cursor()
        with _driver_errors(connection, self.sql, parameters):
            cursor.execute(self.sql, parameters, prepare=True)
        return cursor


def stage(session: Session, statement: DriverStatement, values: Mapping[str, Any]) -> None:
    """Run `statement` later in the session's transaction: before the next statement, or with
    the commit. For writes only: nothing reads its result, and an error in it comes then.
    What the ORM still holds is flushed first, so the writes stay in the order called."""
    session.flush()
    staged = session.connection().info.setdefault(_STAGED, [])
    staged.append((statement, {**statement.fixed, **values}))


def send_staged(connection: Connection, *, then_commit: bool = False) -> None:
    """The staged writes, and COMMIT if asked, in one simple-query message: one round trip.
    With nothing staged, nothing is sent (the caller's commit commits).

    Each write is EXECUTE of a statement this connection prepared on the server (PREPARE
    goes in the same message the first time), its values as literals quoted by libpq, which
    costs less CPU than psycopg's pipeline of bound statements. A message that fails leaves
    the connection unknown to us (which PREPAREs ran?), so it is invalidated, never reused."""
    if connection.info.get(_STAGED):
        _send_staged(connection, then_commit=then_commit)


_Execution = tuple["DriverStatement", Mapping[str, Any]]


def execute_together(
    connection: Connection, executions: Sequence[tuple[DriverStatement, Mapping[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows, the statements run in order in the connection's transaction in
    one message with the staged writes ahead of them: one round trip for them all. For
    statements that do not depend on each other's results (nor on Python in between)."""
    if not executions:
        return []
    staged: list[_Execution] = connection.info.pop(_STAGED, [])
    fixed = [(statement, {**statement.fixed, **values}) for statement, values in executions]
    cursor, positions = _send(connection, [*staged, *fixed])
    rows = []
    at = 0
    for position in positions[len(staged) :]:
        for _ in range(position - at):
            cursor.nextset()
        at = position
        rows.append(cursor.fetchall())
    return rows


def _send_staged(
    connection: Connection, *, then: _Execution | None = None, then_commit: bool = False
) -> psycopg.Cursor[Any]:
    """The staged writes and then `then` (a statement whose rows the cursor holds) or COMMIT,
    in one message."""
    staged: list[_Execution] = connection.info.pop(_STAGED)
    cursor, _positions = _send(connection, [*staged, *([then] if then else [])], then_commit)
    while cursor.nextset():  # to the last statement's result: `then`'s rows
        pass
    return cursor


def _send(
    connection: Connection, executions: list[_Execution], then_commit: bool = False
) -> tuple[psycopg.Cursor[Any], list[int]]:
    """`executions` (and COMMIT, if asked) as one simple-query message; the cursor on its first
    result, and the position of each execution's result among the message's results."""
    driver = driver_connection(connection)
    prepared = _prepared_here(connection, driver)
    literal = _Literals(pq.Escaping(driver.pgconn), driver.info.encoding)
    script = []
    positions = []
    for statement, parameters in executions:
        server = statement.server_side
        if server.name not in prepared:
            # noted now: should the message fail, the connection and this note go together
            script.append(f"PREPARE {server.name} AS {server.sql}")
            prepared.add(server.name)
        values = ", ".join(literal(parameters[name]) for name in server.names)
        positions.append(len(script))
        script.append(f"EXECUTE {server.name}({values})")
    if then_commit:
        script.append("COMMIT")
    cursor = driver.cursor()
    with _driver_errors(connection, "(staged writes)", invalidate=True):
        cursor.execute(";".join(script).encode(literal.encoding))
    return cursor, positions


@dataclass(frozen=True)
class _Literals:
    """Values as SQL literals, quoted by libpq for this connection: the few types the staged
    writes bind, nothing guessed."""

    escaping: pq_types.Escaping
    encoding: str

    def __call__(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, datetime):
            return f"'{require_aware(value).isoformat()}'"  # digits, '-', ':', '+', 'T', '.'
        if isinstance(value, str):
            quoted = self.escaping.escape_literal(value.encode(self.encoding))
            return bytes(quoted).decode(self.encoding)
        raise TypeError(f"a staged write cannot bind {type(value).__name__}")


def install_staging(engine: Engine) -> None:
    """Staged writes go ahead of any statement SQLAlchemy runs on their connection and of its
    commit; a rollback, or the pool's reset of a returned connection, forgets them."""
    event.listen(engine, "before_cursor_execute", _send_before_statement)
    event.listen(engine, "commit", send_staged)
    event.listen(engine, "rollback", _forget_staged)
    event.listen(engine, "reset", _forget_on_reset)


def _send_before_statement(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    if _STAGED in connection.info:
        send_staged(connection)
    if _DEALLOCATES.match(statement):
        connection.info.pop(_PREPARED, None)


def _prepared_here(connection: Connection, driver: psycopg.Connection[Any]) -> set[str]:
    """The names of our statements this connection has prepared on the server."""
    prepared: set[str] | None = connection.info.get(_PREPARED)
    if prepared is None:
        # unknown since the connection opened or rolled back (which may DEALLOCATE ALL): ask
        with _driver_errors(connection, _OUR_PREPARED_STATEMENTS):
            rows = driver.execute(_OUR_PREPARED_STATEMENTS).fetchall()
        prepared = connection.info[_PREPARED] = {name for (name,) in rows}
    return prepared


def _forget_staged(connection: Connection) -> None:
    if not connection.invalidated:  # an invalidated connection's info went with it
        _forget(connection.info, driver_connection(connection))


def _forget_on_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    _forget(connection_record.info, dbapi_connection)


def _forget(info: dict[str, Any], driver: psycopg.Connection[Any]) -> None:
    """Before a rollback: the staged writes go; and psycopg may end the rollback of an open
    transaction with DEALLOCATE ALL, so which statements are prepared is unknown again."""
    info.pop(_STAGED, None)
    if driver.pgconn.transaction_status != pq.TransactionStatus.IDLE:
        info.pop(_PREPARED, None)


def driver_connection(connection: Connection) -> psycopg.Connection[Any]:
    """psycopg's connection under SQLAlchemy's (in its transaction)."""
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    return driver


@contextmanager
def _driver_errors(
    connection: Connection,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    invalidate: bool = False,
) -> Iterator[None]:
    """A psycopg error as SQLAlchemy's own (the unit of work turns a lost connection into
    DatabaseUnavailable); the connection is invalidated if it broke, or if asked."""
    try:
        yield
    except psycopg.Error as error:
        driver = driver_connection(connection)
        if invalidate or driver.broken or driver.closed:
            connection.invalidate(error)  # never handed out again by the pool
        raise DBAPIError.instance(sql, parameters, error, psycopg.Error) from error


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
