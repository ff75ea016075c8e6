"""A pooled connection the database dropped (a restart, a failover, an idle timeout) costs the
webhook that meets it one 503, which Twilio retries; the retry is answered and recorded once.

PostgreSQL only: the hot path runs psycopg directly (store.driver), and a server that ends a
backend is what breaks a pooled connection there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from store.engine import session_factory
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import end_other_backends
from tests.seeding import add_reminder, confirmations, enrol
from tests.tracker_client import NOW, PHONE, Tracker, make_tracker, new_sid


@pytest.fixture
def tracker(postgres_url: str, one_connection: Engine) -> Iterator[Tracker]:
    yield from make_tracker(postgres_url, one_connection)


def test_a_dropped_connection_fails_one_reply_with_503_and_the_retry_counts_once(
    tracker: Tracker, one_connection: Engine, postgres_url: str
) -> None:
    unit_of_work = lambda: SqlUnitOfWork(session_factory(one_connection))  # noqa: E731
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    first = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=40))
    assert tracker.sms("TAKEN").status_code == 200  # the pool now holds a used connection
    second = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=10))
    assert end_other_backends(postgres_url) >= 1

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
