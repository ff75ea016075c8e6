"""Benchmark of the scheduler on PostgreSQL: 48 h of reminders for 100,000 people, and the
time from an event written by another connection to its effect.

Creates its own database (dosewise_bench_schedule_PID) on the server of DOSEWISE_TEST_POSTGRES_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/test) and drops it afterwards.
Goals: materialising at most 20 s; event-to-effect p99 under 1 s.
    .venv/bin/python bench/schedule.py [--people N] [--events N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from schemas.files import load_regimen
from services.ports import Event
from services.scheduling import SchedulerConfig, materialise
from store.engine import create_engine, session_factory
from store.migrate import upgrade
from store.models import OutgoingMessageRow, PersonRow, RegimenRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get(
    "DOSEWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# the pid keeps two runs (or another bench on the same server) from dropping each other
DATABASE = f"dosewise_bench_schedule_{os.getpid()}"
ZONES = ("Europe/Copenhagen", "Europe/London", "America/New_York", "Asia/Tokyo")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200)
    arguments = parser.parse_args()
    admin = sqlalchemy.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    url = make_url(SERVER).set(database=DATABASE).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
    try:
        upgrade(url)
        run(url, arguments.people, arguments.events)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.dispose()


def run(url: str, people: int, events: int) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    # the real clock: the scheduler process started below reads it, and must find the
    # reminders in its future rather than a day of them overdue
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    enrol_many(engine, people, now)
    print(f"enrolled {people:,} people in {time.perf_counter() - started:.1f} s (setup)")

    for label in ("materialise 48 h", "again (idempotent)"):
        started = time.perf_counter()
        done = materialise(uow(), now, SchedulerConfig())
        took = time.perf_counter() - started
        print(
            f"{label}: {done.reminders:,} reminders for {done.people:,} people in {took:.1f} s"
            f" ({done.reminders / took:,.0f} rows/s; goal 20 s)"
        )
    with engine.connect() as connection:
        stored = connection.execute(select(sqlalchemy.func.count()).select_from(ReminderRow))
        print(f"reminder rows stored: {stored.scalar_one():,}")

    latencies = event_latencies(url, engine, uow, events)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"event -> effect over {len(latencies)} Snoozed events: p50 {p50 * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms (goal p99 < 1000 ms)"
    )
    engine.dispose()


def enrol_many(engine: sqlalchemy.Engine, people: int, now: datetime) -> None:
    """People and regimens in bulk: a few regimen shapes (zones) over many people."""
    base = load_regimen(ROOT / "examples" / "ana.yaml").model_dump(mode="json", by_alias=True)
    with engine.begin() as connection:
        for start in range(0, people, 10_000):
            batch = range(start, min(people, start + 10_000))
            connection.execute(
                insert(PersonRow),
                [
                    {
                        "id": n + 1,
                        "name": f"Person {n}",
                        "phone": f"+4520{100000 + n:06d}",
                        "email": None,
                        "channel": "sms",
                        "timezone": ZONES[n % len(ZONES)],
                        "active": True,
                        "opted_out": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in batch
                ],
            )
            connection.execute(
                insert(RegimenRow),
                [
                    {
                        "person_id": n + 1,
                        "version": 1,
                        "body": {
                            **base,
                            "person": {
                                **base["person"],
                                "name": f"Person {n}",
                                "phone": f"+4520{100000 + n:06d}",
                                "timezone": ZONES[n % len(ZONES)],
                            },
                        },
                        "created_at": now,
                    }
                    for n in batch
                ],
            )


def event_latencies(url: str, engine: sqlalchemy.Engine, uow: object, events: int) -> list[float]:
    """Snoozed events written one at a time; the time until the snooze message exists."""
    with engine.begin() as connection:
        ids = list(
            connection.execute(
                select(ReminderRow.id, ReminderRow.person_id)
                # Copenhagen's people (every fourth): one waking window for every snooze
                .where(
                    ReminderRow.status == "planned",
                    ReminderRow.person_id % len(ZONES) == 1,
                    ReminderRow.due_at > datetime.now(UTC) + timedelta(minutes=10),
                )
                .order_by(ReminderRow.id)
                .limit(events)
            )
        )
        connection.execute(
            update(ReminderRow).where(ReminderRow.id.in_([r.id for r in ids])).values(status="sent")
        )
    log = Path("/tmp/bench_schedule_scheduler.log")
    env = {**os.environ, "DOSEWISE_DATABASE_URL": url}
    dosewise = Path(sys.executable).with_name("dosewise")
    process = subprocess.Popen([str(dosewise), "scheduler"], env=env, stderr=log.open("wb"))
    try:
        # steady state: the leader's first materialisation has finished
        while "materialised" not in log.read_text():
            if process.poll() is not None:
                raise SystemExit(f"the scheduler stopped: {log.read_text()}")
            time.sleep(0.2)
        # noon in Copenhagen: the snooze falls inside the waking window and is enqueued
        asked = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
        latencies = []
        for reminder_id, person_id in ids:
            with uow() as work:  # type: ignore[operator]
                payload = {"reminder_id": reminder_id, "minutes": 30}
                work.events.append(Event("Snoozed", person_id, asked, payload))
                work.commit()
            written = time.perf_counter()
            with engine.connect() as connection:
                query = select(OutgoingMessageRow.id).where(
                    OutgoingMessageRow.reminder_id == reminder_id,
                    OutgoingMessageRow.purpose == "snooze-1",
                )
                while connection.execute(query).first() is None:
                    connection.rollback()
                    if time.perf_counter() - written > 10:
                        raise SystemExit(f"no effect of the event on reminder {reminder_id}")
                    time.sleep(0.002)
            latencies.append(time.perf_counter() - written)
        return latencies
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
