"""While the database is away every service logs each failed attempt in one line (what failed
and the error's first line, the traceback only at DEBUG), waits ever longer between attempts
up to a cap, with jitter, and says once when the database answers again. The notifier then
waits a moment more before it claims, for the tracker to replay the STOPs it kept."""

from __future__ import annotations

import asyncio
import io
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from notifier.console import ConsoleChannel, ConsoleEmailGateway, ConsoleSmsGateway
from notifier.worker import Worker, WorkerConfig
from scheduler.service import JobBackoff, SchedulerService, logged_job
from services.backoff import Backoff, Outage
from services.scheduling import SchedulerConfig
from store.coordination import coordinator_for
from store.engine import create_engine, session_factory
from store.errors import DatabaseUnavailable
from store.health import SqlDatabaseProbe
from store.unit_of_work import SqlUnitOfWork
from tests.notifier_support import add_message, add_person, message
from tests.outages import (
    Switchable,
    allow_connections,
    refuse_connections,
    switchable,
    wait_until,
)

__all__ = ["switchable"]

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _failure_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if record.levelno >= logging.WARNING]


def _assert_one_line_each(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        assert "\n" not in text, text
        assert record.exc_info is None, text  # the traceback only at DEBUG
        assert "Traceback" not in text


# -- the backoff and the lines, as such ----------------------------------------------------------


def test_the_wait_doubles_to_its_cap_and_is_jittered_below_each_ceiling() -> None:
    backoff = Backoff(first_s=0.5, cap_s=5.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    rng = random.Random(1)
    waits = [backoff.delay(4, rng) for _ in range(200)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 100  # spread, not one instant
    assert backoff.ceiling(10_000) == 5.0


def test_a_failure_is_one_warning_and_its_traceback_is_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage(logging.getLogger("dosewise.test"), "notifier n1", Backoff(0.5, 5.0))
    try:
        raise DatabaseUnavailable("database x: connection refused\n[SQL: SELECT ... +4520123456]")
    except DatabaseUnavailable as error:
        with caplog.at_level(logging.DEBUG, logger="dosewise.test"):
            wait = outage.failed("claiming due messages", error, NOW)
    warning, debug = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "notifier n1: claiming due messages failed: DatabaseUnavailable: database x: "
        f"connection refused; trying again in {wait:.1f} s"
    )
    assert "+4520123456" not in warning.getMessage()
    assert (debug.levelno, debug.exc_info is not None) == (logging.DEBUG, True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dosewise.test"):
        outage.recovered(NOW + timedelta(seconds=31))
        outage.recovered(NOW + timedelta(seconds=32))  # nothing was failing: nothing said
    [back] = caplog.records
    assert back.getMessage() == (
        "notifier n1: the database answers again after 31.0 s and 1 failed attempt"
    )


def test_a_job_that_fails_backs_off_and_says_once_when_it_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    results = iter([DatabaseUnavailable("database x: gone")] * 5 + [None])

    def job() -> None:
        failure = next(results)
        if failure is not None:
            raise failure

    backoff = JobBackoff(
        Outage(logging.getLogger("scheduler.service"), "scheduler", Backoff(1.0, 4.0)),
        lambda: NOW,
        waits.append,
    )
    run = logged_job("tick", job, lambda: None, backoff)
    with caplog.at_level(logging.INFO, logger="scheduler.service"):
        for _ in range(6):
            run()
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True)), waits
    failures = _failure_lines(caplog.records)
    assert len(failures) == 5
    _assert_one_line_each(failures)
    assert [r.getMessage().split(";")[0] for r in failures] == [
        "scheduler: tick failed: DatabaseUnavailable: database x: gone"
    ] * 5
    assert caplog.records[-1].getMessage().startswith("scheduler: the database answers again")


# -- the services, with the database really away -------------------------------------------------


def _uow_factory(database: Switchable) -> Callable[[], SqlUnitOfWork]:
    sessions = session_factory(database.engine)
    return lambda: SqlUnitOfWork(sessions)


def test_the_notifier_logs_each_failed_attempt_once_backs_off_and_waits_before_claiming(
    switchable: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    person = add_person(switchable.engine, now)
    config = WorkerConfig(
        worker_id="n1",
        idle_sleep_s=0.05,
        sweep_every_s=0.2,
        backoff=Backoff(first_s=0.5, cap_s=2.0),
        resume_after_outage_s=1.0,
    )
    console = io.StringIO()
    worker = Worker(
        _uow_factory(switchable),
        ConsoleSmsGateway(ConsoleChannel(stream=console)),
        ConsoleEmailGateway(ConsoleChannel(stream=console)),
        config,
        random.Random(2),
        probe=SqlDatabaseProbe(switchable.engine),
    )
    outage_s = 6.0
    marks: dict[str, float] = {}

    def clock() -> datetime:
        return datetime.now(UTC)

    # due while the database is away: claiming it needs a write, on either database
    message_id = add_message(switchable.engine, person, now + timedelta(seconds=1))

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(worker.run(clock, stop))
        await asyncio.sleep(0.3)
        switchable.away()
        await asyncio.sleep(outage_s)
        switchable.back()
        marks["back"] = time.monotonic()
        while message(switchable.engine, message_id).status != "sent":
            await asyncio.sleep(0.05)
        marks["sent"] = time.monotonic()
        stop.set()
        await loop

    with caplog.at_level(logging.INFO, logger="dosewise.notifier"):
        asyncio.run(scenario())
    failures = _failure_lines([r for r in caplog.records if r.name == "dosewise.notifier"])
    _assert_one_line_each(failures)
    assert all(" failed: " in r.getMessage() for r in failures)
    # 0.5, 1, 2, 2, ... s apart at most (jittered down to half): a handful, not one a second
    assert 3 <= len(failures) <= 12, [r.getMessage() for r in failures]
    [back] = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert back.levelno == logging.INFO
    # no claim until the database has answered for resume_after_outage_s
    assert marks["sent"] - marks["back"] >= 1.0


def test_the_scheduler_logs_each_failed_attempt_once_and_leads_again_after(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refusing connections: the leader loses its lock and asks again, one line a
    time. (A full SQLite disk fails only the jobs that have something to write: the fault
    suite's SQLite run, with people and reminders, counts those.)"""
    engine = create_engine(postgres_url)
    switchable = Switchable(
        "postgresql",
        postgres_url,
        engine,
        lambda: refuse_connections(postgres_url),
        lambda: allow_connections(postgres_url),
    )
    service = SchedulerService(
        _uow_factory(switchable),
        coordinator_for(switchable.url),
        SchedulerConfig(public_url="https://dosewise.example"),
        materialise_every=timedelta(seconds=1),
        tick_every=timedelta(milliseconds=200),
    )
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,))
    with caplog.at_level(logging.INFO):
        runner.start()
        try:
            wait_until(lambda: "scheduler: leading" in caplog.text, 15, "leading")
            switchable.away()
            time.sleep(5)
            during = [
                r
                for r in _failure_lines(caplog.records)
                if r.name in ("scheduler.service", "store.coordination")
            ]
            switchable.back()
            caplog.clear()
            # the leader lock taken again, and the jobs run
            wait_until(lambda: "materialised" in caplog.text, 20, "a job done again")
        finally:
            stop.set()
            runner.join(15)
            allow_connections(postgres_url)
            engine.dispose()
    _assert_one_line_each(during)
    # a line per failed attempt, attempts backing off: a few in 5 s, not one per tick (25)
    assert 1 <= len(during) <= 12, [r.getMessage() for r in during]
