"""Can the database take a write now? The tracker's /healthz and /readyz ask this.

A read proves little: a full SQLite disk, a PostgreSQL standby or a database out of space
still answer reads while every webhook fails. So the probe writes, cheaply and without
growing anything: it rewrites the one row of alembic_version with its own value (which also
proves the schema is there), in a transaction with short lock and statement timeouts. On
SQLite, where such a rewrite fits in space the file already has even on a full disk, it also
asks the file system for free space next to the database file.

A failure is tried once more on a fresh connection before it counts: after a PostgreSQL
restart the pooled connection is dead but the database is fine.
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from store.engine import url_for_humans
from store.errors import DatabaseUnavailable, SchemaNotCurrent, first_line

# below this much free space next to a SQLite file, writes that grow it fail any moment
SQLITE_MIN_FREE_BYTES = 1024 * 1024
_REWRITE = text("UPDATE alembic_version SET version_num = version_num")


class SqlDatabaseProbe:
    """check_writable() returns when a write succeeds; raises a StoreError that names the
    problem in one line when it does not."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    def check_writable(self) -> None:
        try:
            self._write(fresh=False)
        except DatabaseUnavailable:
            self._write(fresh=True)

    def _write(self, *, fresh: bool) -> None:
        where = url_for_humans(self._engine.url)
        try:
            with self._engine.connect() as connection:
                if fresh:
                    # a new DBAPI connection for this try: the pooled one may be a dead one
                    connection.invalidate()
                rewritten = self._rewrite(connection)
        except DBAPIError as error:
            raise DatabaseUnavailable(f"database {where}: {first_line(error)}") from error
        if rewritten != 1:
            raise SchemaNotCurrent(f"database {where} has no schema: run `dosewise db upgrade`")
        if self._sqlite:
            self._check_free_space(where)

    def _rewrite(self, connection: Connection) -> int:
        with connection.begin():
            if not self._sqlite:
                connection.exec_driver_sql("SET LOCAL lock_timeout = 1000")
                connection.exec_driver_sql("SET LOCAL statement_timeout = 2000")
            return int(connection.execute(_REWRITE).rowcount)

    def _check_free_space(self, where: str) -> None:
        path = self._engine.url.database
        if not path or path == ":memory:":
            return
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
        free = stats.f_bavail * stats.f_frsize
        if free < SQLITE_MIN_FREE_BYTES:
            raise DatabaseUnavailable(
                f"database {where}: the disk holding it is full ({free // 1024} KiB free)"
            )
