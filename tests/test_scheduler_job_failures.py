"""The scheduler's jobs under faults: a stored body that is no regimen at all is refused by
name, and a job's failure is one log line (no traceback carrying SQL and its parameters)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from scheduler.service import logged_job
from services.scheduling import SchedulerConfig, materialise
from store.errors import DatabaseUnavailable, TransactionAborted
from store.models import RegimenRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import enrol
from tests.tracker_client import NOW

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
CONFIG = SchedulerConfig(public_url="https://dosewise.example")


@pytest.mark.parametrize("body", ['"garbage"', "[1, 2]", '{"person": "nobody"}', "null"])
def test_a_stored_body_that_is_no_regimen_is_refused_and_everyone_else_planned(
    unit_of_work: UnitOfWorkFactory, engine: Engine, body: str
) -> None:
    broken = enrol(unit_of_work, "+4520123401", NOW - timedelta(days=1))
    fine = enrol(unit_of_work, "+4520123402", NOW - timedelta(days=1))
    with engine.begin() as connection:
        connection.execute(
            update(RegimenRow).where(RegimenRow.person_id == broken).values(body=body)
        )
    done = materialise(unit_of_work(), NOW, CONFIG)
    assert done.reminders > 0  # the other person's
    assert any(f"person {broken}" in refusal for refusal in done.refusals), done.refusals
    assert not any(f"person {fine}" in refusal for refusal in done.refusals)


def run_logged(job: Callable[[], None], caplog: pytest.LogCaptureFixture) -> list[str]:
    again: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="scheduler.service"):
        logged_job("tick", job, lambda: again.append("soon"))()
    return again


def test_a_job_the_database_cannot_run_is_one_line_without_sql(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down() -> None:
        raise DatabaseUnavailable("database postgresql://db/dosewise: connection refused")

    assert run_logged(down, caplog) == []
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.getMessage() for record in errors] == [
        "tick failed: DatabaseUnavailable: database postgresql://db/dosewise: connection refused"
    ]
    assert errors[0].exc_info is None  # the traceback only at DEBUG


def test_a_job_the_database_aborted_runs_again_soon(caplog: pytest.LogCaptureFixture) -> None:
    def deadlocked() -> None:
        raise TransactionAborted("transaction aborted: deadlock detected\n[SQL: INSERT ...]")

    assert run_logged(deadlocked, caplog) == ["soon"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= 30]
    assert warnings == [
        "tick: TransactionAborted: transaction aborted: deadlock detected; running again soon"
    ]
