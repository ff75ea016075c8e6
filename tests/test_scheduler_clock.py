"""The scheduler service reads the clock at its outermost loop only: moved with time-machine
across Copenhagen's spring-forward night, its jobs plan and hand off at the right instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from sqlalchemy import select
from sqlalchemy.engine import Engine

from scheduler.service import SchedulerService
from schemas.files import load_regimen
from services.enrolment import enrol_person
from services.scheduling import SchedulerConfig
from store.coordination import coordinator_for
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ana.yaml"


def _iron_reminders(engine: Engine) -> dict[str, tuple[datetime, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ReminderRow.slot_key, ReminderRow.due_at, ReminderRow.status)
        ).all()
    return {key[:10]: (due, status) for key, due, status in rows if "iron" in key}


def test_jobs_follow_the_moved_clock_across_spring_forward(
    database_url: str, engine: Engine, unit_of_work: Callable[[], SqlUnitOfWork]
) -> None:
    enrol_person(unit_of_work(), load_regimen(EXAMPLE), datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    service = SchedulerService(
        unit_of_work, coordinator_for(database_url), SchedulerConfig(public_url="http://x")
    )
    try:
        # Saturday noon UTC: the next 48 h hold Saturday's evening, Sunday (clocks go forward
        # at 02:00) and Monday morning
        with time_machine.travel(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), tick=False):
            assert service.run_due_jobs()
        iron = _iron_reminders(engine)
        # 11:30 in Copenhagen is 10:30 UTC in winter time and 09:30 UTC in summer time
        assert iron["2026-03-29"] == (datetime(2026, 3, 29, 9, 30, tzinfo=UTC), "planned")
        assert iron["2026-03-30"] == (datetime(2026, 3, 30, 9, 30, tzinfo=UTC), "planned")
        assert "2026-03-28" not in iron  # 10:30 UTC on Saturday had passed

        with time_machine.travel(datetime(2026, 3, 29, 9, 30, 5, tzinfo=UTC), tick=False):
            service.run_due_jobs()
        assert _iron_reminders(engine)["2026-03-29"][1] == "queued"
        with engine.connect() as connection:
            bodies = connection.execute(select(OutgoingMessageRow.body)).scalars().all()
        # the wall-clock times in the text are summer time too
        assert bodies == [
            "dosewise 11:30: iron 18 mg + vitamin C 250 mg + selenium 100 mcg. "
            "Keep dairy away until 14:30. Reply TAKEN, SKIP or LATER"
        ]
    finally:
        service.close()
