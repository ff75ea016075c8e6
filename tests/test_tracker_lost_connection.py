"""A pooled connection the database dropped (a restart, a failover, an idle timeout) costs the
webhook that meets it nothing: its reply is tried again on a fresh connection, answered and
recorded once (Twilio does not retry an inbound-SMS webhook that answered 503). A batch of
replies (the group commit) that meets it goes again as a whole.

PostgreSQL only: the hot path runs psycopg directly (store.driver), and a server that ends a
backend is what breaks a pooled connection there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from dosewise.wiring import database_on
from store.engine import session_factory
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import end_other_backends
from tests.seeding import add_reminder, confirmations, enrol
from tests.test_group_commit import (
    people_with_an_open_reminder,
    phone,
    replies_at_once,
    signed_tracker,
)
from tests.tracker_client import (
    NOW,
    PHONE,
    Tracker,
    make_tracker,
    new_sid,
)


@pytest.fixture
def tracker(postgres_url: str, one_connection: Engine) -> Iterator[Tracker]:
    yield from make_tracker(postgres_url, one_connection)


def test_a_dropped_connection_is_tried_again_on_a_fresh_one_and_counts_once(
    tracker: Tracker, one_connection: Engine, postgres_url: str
) -> None:
    unit_of_work = lambda: SqlUnitOfWork(session_factory(one_connection))  # noqa: E731
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    first = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=40))
    assert tracker.sms("TAKEN").status_code == 200  # the pool now holds a used connection
    second = add_reminder(unit_of_work, one_connection, person, NOW - timedelta(minutes=10))
    assert end_other_backends(postgres_url) >= 1

    sid = new_sid()
    answered = tracker.sms("TAKEN", sid=sid)
    assert answered.status_code == 200
    assert "Iron logged at 11:42" in answered.text
    again = tracker.sms("TAKEN", sid=sid)  # a redelivery of the same MessageSid
    assert again.status_code == 200
    assert again.text == answered.text
    assert sorted(confirmations(one_connection)) == [
        (first, "taken", "sms"),
        (second, "taken", "sms"),
    ]


def test_a_batch_that_meets_a_dropped_connection_goes_again_and_every_reply_counts(
    postgres_url: str, one_connection: Engine
) -> None:
    unit_of_work = lambda: SqlUnitOfWork(session_factory(one_connection))  # noqa: E731
    reminders = people_with_an_open_reminder(unit_of_work, one_connection, 8)
    app = signed_tracker(database_on(one_connection), postgres_url)
    with unit_of_work() as uow:  # the pool's one connection, used once
        uow.people.by_phone(PHONE)
    assert end_other_backends(postgres_url) >= 1
    responses = asyncio.run(replies_at_once(app, [phone(number) for number in range(8)]))
    assert [response.status_code for response in responses] == [200] * 8
    assert sorted(confirmations(one_connection)) == sorted(
        (reminder, "taken", "sms") for reminder in reminders
    )
