"""A regimen changed during the day never reminds a dose a second time: a dose whose reminder
already went out (confirmed, skipped, or sent and still open) keeps that reminder when the new
plan moves its time, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.enrolment import enrol_person
from services.replies import InboundSms, receive_sms
from services.scheduling import SchedulerConfig, materialise, tick
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.regimens import IRON, regimen

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
CONFIG = SchedulerConfig(public_url="https://dosewise.example")
PHONE = "+4520123456"
MORNING = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
TODAY, TOMORROW = "2026-12-01", "2026-12-02"
VITAMIN_D = {"name": "vitamin D", "dose": "1000 IU", "at": "12:57"}


def at(clock: str, day: str = TODAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00")


def enrol(
    unit_of_work: UnitOfWorkFactory, supplements: list[dict[str, Any]], now: datetime
) -> None:
    plan = regimen(supplements, timezone="UTC", waking=("06:00", "23:30"))
    enrol_person(unit_of_work(), plan, now)


def run_scheduler(unit_of_work: UnitOfWorkFactory, engine: Engine, now: datetime) -> None:
    """The scheduler's tick, then the notifier's part: what was queued is sent."""
    tick(unit_of_work, now, CONFIG)
    with engine.begin() as connection:
        connection.execute(
            update(ReminderRow).where(ReminderRow.status == "queued").values(status="sent")
        )
        connection.execute(
            update(OutgoingMessageRow)
            .where(OutgoingMessageRow.status == "due", OutgoingMessageRow.due_at <= now)
            .values(status="sent")
        )


def rows(engine: Engine) -> list[tuple[str, datetime, str]]:
    with engine.connect() as connection:
        found = connection.execute(
            select(ReminderRow.slot_key, ReminderRow.due_at, ReminderRow.status).order_by(
                ReminderRow.due_at, ReminderRow.slot_key
            )
        )
        return [(key, due, status) for key, due, status in found]


def live(engine: Engine, day: str) -> list[tuple[str, datetime, str]]:
    """The day's reminders that are or will be reminded (not cancelled, not expired)."""
    return [
        row
        for row in rows(engine)
        if row[0].startswith(f"{day}#") and row[2] not in ("cancelled", "expired")
    ]


def initial_messages(engine: Engine) -> list[tuple[str, datetime]]:
    with engine.connect() as connection:
        found = connection.execute(
            select(ReminderRow.slot_key, OutgoingMessageRow.due_at)
            .join(ReminderRow, ReminderRow.id == OutgoingMessageRow.reminder_id)
            .where(OutgoingMessageRow.purpose == "initial")
            .order_by(OutgoingMessageRow.due_at)
        )
        return [(key, due) for key, due in found]


def reply(unit_of_work: UnitOfWorkFactory, words: str, now: datetime) -> str | None:
    sms = InboundSms(f"SM{now.timestamp():.0f}{words}", PHONE, words)
    return receive_sms(unit_of_work(), sms, now).text


BIOTIN = {"name": "biotin", "dose": "50 µg"}


@pytest.mark.parametrize(
    ("answer", "status"), [("TAKEN", "confirmed"), ("SKIP", "skipped"), (None, "sent")]
)
def test_a_dose_moved_after_its_reminder_went_out_is_not_reminded_again(
    unit_of_work: UnitOfWorkFactory, engine: Engine, answer: str | None, status: str
) -> None:
    # Tess: biotin at 13:02 answered (or not yet), then at 13:14 the file moves it to 13:30
    enrol(unit_of_work, [VITAMIN_D, {**BIOTIN, "at": "13:02"}], MORNING)
    run_scheduler(unit_of_work, engine, MORNING)
    run_scheduler(unit_of_work, engine, at("13:02"))
    if answer is not None:
        reply(unit_of_work, answer, at("13:03"))
    enrol(unit_of_work, [VITAMIN_D, {**BIOTIN, "at": "13:30"}], at("13:14"))
    for clock in ("13:14", "13:20", "13:30", "13:31"):
        run_scheduler(unit_of_work, engine, at(clock))
        materialise(unit_of_work(), at(clock), CONFIG)

    biotin_today = [row for row in live(engine, TODAY) if row[0] == f"{TODAY}#biotin"]
    assert biotin_today == [(f"{TODAY}#biotin", at("13:02"), status)]
    assert [due for key, due in initial_messages(engine) if key == f"{TODAY}#biotin"] == [
        at("13:02")
    ]
    # the days ahead follow the new file
    assert [row[1] for row in live(engine, TOMORROW) if row[0].endswith("#biotin")] == [
        at("13:30", TOMORROW)
    ]


def test_a_second_daily_iron_dose_is_not_prompted_when_the_iron_moves(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work, [{**IRON, "at": "08:00"}], MORNING)
    run_scheduler(unit_of_work, engine, at("08:00"))
    assert reply(unit_of_work, "TAKEN", at("08:05")) is not None
    enrol(unit_of_work, [{**IRON, "at": "10:00"}], at("09:00"))
    for clock in ("09:00", "10:00", "10:01"):
        run_scheduler(unit_of_work, engine, at(clock))

    assert [(key, due) for key, due, _ in live(engine, TODAY)] == [(f"{TODAY}#iron", at("08:00"))]
    assert initial_messages(engine) == [(f"{TODAY}#iron", at("08:00"))]


def test_with_two_doses_a_day_the_one_not_yet_reminded_still_is(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    magnesium = {"name": "magnesium", "dose": "100 mg"}
    enrol(unit_of_work, [{**magnesium, "at": "09:00"}, {**magnesium, "at": "20:00"}], MORNING)
    run_scheduler(unit_of_work, engine, at("09:00"))
    reply(unit_of_work, "TAKEN", at("09:01"))
    # both move: the first was taken at 09:00, the second is now due at 20:30
    enrol(unit_of_work, [{**magnesium, "at": "10:00"}, {**magnesium, "at": "20:30"}], at("09:30"))
    for clock in ("09:30", "10:00", "20:00", "20:30"):
        run_scheduler(unit_of_work, engine, at(clock))

    assert [(due, status) for _, due, status in live(engine, TODAY)] == [
        (at("09:00"), "confirmed"),
        (at("20:30"), "sent"),
    ]


def test_a_new_supplement_joining_a_reminded_slot_is_reminded_alone(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work, [{**BIOTIN, "at": "13:00"}], MORNING)
    run_scheduler(unit_of_work, engine, at("13:00"))
    reply(unit_of_work, "TAKEN", at("13:01"))
    # biotin and a new vitamin D share the 13:30 slot: only the vitamin D is still to take
    enrol(unit_of_work, [{**BIOTIN, "at": "13:30"}, {**VITAMIN_D, "at": "13:30"}], at("13:10"))
    for clock in ("13:10", "13:30"):
        run_scheduler(unit_of_work, engine, at(clock))

    assert [(key, due) for key, due, _ in live(engine, TODAY)] == [
        (f"{TODAY}#biotin", at("13:00")),
        (f"{TODAY}#vitamin_d", at("13:30")),
    ]
    with engine.connect() as connection:
        items = connection.execute(
            select(ReminderRow.items).where(ReminderRow.slot_key == f"{TODAY}#vitamin_d")
        ).scalar_one()
    assert [item["supplement"] for item in items] == ["vitamin_d"]
    assert [row[0] for row in live(engine, TOMORROW)] == [f"{TOMORROW}#biotin+vitamin_d"]


def test_a_regimen_unchanged_plans_as_before(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work, [{**BIOTIN, "at": "13:00"}, {**VITAMIN_D, "at": "18:00"}], MORNING)
    run_scheduler(unit_of_work, engine, at("13:00"))
    materialise(unit_of_work(), at("13:00") + timedelta(minutes=1), CONFIG)
    assert [(key, status) for key, _, status in live(engine, TODAY)] == [
        (f"{TODAY}#biotin", "sent"),
        (f"{TODAY}#vitamin_d", "planned"),
    ]
