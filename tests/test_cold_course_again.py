"""COLD, WELL and COLD again on one day: the second course counts the lozenges the first gave
that day against the day's limit and keeps the shortest interval from the last of them, in
the tracker's answer and in what the scheduler plans, now and on every materialisation after.
On SQLite and PostgreSQL, through the real tracker and scheduler use cases."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.scheduling import (
    SchedulerConfig,
    close_windows,
    consume_events,
    hand_off,
    materialise,
)
from store.models import ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import cold_courses, enrol
from tests.tracker_client import PHONE, Tracker, tracker

__all__ = ["tracker"]  # the fixture, imported for pytest

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
CONFIG = SchedulerConfig(public_url="https://dosewise.example")
ZONE = ZoneInfo("Europe/Copenhagen")
DAY = "2026-11-23"  # a Monday; Copenhagen is UTC+1
PER_DAY = 6  # the default policy's lozenges_per_day
SHORTEST = timedelta(hours=2)  # its lozenge_min_interval_hours


def local(clock: str) -> datetime:
    """An instant of the day, said in Copenhagen time."""
    return datetime.fromisoformat(f"{DAY}T{clock}").replace(tzinfo=ZONE).astimezone(UTC)


def answer(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    message = ET.fromstring(response.text).find("Message")
    assert message is not None and message.text is not None
    return message.text


def first_lozenge_at(text: str) -> str:
    found = re.search(r"first 14 mg lozenge at (\d\d:\d\d),", text)
    assert found is not None, text
    return found.group(1)


def lozenges_of_the_day(engine: Engine) -> list[Any]:
    """The day's lozenge reminders that were or will be given (not cancelled), in time order."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(ReminderRow.cold_course_id, ReminderRow.due_at, ReminderRow.slot_key)
                .where(
                    ReminderRow.kind == "lozenge",
                    ReminderRow.status != "cancelled",
                    ReminderRow.slot_key.like(f"{DAY}#%"),
                )
                .order_by(ReminderRow.due_at)
            )
        )


def given_at(unit_of_work: UnitOfWorkFactory, engine: Engine, *clocks: str) -> None:
    """The scheduler hands off the lozenges due at these times, and the notifier sends them."""
    for clock in clocks:
        hand_off(unit_of_work(), local(clock), CONFIG)
        with engine.begin() as connection:
            connection.execute(
                update(ReminderRow).where(ReminderRow.status == "queued").values(status="sent")
            )


@pytest.fixture
def person(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    # iron and vitamin C at 07:00, awake 07:00-22:00
    return enrol(unit_of_work, PHONE, local("06:00") - timedelta(days=1))


def say(tracker: Tracker, words: str, clock: str) -> str:
    tracker.now = local(clock)
    return answer(tracker.sms(words))


def test_a_second_course_on_the_same_day_keeps_the_days_limit_and_the_interval(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    say(tracker, "COLD", "07:30")
    consume_events(unit_of_work(), local("07:30"), CONFIG)
    given_at(unit_of_work, engine, "09:00", "11:30")
    say(tracker, "WELL", "12:00")
    consume_events(unit_of_work(), local("12:00"), CONFIG)

    text = say(tracker, "COLD", "12:15")
    consume_events(unit_of_work(), local("12:15"), CONFIG)

    first, second = (row.id for row in cold_courses(engine))
    day = lozenges_of_the_day(engine)
    earlier = [row.due_at for row in day if row.cold_course_id == first]
    again = [row.due_at for row in day if row.cold_course_id == second]
    assert [f"{at.astimezone(ZONE):%H:%M}" for at in earlier] == ["09:00", "11:30"]
    assert len(day) == PER_DAY  # 2 + 4, not 2 + another 6
    assert again[0] >= earlier[-1] + SHORTEST
    # the answer names the lozenge the scheduler planned
    assert first_lozenge_at(text) == f"{again[0].astimezone(ZONE):%H:%M}"
    # numbered after the day's lozenges already given
    assert [row.slot_key.rsplit("-", 1)[1] for row in day if row.cold_course_id == second] == [
        "3",
        "4",
        "5",
        "6",
    ]

    # later in the day the first course's lozenges are missed, not sent: the second course's
    # plan stays as it was, with nothing added beside it
    close_windows(unit_of_work(), local("21:00"))
    materialise(unit_of_work(), local("21:00"), CONFIG)
    assert lozenges_of_the_day(engine) == day


def test_the_answer_leaves_out_a_lozenge_the_well_before_it_cancels(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    say(tracker, "COLD", "07:30")
    consume_events(unit_of_work(), local("07:30"), CONFIG)
    given_at(unit_of_work, engine, "09:00")
    say(tracker, "WELL", "11:25")
    # COLD before the scheduler read the WELL: the 11:30 lozenge is still planned, but the
    # ended course will not give it
    text = say(tracker, "COLD", "11:35")
    consume_events(unit_of_work(), local("11:35"), CONFIG)

    second = cold_courses(engine)[-1].id
    again = [row.due_at for row in lozenges_of_the_day(engine) if row.cold_course_id == second]
    assert first_lozenge_at(text) == f"{again[0].astimezone(ZONE):%H:%M}" == "11:35"
