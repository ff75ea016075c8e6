"""A pooled connection the database dropped (a restart, a failover, an idle timeout) costs the
webhook that meets it one 503, which Twilio retries; the retry is answered and recorded once.

PostgreSQL only: the hot path runs psycopg directly (store.driver), and a server that ends a
backend is what breaks a pooled connection there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from store.engine import create_engine, session_factory
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import add_reminder, confirmations, enrol
from tests.tracker_client import NOW, PHONE, Tracker, make_tracker, new_sid


@pytest.fixture
def one_connection(postgres_url: str) -> Iterator[Engine]:
    """The tracker's kind of engine (no ping before use), with one pooled connection."""
    engine = create_engine(postgres_url, pool_size=1, pre_ping=False)
    yield engine
    engine.dispose()


@pytest.fixture
def tracker(postgres_url: str, one_connection: Engine) -> Iterator[Tracker]:
    yield from make_tracker(postgres_url, one_connection)


def _end_other_backends(url: str) -> int:
    admin = sqlalchemy.create_engine(url, poolclass=NullPool)
    with admin.connect() as connection:
        ended = connection.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()
    admin.dispose()
    return int(ended)


def test_a_dropped_connection_fails_one_reply_with_503_and_the_retry_counts_once(
    tracker: Tracker, one_connection: Engine, postgres_url: str
) -> None:
    unit_of_work = lambda: SqlUnitOfWork(session_factory(one_connection))  # noqa: E731
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    first = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=40))
    assert tracker.sms("TAKEN").status_code == 200  # the pool now holds a used connection
    second = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=10))
    assert _end_other_backends(postgres_url) >= 1

    sid = new_sid()
    failed = tracker.sms("TAKEN", sid=sid)
    assert failed.status_code == 503
    assert "database is unavailable" in failed.text

    retried = tracker.sms("TAKEN", sid=sid)  # Twilio retries the same MessageSid
    assert retried.status_code == 200
    assert "Iron logged at 11:42" in retried.text
    again = tracker.sms("TAKEN", sid=sid)
    assert again.status_code == 200
    assert again.text == retried.text
    assert sorted(confirmations(one_connection)) == [
        (first, "taken", "sms"),
        (second, "taken", "sms"),
    ]
