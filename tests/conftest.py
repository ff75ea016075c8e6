"""Database fixtures: every database test runs on SQLite and on PostgreSQL.

Each test gets a fresh, migrated database. Migrating takes a while, so it happens once per
session into a template (a file on SQLite, a template database on PostgreSQL) that each test
copies. Names are random so parallel runs on one server do not collide.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from store.engine import create_engine, session_factory
from store.migrate import upgrade
from store.unit_of_work import SqlUnitOfWork

POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class PostgresServer:
    admin: Engine
    url: URL
    template: str

    def url_of(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def run(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(sql)

    @contextmanager
    def fresh_database(self, prefix: str) -> Iterator[str]:
        """A new database cloned from the migrated template, dropped afterwards: its URL."""
        name = _unique(prefix)
        self.run(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        try:
            yield self.url_of(name)
        finally:
            self.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dosewise.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = make_url(os.environ.get("DOSEWISE_TEST_POSTGRES_URL", POSTGRES_DEFAULT))
    # CREATE DATABASE refuses to run inside a transaction
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect():
            pass
    except OperationalError as error:
        reason = f"PostgreSQL at {url.render_as_string()} is unreachable: {error.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(admin, url, _unique("dosewise_template"))
    server.run(f'CREATE DATABASE "{server.template}"')
    try:
        upgrade(server.url_of(server.template))
        yield server
    finally:
        server.run(f'DROP DATABASE IF EXISTS "{server.template}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database with the current schema and nothing in it."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "dosewise.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.fresh_database("dosewise_test") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh migrated PostgreSQL database, for tests that need PostgreSQL itself (advisory
    locks, LISTEN/NOTIFY, several processes on one database)."""
    with postgres_server.fresh_database("dosewise_pg") as url:
        yield url


@pytest.fixture
def one_connection(postgres_url: str) -> Iterator[Engine]:
    """The tracker's kind of engine (no ping before use), with one pooled connection: what one
    transaction leaves on its connection, the next meets."""
    engine = create_engine(postgres_url, pool_size=1, pre_ping=False)
    yield engine
    engine.dispose()


def end_other_backends(url: str) -> int:
    """End every other session on the database at `url` (a restart, a failover); how many."""
    admin = sqlalchemy.create_engine(url, poolclass=NullPool)
    with admin.connect() as connection:
        ended = connection.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()
    admin.dispose()
    return int(ended)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def unit_of_work(engine: Engine) -> Callable[[], SqlUnitOfWork]:
    """Makes a new unit of work on the test's database (one per transaction)."""
    sessions = session_factory(engine)
    return lambda: SqlUnitOfWork(sessions)


def free_port() -> int:
    """A loopback port nobody listens on right now, for a server the test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with the openssl command
    line; without openssl the TLS tests are skipped, except under CI, where they fail."""
    if shutil.which("openssl") is None:
        reason = "the openssl command is needed to make a test certificate"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's figures (tests/test_faults.py), when it ran."""
    from tests.fault_figures import RECORDED, WANTED

    if RECORDED:
        terminalreporter.section("fault suite figures")
        terminalreporter.line(WANTED)
        for figures in RECORDED:
            terminalreporter.line(figures.line())
