"""A regimen stored by an earlier dosewise that today's rules refuse: LATER and COLD answer
(200) that it must be enrolled again and record nothing they cannot honour; the scheduler
skips that person's snooze and lozenges with a warning and acts on every other event.
On SQLite and PostgreSQL, through the real tracker and scheduler use cases."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.scheduling import SchedulerConfig, consume_events, materialise
from store.models import OutgoingMessageRow, RegimenRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    add_reminder,
    cold_courses,
    enrol,
    event_types,
    reminder_status,
)
from tests.tracker_client import NOW, PHONE, Tracker, tracker

__all__ = ["tracker"]  # the fixture, imported for pytest

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
CONFIG = SchedulerConfig(public_url="https://dosewise.example")
OTHER_PHONE = "+4520654321"
CANNOT_USE = "Today's rules refuse your stored regimen"
TAKE_OR_SKIP = "Reply TAKEN or SKIP when you can."
NOT_ACCEPTED = "the stored regimen is not accepted any more (supplements.0: "


def answer(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    message = ET.fromstring(response.text).find("Message")
    return None if message is None else message.text


def refuse_stored_regimen(engine: Engine, person_id: int, **policy: Any) -> None:
    """Rewrite the stored regimen as an earlier dosewise let it in: its first supplement names
    two (refused by the schema today), or with `policy` the planner refuses."""
    with engine.begin() as connection:
        body = connection.execute(
            select(RegimenRow.body).where(RegimenRow.person_id == person_id)
        ).scalar_one()
        if policy:
            body["policy"].update(policy)
        else:
            body["supplements"][0]["name"] = "Iron with vitamin C"
        connection.execute(
            update(RegimenRow).where(RegimenRow.person_id == person_id).values(body=body)
        )


def lozenge_people(engine: Engine, due_from: datetime = NOW) -> list[int]:
    """Who has lozenge reminders due from `due_from` on that are not cancelled."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(ReminderRow.person_id)
                .where(
                    ReminderRow.kind == "lozenge",
                    ReminderRow.status != "cancelled",
                    ReminderRow.due_at >= due_from,
                )
                .distinct()
                .order_by(ReminderRow.person_id)
            )
        )


def snooze_messages(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(OutgoingMessageRow.purpose).where(
                    OutgoingMessageRow.purpose.like("snooze-%")
                )
            )
        )


@pytest.fixture
def person(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    return enrol(unit_of_work, PHONE, NOW - timedelta(days=1))


@pytest.fixture
def other(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    """Someone else, whose regimen today's rules accept."""
    return enrol(unit_of_work, OTHER_PHONE, NOW - timedelta(days=1))


# -- the tracker -----------------------------------------------------------------------------


def test_later_says_the_regimen_must_be_enrolled_again_and_snoozes_nothing(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    reminder = add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=12))
    refuse_stored_regimen(tracker.engine, person)

    assert answer(tracker.sms("LATER 20")) == (
        f"{CANNOT_USE}: no reminder will come again for this dose. Enrol it again "
        f"(dosewise people add). {TAKE_OR_SKIP}"
    )
    assert "Snoozed" not in event_types(tracker.engine)
    assert reminder_status(tracker.engine, reminder) == "sent"


def test_cold_says_the_regimen_must_be_enrolled_again_and_starts_no_course(
    tracker: Tracker, person: int, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_stored_regimen(tracker.engine, person)

    with caplog.at_level(logging.WARNING, logger="dosewise.tracker"):
        text = answer(tracker.sms("COLD"))
    assert text == (
        f"{CANNOT_USE}: no cold course was started. Enrol it again with a corrected file "
        "(dosewise people add)."
    )
    assert cold_courses(tracker.engine) == []
    assert "ColdOnset" not in event_types(tracker.engine)
    # the log says which rule refuses it, in the scheduler's words
    assert f"person {person}: no cold course was started: {NOT_ACCEPTED}" in caplog.text


# -- the scheduler ---------------------------------------------------------------------------


def test_a_snooze_of_a_regimen_refused_since_is_dropped_and_later_events_acted_on(
    tracker: Tracker,
    person: int,
    other: int,
    unit_of_work: UnitOfWorkFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=12))
    assert answer(tracker.sms("LATER 20")) == "OK: dosewise will remind you again in 20 minutes."
    refuse_stored_regimen(tracker.engine, person)  # an upgrade between the reply and its event
    answer(tracker.sms("COLD", from_number=OTHER_PHONE))  # an event after the Snoozed one

    with caplog.at_level(logging.WARNING, logger="services.scheduling"):
        consume_events(unit_of_work(), NOW + timedelta(seconds=1), CONFIG)
    assert snooze_messages(tracker.engine) == []
    assert lozenge_people(tracker.engine) == [other]
    assert "snooze of reminder" in caplog.text and NOT_ACCEPTED in caplog.text


def test_lozenges_of_a_regimen_refused_since_are_not_planned_and_others_are(
    tracker: Tracker, person: int, other: int, unit_of_work: UnitOfWorkFactory
) -> None:
    answer(tracker.sms("COLD"))
    refuse_stored_regimen(tracker.engine, person)
    answer(tracker.sms("COLD", from_number=OTHER_PHONE))

    consume_events(unit_of_work(), NOW + timedelta(seconds=1), CONFIG)
    assert lozenge_people(tracker.engine) == [other]
    # both courses are running: materialising goes on past the refused one's lozenges
    done = materialise(unit_of_work(), NOW + timedelta(minutes=5), CONFIG)
    assert done.people == 2
    assert lozenge_people(tracker.engine) == [other]


def test_replanning_for_a_regimen_refused_since_plans_no_lozenges_and_fails_nothing(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    answer(tracker.sms("COLD"))
    consume_events(unit_of_work(), NOW + timedelta(seconds=1), CONFIG)
    assert lozenge_people(tracker.engine) == [person]
    refuse_stored_regimen(tracker.engine, person)
    # START plans the person's next horizon again, the running course's lozenges with it
    answer(tracker.sms("STOP"))
    answer(tracker.sms("START"))

    replanned = NOW + timedelta(minutes=2)
    consume_events(unit_of_work(), replanned, CONFIG)
    assert lozenge_people(tracker.engine, replanned) == []


def test_lozenges_the_planner_refuses_today_are_not_planned_and_others_are(
    tracker: Tracker, person: int, other: int, unit_of_work: UnitOfWorkFactory
) -> None:
    answer(tracker.sms("COLD"))
    answer(tracker.sms("COLD", from_number=OTHER_PHONE))
    # once let in; today the planner refuses a course this long
    refuse_stored_regimen(tracker.engine, person, cold_course_days=20)

    consume_events(unit_of_work(), NOW + timedelta(seconds=1), CONFIG)
    materialise(unit_of_work(), NOW + timedelta(minutes=5), CONFIG)
    assert lozenge_people(tracker.engine) == [other]
