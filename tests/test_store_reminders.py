"""Re-planning reminders is idempotent: one row per person, slot and due instant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine

from services.ports import PersonDetails, ReminderPlan
from store.models import ReminderRow
from store.unit_of_work import SqlUnitOfWork

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
DAY = (NOW, NOW + timedelta(days=1))
IRON = [{"supplement": "iron", "dose": "18 mg"}]
UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def enrolled(unit_of_work: UnitOfWorkFactory) -> int:
    with unit_of_work() as uow:
        details = PersonDetails("Ana", "+4520123456", None, "sms", "Europe/Copenhagen")
        person_id = uow.people.add(details, NOW)
        uow.commit()
    return person_id


def plans(person_id: int) -> list[ReminderPlan]:
    return [
        ReminderPlan(
            person_id=person_id,
            slot_key=f"dose:{hour:02d}:30",
            kind="dose",
            due_at=NOW + timedelta(hours=hour),
            window_closes_at=NOW + timedelta(hours=hour + 2),
            items=IRON,
            followup_due_at=NOW + timedelta(hours=hour, minutes=30),
        )
        for hour in (4, 10)
    ]


def upsert(unit_of_work: UnitOfWorkFactory, wanted: list[ReminderPlan]) -> None:
    with unit_of_work() as uow:
        uow.reminders.upsert(wanted, NOW)
        uow.commit()


def stored(unit_of_work: UnitOfWorkFactory, person_id: int) -> list[ReminderPlan]:
    with unit_of_work() as uow:
        return [record.plan for record in uow.reminders.between(person_id, *DAY)]


def test_planning_twice_stores_each_reminder_once(unit_of_work: UnitOfWorkFactory) -> None:
    person_id = enrolled(unit_of_work)
    upsert(unit_of_work, plans(person_id))
    upsert(unit_of_work, plans(person_id))
    assert stored(unit_of_work, person_id) == plans(person_id)


def test_replanning_refreshes_a_reminder_not_yet_sent(unit_of_work: UnitOfWorkFactory) -> None:
    person_id = enrolled(unit_of_work)
    upsert(unit_of_work, plans(person_id))
    smaller = [{"supplement": "iron", "dose": "9 mg"}]
    upsert(unit_of_work, [replace(plan, items=smaller) for plan in plans(person_id)])
    assert [plan.items for plan in stored(unit_of_work, person_id)] == [smaller, smaller]


def test_replanning_leaves_a_sent_reminder_alone(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    person_id = enrolled(unit_of_work)
    upsert(unit_of_work, plans(person_id))
    first_due = plans(person_id)[0].due_at
    with engine.begin() as connection:
        connection.execute(
            update(ReminderRow).where(ReminderRow.due_at == first_due).values(status="sent")
        )
    smaller = [{"supplement": "iron", "dose": "9 mg"}]
    upsert(unit_of_work, [replace(plan, items=smaller) for plan in plans(person_id)])
    with unit_of_work() as uow:
        records = uow.reminders.between(person_id, *DAY)
    assert [(record.status, record.plan.items) for record in records] == [
        ("sent", IRON),
        ("planned", smaller),
    ]


def test_reminders_come_back_in_utc(unit_of_work: UnitOfWorkFactory) -> None:
    person_id = enrolled(unit_of_work)
    upsert(unit_of_work, plans(person_id))
    due = [plan.due_at for plan in stored(unit_of_work, person_id)]
    assert due == [NOW + timedelta(hours=4), NOW + timedelta(hours=10)]
    assert all(instant.tzinfo == UTC for instant in due)
