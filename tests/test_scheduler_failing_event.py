"""An event whose handling fails does not stop the scheduler's events (services.scheduling
consume_events): the events before and after it take effect, it is passed over, logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.ports import Event
from services.scheduling import CONSUMER, consume_events, materialise, tick
from store.models import EventCursorRow, PersonRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.test_scheduler_usecases import CONFIG, NOW, append, enrol

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def statuses(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(ReminderRow.status)))


def cursor(engine: Engine) -> int:
    with engine.connect() as connection:
        return (
            connection.scalar(
                select(EventCursorRow.last_event_id).where(EventCursorRow.consumer == CONSUMER)
            )
            or 0
        )


def last_event_id(unit_of_work: UnitOfWorkFactory, event: Event) -> int:
    append(unit_of_work, event)
    with unit_of_work() as uow:
        seen: list[int] = []
        uow.events.consume("test-reader", lambda recorded: seen.append(recorded.id), 10_000)
    return seen[-1]


def opted_out_with_events(
    unit_of_work: UnitOfWorkFactory, engine: Engine, *events: Callable[[int], Event]
) -> list[int]:
    """An enrolled person with planned reminders, opted out since; the events appended."""
    person = enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    while consume_events(unit_of_work(), NOW, CONFIG):  # the enrolment's own
        pass
    with engine.begin() as connection:
        connection.execute(update(PersonRow).values(opted_out=True))
    return [last_event_id(unit_of_work, make(person)) for make in events]


def broken(person: int) -> Event:
    """A DoseConfirmed without its reminder_id: its handler raises KeyError."""
    return Event("DoseConfirmed", person, NOW, {})


def opted_out(person: int) -> Event:
    return Event("OptedOut", person, NOW, {"source": "sms"})


def test_a_failing_event_is_passed_over_and_the_events_after_it_take_effect(
    unit_of_work: UnitOfWorkFactory, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    broken_id, last = opted_out_with_events(unit_of_work, engine, broken, opted_out)
    with caplog.at_level(logging.WARNING, logger="services.scheduling"):
        tick(unit_of_work, NOW, CONFIG)
    assert statuses(engine) == {"cancelled"}  # the OptedOut after it was acted on
    assert cursor(engine) == last
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"event {broken_id} (DoseConfirmed" in errors[0].getMessage()
    assert "KeyError" in errors[0].getMessage()
    assert consume_events(unit_of_work(), NOW, CONFIG) == 0  # nothing is left to retry


def test_the_events_before_a_failing_one_take_effect_once(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    first, broken_id = opted_out_with_events(unit_of_work, engine, opted_out, broken)
    # the batch fails on the broken event; taken one at a time, the OptedOut is acted on
    assert consume_events(unit_of_work(), NOW, CONFIG) == 1
    assert cursor(engine) == first
    assert statuses(engine) == {"cancelled"}
    assert consume_events(unit_of_work(), NOW, CONFIG) == 1  # the broken one, passed over
    assert cursor(engine) == broken_id


def test_a_database_that_cannot_be_used_passes_nothing_over(
    unit_of_work: UnitOfWorkFactory, engine: Engine, tmp_path: Any
) -> None:
    from sqlalchemy import create_engine

    from store.engine import session_factory
    from store.errors import DatabaseUnavailable

    opted_out_with_events(unit_of_work, engine, opted_out)
    before = cursor(engine)
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    with pytest.raises(DatabaseUnavailable):
        consume_events(SqlUnitOfWork(session_factory(missing)), NOW, CONFIG)
    missing.dispose()
    assert cursor(engine) == before
    assert statuses(engine) == {"planned"}
