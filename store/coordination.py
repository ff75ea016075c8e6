"""One active scheduler, and wake-ups when an event is written.

PostgreSQL: a session-level advisory lock held on a dedicated connection picks the leader.
When the leader dies its connection closes and PostgreSQL frees the lock, so a standby's next
pg_try_advisory_lock wins. The same connection LISTENs on the event channel, so the leader
hears of an event within moments of its commit.

SQLite: the embedded default assumes one scheduler process on one machine; an exclusive
`flock` on a file next to the database keeps a second one standing by, and events are polled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO

import psycopg
from sqlalchemy.engine import make_url

from services.logs import error_line
from store.events import EVENTS_CHANNEL

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the scheduler's leadership ("dwSCHEDL"); the event log uses another
SCHEDULER_LOCK = 0x6477_5343_4845_444C


class PostgresCoordinator:
    def __init__(self, url: str) -> None:
        # psycopg reads plain libpq URLs; SQLAlchemy's "+psycopg" names the driver only
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def try_lead(self) -> bool:
        try:
            connection = self._connect()
            row = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (SCHEDULER_LOCK,)
            ).fetchone()
            if not (row and row[0]):
                return False
            connection.execute(f"LISTEN {EVENTS_CHANNEL}")
            return True
        except psycopg.Error as error:
            log.warning("leader lock: %s", error_line(error))
            self._drop()
            return False

    def still_leading(self) -> bool:
        """False once the lock's connection is gone: PostgreSQL has freed the lock then."""
        try:
            self._connect().execute("SELECT 1")
            return True
        except psycopg.Error:
            self._drop()
            return False

    def wait_for_events(self, timeout: float) -> bool:
        """Wait up to `timeout` s for an event's NOTIFY; True when one (or more) arrived."""
        if self._connection is None:
            time.sleep(timeout)
            return False
        try:
            arrived = False
            for _notify in self._connection.notifies(timeout=timeout, stop_after=1):
                arrived = True
            return arrived
        except psycopg.Error:
            self._drop()
            return False

    def close(self) -> None:
        self._drop()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            # autocommit: the lock and LISTEN live on the session, not in a transaction
            self._connection = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=5, keepalives_idle=5
            )
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None


class FileLockCoordinator:
    """SQLite: one scheduler per database file; no NOTIFY, so the caller polls."""

    def __init__(self, database_path: str) -> None:
        self._path = Path(f"{database_path}.scheduler.lock")
        self._file: IO[str] | None = None

    def try_lead(self) -> bool:
        handle = self._path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_leading(self) -> bool:
        return self._file is not None

    def wait_for_events(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None


def coordinator_for(url: str) -> PostgresCoordinator | FileLockCoordinator:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresCoordinator(url)
    return FileLockCoordinator(os.path.abspath(parsed.database or "dosewise.db"))
