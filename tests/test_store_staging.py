"""Staged writes (store.driver): on PostgreSQL the reply path's last writes and its events wait
on the connection and go out with the next statement or the commit. They must behave as if
they had run when called: seen by what follows, gone with a rollback, an error in them fails
the whole transaction, and a connection lost before the commit is one DatabaseUnavailable.

PostgreSQL only: SQLite runs every write when called.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from services.ports import Event
from services.reply_ports import InboundReply, OpenReminder, ReplyClaim
from store.engine import session_factory
from store.errors import DatabaseUnavailable
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import end_other_backends
from tests.seeding import add_reminder, confirmations, enrol, event_types, reminder_status
from tests.tracker_client import NOW, PHONE, new_sid

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


@pytest.fixture
def engine(one_connection: Engine) -> Engine:
    return one_connection


@pytest.fixture
def unit_of_work(engine: Engine) -> UnitOfWorkFactory:
    sessions = session_factory(engine)
    return lambda: SqlUnitOfWork(sessions)


@pytest.fixture
def open_reminder(unit_of_work: UnitOfWorkFactory, engine: Engine) -> OpenReminder:
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    reminder_id = add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=10))
    with unit_of_work() as uow:
        found = uow.replies.reminder_for_update(reminder_id)
    assert found is not None
    return found


def test_a_staged_write_is_seen_by_the_next_statement(
    unit_of_work: UnitOfWorkFactory, open_reminder: OpenReminder
) -> None:
    with unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", None)
        again = uow.replies.reminder_for_update(open_reminder.id)  # an ORM-free Core read
        assert again is not None and again.status == "confirmed"
        uow.commit()


def test_a_claim_after_staged_writes_sees_them_and_reads_its_own_rows(
    unit_of_work: UnitOfWorkFactory, open_reminder: OpenReminder
) -> None:
    # the claim goes in the staged writes' message (store.driver): its rows are the last
    # result of that message, read after the writes
    with unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", None)
        claimed = uow.replies.claim(
            InboundReply(new_sid(), PHONE, "TAKEN", "taken"), NOW, with_open_reminder=True
        )
        assert claimed is not None and claimed.person is not None
        assert claimed.person.id == open_reminder.person_id
        assert claimed.open_reminder is None  # the staged write answered it
        uow.commit()


def test_claims_together_see_the_staged_writes_and_each_get_their_own_rows(
    unit_of_work: UnitOfWorkFactory, open_reminder: OpenReminder
) -> None:
    # one message: the staged writes, then each claim; each claim's rows its own result
    stored_sid, stranger = new_sid(), "+4599000001"
    with unit_of_work() as uow:
        uow.replies.claim(InboundReply(stored_sid, PHONE, "HELP", "help"), NOW)
        uow.commit()
    with unit_of_work() as uow:
        uow.replies.limit_lock_waits(0.5)  # a staged write ahead of them
        claimed = uow.replies.claim_together(
            [
                ReplyClaim(InboundReply(new_sid(), PHONE, "TAKEN", "taken"), NOW, True),
                ReplyClaim(InboundReply(stored_sid, PHONE, "HELP", "help"), NOW),
                ReplyClaim(InboundReply(new_sid(), stranger, "TAKEN", "taken"), NOW, True),
                ReplyClaim(InboundReply(new_sid(), PHONE, "HELP", "help"), NOW),
            ]
        )
        uow.commit()
    first, again, unknown, without_reminder = claimed
    assert first is not None and first.person is not None
    assert first.open_reminder is not None and first.open_reminder.id == open_reminder.id
    assert again is None  # its MessageSid was stored before
    assert unknown is not None and unknown.person is None and unknown.open_reminder is None
    assert without_reminder is not None and without_reminder.open_reminder is None
    assert len({first.id, unknown.id, without_reminder.id}) == 3
    with unit_of_work() as uow:
        assert uow.replies.claim_together([]) == []


def test_an_error_in_staged_writes_ahead_of_a_claim_fails_the_claim_and_keeps_nothing(
    unit_of_work: UnitOfWorkFactory, engine: Engine, open_reminder: OpenReminder
) -> None:
    with pytest.raises(IntegrityError), unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", 999_999)
        uow.replies.claim(InboundReply(new_sid(), PHONE, "TAKEN", "taken"), NOW)
    assert reminder_status(engine, open_reminder.id) == "sent"
    with unit_of_work() as uow:  # a connection that works: the failed one was not reused
        claimed = uow.replies.claim(
            InboundReply(new_sid(), PHONE, "TAKEN", "taken"), NOW, with_open_reminder=True
        )
        assert claimed is not None and claimed.open_reminder is not None
        assert claimed.open_reminder.id == open_reminder.id


def test_a_rollback_forgets_staged_writes_and_the_next_transaction_does_not_run_them(
    unit_of_work: UnitOfWorkFactory, engine: Engine, open_reminder: OpenReminder
) -> None:
    with unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", None)
        uow.events.append(Event("DoseConfirmed", open_reminder.person_id, NOW))
        uow.rollback()
        uow.events.append(Event("ColdEnded", None, NOW))  # a new transaction, same connection
        uow.commit()
    with unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "skipped", NOW, "sms", None)
        # leaving without commit rolls back
    assert reminder_status(engine, open_reminder.id) == "sent"
    assert confirmations(engine) == []
    assert "DoseConfirmed" not in event_types(engine)
    assert event_types(engine)[-1] == "ColdEnded"


def test_an_error_in_a_staged_write_fails_the_whole_transaction(
    unit_of_work: UnitOfWorkFactory, engine: Engine, open_reminder: OpenReminder
) -> None:
    events_before = event_types(engine)
    with pytest.raises(IntegrityError), unit_of_work() as uow:
        uow.people.by_phone(PHONE)
        uow.events.append(Event("DoseConfirmed", open_reminder.person_id, NOW))
        # no such reply: the confirmation's foreign key fails, at the commit
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", 999_999)
        uow.commit()
    assert reminder_status(engine, open_reminder.id) == "sent"
    assert confirmations(engine) == []
    assert event_types(engine) == events_before
    with unit_of_work() as uow:  # the connection is usable again
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", None)
        uow.commit()
    assert confirmations(engine) == [(open_reminder.id, "taken", "sms")]


def test_a_connection_lost_before_the_commit_is_one_database_error_and_nothing_is_kept(
    unit_of_work: UnitOfWorkFactory, engine: Engine, postgres_url: str, open_reminder: OpenReminder
) -> None:
    with pytest.raises(DatabaseUnavailable), unit_of_work() as uow:
        uow.replies.record_outcome(open_reminder, "taken", NOW, "sms", None)
        end_other_backends(postgres_url)
        uow.commit()
    assert reminder_status(engine, open_reminder.id) == "sent"
    assert confirmations(engine) == []


def _record_and_commit(unit_of_work: UnitOfWorkFactory, reminder: OpenReminder) -> None:
    with unit_of_work() as uow:
        uow.replies.record_outcome(reminder, "taken", NOW, "sms", None)
        uow.events.append(Event("DoseConfirmed", reminder.person_id, NOW))
        uow.commit()


def _claim_and_roll_back(unit_of_work: UnitOfWorkFactory, _engine: Engine) -> None:
    with unit_of_work() as uow:
        # a statement psycopg prepares, so its rollback ends with DEALLOCATE ALL
        uow.replies.claim(InboundReply(new_sid(), PHONE, "TAKEN", "taken"), NOW)


def _read_and_roll_back(_unit_of_work: UnitOfWorkFactory, engine: Engine) -> None:
    with engine.connect() as connection:  # psycopg has nothing prepared to deallocate
        connection.exec_driver_sql("SELECT 1")


def _deallocate_all(_unit_of_work: UnitOfWorkFactory, engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()


@pytest.mark.parametrize("between", [_claim_and_roll_back, _read_and_roll_back, _deallocate_all])
def test_staged_writes_prepare_again_only_what_the_connection_lost(
    unit_of_work: UnitOfWorkFactory,
    engine: Engine,
    open_reminder: OpenReminder,
    between: Callable[[UnitOfWorkFactory, Engine], None],
) -> None:
    # the staged writes are EXECUTEs of statements prepared once per connection (one pooled
    # connection here): what happens in between must neither leave one missing nor have one
    # prepared twice
    person = open_reminder.person_id
    second_id = add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=5))
    with unit_of_work() as uow:
        second = uow.replies.reminder_for_update(second_id)
    assert second is not None
    _record_and_commit(unit_of_work, open_reminder)
    between(unit_of_work, engine)
    _record_and_commit(unit_of_work, second)
    assert reminder_status(engine, second_id) == "confirmed"
    assert event_types(engine).count("DoseConfirmed") == 2
