"""Seeding the outbox for notifier tests: people, regimens, reminders and due messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from store.models import (
    EventRow,
    OutgoingMessageRow,
    PersonRow,
    RegimenRow,
    ReminderRow,
)

BODY = "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Reply TAKEN, SKIP or LATER"


def add_person(
    engine: Engine,
    now: datetime,
    phone: str = "+4520123456",
    *,
    email: str | None = None,
    quiet: Sequence[dict[str, str]] = (),
    opted_out: bool = False,
    timezone: str = "Europe/Copenhagen",
) -> int:
    with engine.begin() as connection:
        person_id: int = connection.execute(
            insert(PersonRow)
            .values(
                name="Ana Jensen",
                phone=phone,
                email=email,
                channel="sms",
                timezone=timezone,
                active=True,
                opted_out=opted_out,
                created_at=now,
                updated_at=now,
            )
            .returning(PersonRow.id)
        ).scalar_one()
        connection.execute(
            insert(RegimenRow).values(
                person_id=person_id,
                version=1,
                body={"person": {"name": "Ana Jensen", "phone": phone, "quiet": list(quiet)}},
                created_at=now,
            )
        )
    return person_id


def add_message(
    engine: Engine,
    person_id: int,
    due_at: datetime,
    *,
    recipient: str = "+4520123456",
    body: str = BODY,
    not_after: datetime | None = None,
    purpose: str = "initial",
    channel: str = "sms",
    with_reminder: bool = True,
    slot_key: str = "slot-1",
) -> int:
    """A due message as the scheduler hands it over (its reminder 'queued')."""
    with engine.begin() as connection:
        reminder_id = None
        if with_reminder:
            reminder_id = connection.execute(
                insert(ReminderRow)
                .values(
                    person_id=person_id,
                    slot_key=slot_key,
                    kind="dose",
                    items=[{"supplement": "iron", "dose": "18 mg"}],
                    due_at=due_at,
                    window_closes_at=not_after or due_at + timedelta(hours=2),
                    status="queued",
                    created_at=due_at,
                    updated_at=due_at,
                )
                .returning(ReminderRow.id)
            ).scalar_one()
        message_id: int = connection.execute(
            insert(OutgoingMessageRow)
            .values(
                reminder_id=reminder_id,
                person_id=person_id,
                channel=channel,
                recipient=recipient,
                subject="dosewise: iron + vitamin C",
                body=body,
                purpose=purpose,
                status="due",
                due_at=due_at,
                not_after=not_after,
                attempts=0,
                next_attempt_at=due_at,
                created_at=due_at,
                updated_at=due_at,
            )
            .returning(OutgoingMessageRow.id)
        ).scalar_one()
    return message_id


def messages(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(OutgoingMessageRow).order_by(OutgoingMessageRow.id)).all()
        )


def message(engine: Engine, message_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(OutgoingMessageRow).where(OutgoingMessageRow.id == message_id)
        ).one()


def reminder_status(engine: Engine, reminder_id: int) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                select(ReminderRow.status).where(ReminderRow.id == reminder_id)
            ).scalar_one()
        )


def events(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as connection:
        rows = connection.execute(select(EventRow.type, EventRow.payload).order_by(EventRow.id))
        return [(row.type, row.payload) for row in rows]
