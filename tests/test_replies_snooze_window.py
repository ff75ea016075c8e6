"""LATER promises only the re-send the scheduler will make: quiet hours push it back, the
dose's window bounds it, and a snooze still waiting when the window closes is not sent.
On SQLite and PostgreSQL, through the real tracker and scheduler use cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.enrolment import enrol_person
from services.ports import Event
from services.replies import InboundSms, receive_sms
from services.scheduling import SchedulerConfig, close_windows, consume_events, tick
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.regimens import regimen
from tests.seeding import event_types

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
CONFIG = SchedulerConfig(public_url="https://dosewise.example")
PHONE = "+4520123456"
VITAMIN_D = {"name": "vitamin D", "dose": "1000 IU", "at": "12:49"}
TAKE_OR_SKIP = "Reply TAKEN or SKIP when you can."


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-12-01T{clock}+00:00")


def sent_reminder(
    unit_of_work: UnitOfWorkFactory, engine: Engine, quiet: tuple[str, str] | None
) -> int:
    """Quinn: vitamin D at 12:49 (its window closes at 14:49), sent by the notifier."""
    plan = regimen(
        [VITAMIN_D],
        timezone="UTC",
        waking=("06:00", "23:30"),
        quiet=[quiet] if quiet else None,
    )
    enrol_person(unit_of_work(), plan, at("06:00:00"))
    tick(unit_of_work, at("12:49:00"), CONFIG)
    with engine.begin() as connection:
        reminder_id = connection.execute(
            update(ReminderRow)
            .where(ReminderRow.status == "queued")
            .values(status="sent")
            .returning(ReminderRow.id)
        ).scalar_one()
        connection.execute(update(OutgoingMessageRow).values(status="sent"))
    return int(reminder_id)


def say(unit_of_work: UnitOfWorkFactory, words: str, now: datetime) -> str | None:
    sms = InboundSms(f"SM{now.timestamp():.0f}{len(words)}", PHONE, words)
    return receive_sms(unit_of_work(), sms, now).text


def snoozes(engine: Engine) -> list[tuple[str, str, datetime, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                OutgoingMessageRow.purpose,
                OutgoingMessageRow.status,
                OutgoingMessageRow.due_at,
                OutgoingMessageRow.not_after,
            )
            .where(OutgoingMessageRow.purpose.like("snooze-%"))
            .order_by(OutgoingMessageRow.id)
        )
        return [(purpose, status, due, not_after) for purpose, status, due, not_after in rows]


def test_a_snooze_quiet_hours_push_past_the_window_is_refused_honestly(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    sent_reminder(unit_of_work, engine, ("12:51", "14:57"))
    assert say(unit_of_work, "LATER 10", at("12:50:00")) == (
        "Your quiet hours last until 14:57 and this dose's reminder closes at 14:49: no "
        f"reminder will come again for it. {TAKE_OR_SKIP}"
    )
    assert "Snoozed" not in event_types(engine)
    consume_events(unit_of_work(), at("12:50:01"), CONFIG)
    assert snoozes(engine) == []
    # the dose still takes its answer
    assert say(unit_of_work, "TAKEN", at("12:55:00")) == "Logged at 12:55: vitamin D 1000 IU."


def test_a_snooze_quiet_hours_push_back_says_when_it_will_come(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    sent_reminder(unit_of_work, engine, ("12:51", "13:30"))
    assert say(unit_of_work, "LATER 10", at("12:50:00")) == (
        "OK: your quiet hours last until 13:30, so dosewise will remind you again at 13:30."
    )
    consume_events(unit_of_work(), at("12:50:01"), CONFIG)
    # due at the quiet hours' end, and never after the dose's window
    assert snoozes(engine) == [("snooze-1", "due", at("13:30:00"), at("14:49:00"))]


def test_a_snooze_outside_quiet_hours_goes_when_asked_and_not_after_the_window(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    sent_reminder(unit_of_work, engine, ("20:00", "21:00"))
    assert say(unit_of_work, "LATER 10", at("12:50:00")) == (
        "OK: dosewise will remind you again in 10 minutes."
    )
    consume_events(unit_of_work(), at("12:50:01"), CONFIG)
    # not_after is the window's close (14:49), not the end of the waking day (23:30)
    assert snoozes(engine) == [("snooze-1", "due", at("13:00:00"), at("14:49:00"))]


def test_the_scheduler_drops_a_snooze_that_quiet_hours_push_past_the_window(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    # the Snoozed event as a tracker answering before this fix (or before a regimen change
    # added the quiet hours) wrote it
    reminder_id = sent_reminder(unit_of_work, engine, ("12:51", "14:57"))
    with unit_of_work() as uow:
        uow.events.append(
            Event("Snoozed", 1, at("12:50:00"), {"reminder_id": reminder_id, "minutes": 10})
        )
        uow.commit()
    consume_events(unit_of_work(), at("12:50:01"), CONFIG)
    assert snoozes(engine) == []


def test_a_snooze_still_waiting_when_the_window_closes_is_not_sent(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    reminder_id = sent_reminder(unit_of_work, engine, None)
    assert say(unit_of_work, "LATER 110", at("12:50:00")) == (
        "OK: dosewise will remind you again in 110 minutes."
    )
    consume_events(unit_of_work(), at("12:50:01"), CONFIG)
    # the notifier was down from 14:30: at 14:49 the window closes with the snooze unsent
    assert close_windows(unit_of_work(), at("14:49:00")) == 1
    assert snoozes(engine) == [("snooze-1", "cancelled", at("14:40:00"), at("14:49:00"))]
    with engine.connect() as connection:
        status = connection.scalar(select(ReminderRow.status).where(ReminderRow.id == reminder_id))
    assert status == "missed"


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        # Quinn at 12:50:36 for a reminder due 12:50 whose window closes at 14:50
        (
            "LATER 120",
            "This dose's reminder closes at 14:49, before a reminder in 120 minutes could go: "
            f"no reminder will come again for it. {TAKE_OR_SKIP}",
        ),
        (
            "LATER 0",
            "LATER takes 1 to 720 minutes (LATER 20: in 20 minutes), so nothing was changed.",
        ),
        (
            "later 721",
            "LATER takes 1 to 720 minutes (LATER 20: in 20 minutes), so nothing was changed.",
        ),
        (
            "LATER 99999",
            "LATER takes 1 to 720 minutes (LATER 20: in 20 minutes), so nothing was changed.",
        ),
    ],
)
def test_later_answers_say_what_is_wrong(
    unit_of_work: UnitOfWorkFactory, engine: Engine, words: str, expected: str
) -> None:
    sent_reminder(unit_of_work, engine, None)
    assert say(unit_of_work, words, at("12:49:36")) == expected
    assert "Snoozed" not in event_types(engine)
    assert say(unit_of_work, "Taken 👍", at("12:51:00")) == "Logged at 12:51: vitamin D 1000 IU."
