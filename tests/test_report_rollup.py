"""The rollup-backed report equals the direct aggregation, whatever changes and whenever the
rollup is refreshed: random status changes, replies through the tracker's use case, delivery
receipts, e-mail fallbacks, opt-outs and late reminders on old days, on both databases."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from scheduler.service import SchedulerService
from services.replies import InboundSms, receive_sms
from services.scheduling import SchedulerConfig
from store.coordination import coordinator_for
from store.models import (
    OptOutRow,
    OutgoingMessageRow,
    ReminderRow,
    ReportDayRow,
    ReportDirtyDayRow,
)
from store.report_rollup import SqlReportRollup
from store.reports import SqlAdherenceQueries
from store.unit_of_work import SqlUnitOfWork
from tests.report_seed import ANA, ANA_PHONE, BO, BO_PHONE, END, NOW, START, seed

STATUSES = ("planned", "queued", "sent", "confirmed", "skipped", "missed", "cancelled", "expired")
MESSAGE_STATUSES = ("due", "sending", "sent", "delivered", "failed", "expired", "cancelled")
WINDOWS = (
    (START, END),
    (START + timedelta(days=2), END - timedelta(days=3)),
    (START - timedelta(days=1), END + timedelta(days=1)),
    (END, END),
    (START - timedelta(days=16), END + timedelta(days=15)),  # full weeks, several words
)


def _report(queries: SqlAdherenceQueries, window: tuple[date, date]) -> dict[str, Any]:
    return queries.report(window[0], window[1], NOW).as_dict()


def _assert_same(engine: Engine, step: str) -> None:
    rolled, direct = SqlAdherenceQueries(engine), SqlAdherenceQueries(engine, rollup=False)
    for window in WINDOWS:
        assert _report(rolled, window) == _report(direct, window), (step, window)


class _Changes:
    """Random changes as the scheduler, notifier and tracker make them (and a few they do
    not make today, such as a reminder materialised late on an old day)."""

    def __init__(self, engine: Engine, unit_of_work: Callable[[], SqlUnitOfWork], seed_: int):
        self.engine, self.unit_of_work = engine, unit_of_work
        self.random = random.Random(seed_)
        self.replies = 0

    def any(self) -> str:
        change = self.random.choice(
            [
                self.reminder_status,
                self.reminder_status,
                self.message_status,
                self.email_fallback,
                self.opt_out,
                self.reply,
                self.late_reminder,
            ]
        )
        return change()

    def _ids(self, table: Any) -> list[int]:
        with self.engine.connect() as connection:
            return list(connection.scalars(select(table.id).order_by(table.id)))

    def reminder_status(self) -> str:
        reminder = self.random.choice(self._ids(ReminderRow))
        status = self.random.choice(STATUSES)
        with self.engine.begin() as connection:
            due = connection.scalar(select(ReminderRow.due_at).where(ReminderRow.id == reminder))
            assert due is not None
            taken = due + timedelta(minutes=self.random.choice((0, 29, 31, 90, 200)))
            connection.execute(
                update(ReminderRow)
                .where(ReminderRow.id == reminder)
                .values(status=status, confirmed_at=taken if status == "confirmed" else None)
            )
        return f"reminder {reminder} {status}"

    def message_status(self) -> str:
        message = self.random.choice(self._ids(OutgoingMessageRow))
        status = self.random.choice(MESSAGE_STATUSES)
        with self.engine.begin() as connection:
            connection.execute(
                update(OutgoingMessageRow)
                .where(OutgoingMessageRow.id == message)
                .values(status=status)
            )
        return f"message {message} {status}"

    def email_fallback(self) -> str:
        reminder = self.random.choice(self._ids(ReminderRow))
        status = self.random.choice(("due", "sent", "delivered", "failed"))
        new_id = max(self._ids(OutgoingMessageRow)) + 1
        with self.engine.begin() as connection:
            row = connection.execute(
                select(ReminderRow.person_id, ReminderRow.due_at).where(ReminderRow.id == reminder)
            ).one()
            taken = connection.scalar(
                select(func.count())
                .select_from(OutgoingMessageRow)
                .where(OutgoingMessageRow.reminder_id == reminder)
                .where(OutgoingMessageRow.purpose == "initial-email")
            )
            if taken:
                return "fallback already there"
            connection.execute(
                insert(OutgoingMessageRow).values(
                    id=new_id,  # the seed wrote its own ids: PostgreSQL's sequence is at 1
                    reminder_id=reminder,
                    person_id=row.person_id,
                    channel="email",
                    recipient="ana@example.org",
                    body="reminder",
                    purpose="initial-email",
                    status=status,
                    due_at=row.due_at,
                    next_attempt_at=row.due_at,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        return f"fallback for {reminder} {status}"

    def opt_out(self) -> str:
        person = self.random.choice((ANA, BO))
        first = START + timedelta(
            days=self.random.randrange(-1, 10), hours=self.random.randrange(24)
        )
        out = NOW.replace(year=first.year, month=first.month, day=first.day)
        back = (
            None
            if self.random.random() < 0.3
            else out + timedelta(hours=self.random.randrange(1, 60))
        )
        with self.engine.begin() as connection:
            connection.execute(
                insert(OptOutRow).values(
                    person_id=person, opted_out_at=out, opted_in_at=back, source="sms"
                )
            )
        return f"opt-out {person} {out} .. {back}"

    def reply(self) -> str:
        self.replies += 1
        phone = self.random.choice((ANA_PHONE, BO_PHONE))
        body = self.random.choice(("TAKEN", "SKIP", "YES", "2"))
        at = NOW - timedelta(hours=self.random.randrange(0, 24 * 10))
        answer = receive_sms(
            self.unit_of_work(), InboundSms(f"SM{self.replies:032d}", phone, body), at
        )
        return f"reply {body} from {phone} at {at}: {answer.kind}"

    def late_reminder(self) -> str:
        day = START + timedelta(days=self.random.randrange(10))
        due = NOW.replace(year=day.year, month=day.month, day=day.day, hour=10)
        status = self.random.choice(("confirmed", "missed", "sent"))
        new_id = max(self._ids(ReminderRow)) + 1
        with self.engine.begin() as connection:
            connection.execute(
                insert(ReminderRow).values(
                    id=new_id,
                    person_id=ANA,
                    regimen_id=1,
                    slot_key=f"{day.isoformat()}#late-{self.random.randrange(10**6)}",
                    kind="dose",
                    items=[{"supplement": "iron", "dose": "18 mg", "name": "iron"}],
                    due_at=due,
                    window_closes_at=due + timedelta(hours=2),
                    status=status,
                    confirmed_at=due + timedelta(minutes=10) if status == "confirmed" else None,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        return f"late reminder on {day} {status}"


@pytest.mark.parametrize("seed_", [1, 2, 3])
def test_rollup_equals_direct_through_random_changes(
    engine: Engine, unit_of_work: Callable[[], SqlUnitOfWork], seed_: int
) -> None:
    seed(engine)
    rollup = SqlReportRollup(engine)
    _assert_same(engine, "seeded, nothing rolled up yet")
    assert rollup.refresh_all() > 0
    _assert_same(engine, "rolled up")
    changes = _Changes(engine, unit_of_work, seed_)
    for step in range(30):
        done = changes.any()
        if changes.random.random() < 0.3:
            rollup.refresh(limit=changes.random.randint(1, 4))  # part of the queue only
        _assert_same(engine, f"step {step}: {done}")
    rollup.refresh_all()
    _assert_same(engine, "rolled up again")
    changes.any()
    assert rollup.rebuild_all() > 0
    _assert_same(engine, "rebuilt with full scans")
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ReportDirtyDayRow)) == 0
        assert connection.scalar(select(func.count()).select_from(ReportDayRow)) > 0


def test_changes_queue_their_days_and_refresh_empties_the_queue(engine: Engine) -> None:
    seed(engine)
    rollup = SqlReportRollup(engine)
    rollup.refresh_all()
    with engine.begin() as connection:
        # a change the report cannot see is not queued (the measures do not read updated_at)
        connection.execute(update(ReminderRow).values(updated_at=NOW + timedelta(days=1)))
        assert connection.scalar(select(func.count()).select_from(ReportDirtyDayRow)) == 0
        # a delivery receipt three days late is
        connection.execute(
            update(OutgoingMessageRow)
            .where(OutgoingMessageRow.status == "failed")
            .values(status="delivered")
        )
        queued = connection.execute(select(ReportDirtyDayRow.person_id, ReportDirtyDayRow.day))
        assert {tuple(row) for row in queued} == {(ANA, "2026-11-06")}
    before = SqlAdherenceQueries(engine).report(START, END, NOW)
    assert before.deliveries.failed == 0
    assert rollup.refresh() == 1
    assert rollup.refresh() == 0
    after = SqlAdherenceQueries(engine).report(START, END, NOW)
    assert after.as_dict() == before.as_dict()


def test_a_queued_day_moves_the_streak(engine: Engine) -> None:
    seed(engine)
    SqlReportRollup(engine).refresh_all()
    with engine.begin() as connection:
        # Ana's skipped magnesium on day 5, confirmed after all: days 1 to 5 all taken
        magnesium = connection.scalar(
            select(ReminderRow.id)
            .where(ReminderRow.slot_key == "2026-11-05#magnesium")
            .where(ReminderRow.person_id == ANA)
        )
        connection.execute(
            update(ReminderRow)
            .where(ReminderRow.id == magnesium)
            .values(status="confirmed", confirmed_at=NOW - timedelta(days=6))
        )
    _assert_same(engine, "day 5 confirmed, not refreshed")
    report = SqlAdherenceQueries(engine).report(START, END, NOW)
    ana = next(person for person in report.people if person.id == ANA)
    assert (ana.streaks.current, ana.streaks.longest) == (2, 5)


def test_refresh_rebuilds_iron_timing_per_day(engine: Engine) -> None:
    seed(engine)
    SqlReportRollup(engine).refresh_all()
    with engine.connect() as connection:
        rows = connection.execute(
            select(ReportDayRow.day, ReportDayRow.iron_taken, ReportDayRow.iron_broken)
            .where(ReportDayRow.person_id == ANA)
            .where(ReportDayRow.iron_taken > 0)
            .order_by(ReportDayRow.day)
        ).all()
    # Ana's iron on day 8 was taken 2.5 h before the dairy dinner
    assert [(row.day, row.iron_broken) for row in rows if row.iron_broken] == [("2026-11-08", 1)]
    assert sum(row.iron_taken for row in rows) == 9  # day 7 (opted out) is rolled up too
    report = SqlAdherenceQueries(engine).report(START, END, NOW)
    person = next(p for p in report.people if p.id == ANA)
    assert (person.iron_timing.taken, person.iron_timing.gap_kept) == (8, 7)
    assert next(p for p in report.people if p.id == BO).iron_timing.taken == 0


def test_scheduler_job_catches_the_rollup_up(
    engine: Engine, database_url: str, unit_of_work: Callable[[], SqlUnitOfWork]
) -> None:
    seed(engine)
    service = SchedulerService(
        unit_of_work,
        coordinator_for(database_url),
        SchedulerConfig(public_url="http://x"),
        report_rollup=SqlReportRollup(engine),
    )
    try:
        with time_machine.travel(NOW, tick=False):
            assert service.run_due_jobs()
    finally:
        service.close()
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ReportDirtyDayRow)) == 0
        # the seeded 22 person-days, and those of the reminders the job just materialised
        assert connection.scalar(select(func.count()).select_from(ReportDayRow)) > 22
    _assert_same(engine, "after the scheduler's jobs")
