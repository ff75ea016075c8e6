"""Seeding the database for tracker tests: people through the enrolment use case, reminders
through the store's repository, and the rows other services would have written (message
statuses, outgoing messages, confirm tokens) directly through the models."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.ports import ReminderPlan
from store.models import (
    ColdCourseRow,
    ConfirmationRow,
    ConfirmTokenRow,
    EventRow,
    InboundReplyRow,
    OutgoingMessageRow,
    PersonRow,
    ReminderRow,
)
from store.unit_of_work import SqlUnitOfWork
from tests.regimens import IRON, VITAMIN_C, regimen

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]

IRON_ITEMS = [
    {"supplement": "iron", "dose": "18 mg"},
    {"supplement": "vitamin_c", "dose": "250 mg"},
]
SELENIUM_ITEMS = [{"supplement": "selenium", "dose": "100 µg"}]


def person_regimen(phone: str, timezone: str = "Europe/Copenhagen") -> Regimen:
    base = regimen([IRON, VITAMIN_C], timezone=timezone)
    return base.model_copy(update={"person": base.person.model_copy(update={"phone": phone})})


def enrol(unit_of_work: UnitOfWorkFactory, phone: str, now: datetime) -> int:
    return enrol_person(unit_of_work(), person_regimen(phone), now).person_id


def add_reminder(
    unit_of_work: UnitOfWorkFactory,
    engine: Engine,
    person_id: int,
    due_at: datetime,
    *,
    items: list[dict[str, Any]] | None = None,
    status: str = "sent",
    window: timedelta = timedelta(hours=2),
) -> int:
    """A reminder as the scheduler plans it, moved on to `status` as the notifier would."""
    plan = ReminderPlan(
        person_id=person_id,
        slot_key=f"test:{due_at.isoformat()}",
        kind="dose",
        due_at=due_at,
        window_closes_at=due_at + window,
        items=items or IRON_ITEMS,
    )
    with unit_of_work() as uow:
        uow.reminders.upsert([plan], due_at)
        uow.commit()
    with unit_of_work() as uow:
        found = uow.reminders.between(person_id, due_at, due_at + timedelta(seconds=1))
    reminder_id = next(record.id for record in found if record.plan.slot_key == plan.slot_key)
    with engine.begin() as connection:
        connection.execute(
            update(ReminderRow).where(ReminderRow.id == reminder_id).values(status=status)
        )
    return reminder_id


def add_confirm_token(engine: Engine, reminder_id: int, expires_at: datetime) -> str:
    token = secrets.token_urlsafe(32)
    with Session(engine) as session:
        session.add(
            ConfirmTokenRow(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                reminder_id=reminder_id,
                expires_at=expires_at,
            )
        )
        session.commit()
    return token


def add_sent_message(
    engine: Engine, person_id: int, reminder_id: int | None, provider_id: str, now: datetime
) -> int:
    with Session(engine) as session:
        row = OutgoingMessageRow(
            reminder_id=reminder_id,
            person_id=person_id,
            channel="sms",
            recipient="+4520123456",
            body="Time for iron 18 mg + vitamin C 250 mg",
            purpose="initial",
            status="sent",
            due_at=now,
            next_attempt_at=now,
            attempts=1,
            provider_id=provider_id,
            sent_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.commit()
        return row.id


# -- reading back ----------------------------------------------------------------------------


def events(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.execute(select(EventRow.type, EventRow.payload).order_by(EventRow.id))
        return [(row.type, row.payload) for row in rows]


def event_types(engine: Engine) -> list[str]:
    return [kind for kind, _ in events(engine)]


def confirmations(engine: Engine) -> list[tuple[int, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(ConfirmationRow.reminder_id, ConfirmationRow.outcome, ConfirmationRow.source)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def reminder_status(engine: Engine, reminder_id: int) -> str:
    with Session(engine) as session:
        return session.scalars(
            select(ReminderRow.status).where(ReminderRow.id == reminder_id)
        ).one()


def opted_out(engine: Engine, person_id: int) -> bool:
    with Session(engine) as session:
        return session.scalars(select(PersonRow.opted_out).where(PersonRow.id == person_id)).one()


def cold_courses(engine: Engine) -> list[ColdCourseRow]:
    with Session(engine) as session:
        return list(session.scalars(select(ColdCourseRow).order_by(ColdCourseRow.id)))


def message_row(engine: Engine, message_id: int) -> OutgoingMessageRow:
    with Session(engine) as session:
        return session.scalars(
            select(OutgoingMessageRow).where(OutgoingMessageRow.id == message_id)
        ).one()


def count_replies(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(InboundReplyRow)) or 0


def stored_reply(engine: Engine, provider_id: str) -> InboundReplyRow:
    with Session(engine) as session:
        return session.scalars(
            select(InboundReplyRow).where(InboundReplyRow.provider_id == provider_id)
        ).one()
