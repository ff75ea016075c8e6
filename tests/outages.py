"""Databases that can be taken away and given back, for the fault tests.

- PostgresCluster: a throwaway PostgreSQL cluster of the test's own (initdb, pg_ctl from
  /usr/lib/postgresql/*/bin, run as the postgres user when the tests run as root), on a free
  port, that a test may stop, restart or kill. The shared server on 5432 is never touched.
- refuse_connections / allow_connections: one database of the shared server taken away
  (ALLOW_CONNECTIONS false, its sessions ended) and given back, for quick tests.
- SmallDisk: a tmpfs of a few megabytes (mounting needs root) holding a SQLite database,
  filled to the last byte to make the disk full, and emptied again.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from store.engine import create_engine
from store.migrate import upgrade
from tests.conftest import PostgresServer, free_port

FILLER = "filler"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, on a loopback port of its own."""

    def __init__(self) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="dosewise-cluster-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.log), "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def running(self) -> bool:
        status = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data), "status"),
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def new_database(self, name: str) -> str:
        """A database with dosewise's current schema: its URL."""
        admin = sqlalchemy.create_engine(
            self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        upgrade(self.url(name))
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _command(self, program: str, *arguments: str) -> list[str]:
        command = [str(self.bin / program), *arguments]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _run(self, program: str, *arguments: str) -> None:
        subprocess.run(
            self._command(program, *arguments),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            timeout=120,
        )


def _admin(url: str) -> sqlalchemy.Engine:
    server = make_url(url).set(database="postgres")
    return sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def refuse_connections(url: str) -> None:
    """The database at `url` takes no new sessions, and its current ones are ended: to every
    service it is away, while the server (shared with other tests) runs on."""
    name = make_url(url).database
    admin = _admin(url)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    admin.dispose()


def allow_connections(url: str) -> None:
    name = make_url(url).database
    admin = _admin(url)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    admin.dispose()


class SmallDisk:
    """A tmpfs of `megabytes` at a new directory; skips the test where it cannot be mounted."""

    def __init__(self, megabytes: int = 8) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="dosewise-disk-"))
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(self.path)],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            self.path.rmdir()
            pytest.skip("a small disk (tmpfs) cannot be mounted here (needs root)")

    def fill(self, database: Path | None = None) -> None:
        """Write until the disk refuses: nothing is left for a database to grow into. With
        the SQLite `database` on it, its write-ahead log is emptied first (a checkpoint),
        so that the next write must grow it, as on a disk that has long been full."""
        if database is not None:
            with contextlib.closing(sqlite3.connect(database)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        chunk = b"\0" * 65536
        descriptor = os.open(self.path / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while os.write(descriptor, chunk[:size]):
                        pass
        finally:
            os.close(descriptor)

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)

    def unmount(self) -> None:
        for _ in range(50):
            done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
            if done.returncode == 0:
                break
            time.sleep(0.1)  # a process may still hold a file open there
        shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def sqlite_on_small_disk(template: Path, megabytes: int = 8) -> Iterator[tuple[str, SmallDisk]]:
    """A copy of the migrated SQLite template on a SmallDisk: its URL, and the disk."""
    disk = SmallDisk(megabytes)
    try:
        path = disk.path / "dosewise.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}", disk
    finally:
        disk.free()
        disk.unmount()


@dataclass
class Switchable:
    """A fresh migrated database that a test can take `away` and bring `back`: PostgreSQL
    refusing connections, or SQLite on a full disk."""

    kind: str
    url: str
    engine: Engine
    away: Callable[[], None]
    back: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def switchable(request: pytest.FixtureRequest) -> Iterator[Switchable]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        with sqlite_on_small_disk(template) as (url, disk):
            engine = create_engine(url)
            path = Path(make_url(url).database or "")
            try:
                yield Switchable("sqlite", url, engine, lambda: disk.fill(path), disk.free)
            finally:
                engine.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.fresh_database("dosewise_outage") as url:
        engine = create_engine(url, pool_size=4, pre_ping=False)
        try:
            yield Switchable(
                "postgresql",
                url,
                engine,
                lambda: refuse_connections(url),
                lambda: allow_connections(url),
            )
        finally:
            allow_connections(url)
            engine.dispose()


def wait_until(condition: Callable[[], object], timeout_s: float, what: str = "") -> float:
    """Poll `condition` until it is true: the seconds it took; AssertionError past timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")
