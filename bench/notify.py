"""The notifier on PostgreSQL against a fast local Twilio-compatible server.

1. throughput: 20,000 messages due at once, rate limit off, until all are recorded sent;
2. lateness: messages falling due at 500/s (offered load), from due time to Twilio's answer,
   p50/p99;
3. peak memory (max RSS) of the notifier process (this one; the fake Twilio runs apart).

The database is its own (created, migrated, dropped after); the fake Twilio server runs in a
separate process (`python -m tests.fakes.twilio_server --no-record`) so it does not share
this process's CPU.

    .venv/bin/python bench/notify.py [--count 20000] [--rate 500] [--late-count 5000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
import uvloop
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.ports import SendResult
from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig
from notifier.worker import Worker, WorkerConfig
from store.engine import create_engine, session_factory
from store.migrate import upgrade
from store.models import OutgoingMessageRow, PersonRow
from store.unit_of_work import SqlUnitOfWork
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

BODY = "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Keep dairy away until 14:30. Reply TAKEN"


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    url = make_url(server_url)
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"dosewise_bench_notify_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        database = url.set(database=name).render_as_string(hide_password=False)
        upgrade(database)
        yield database
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def fake_twilio() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.twilio_server", "--port", str(port), "--no-record"],
        cwd=root,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "fake Twilio listening on ..."
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


class TimedGateway:
    """The real async Twilio gateway, noting when each send was answered (for lateness)."""

    def __init__(self, inner: AsyncTwilioSmsGateway) -> None:
        self.inner = inner
        self.answered: dict[str, float] = {}

    async def send(self, to: str, body: str, **options: Any) -> SendResult:
        result = await self.inner.send(to, body, **options)
        self.answered[body] = time.time()
        return result

    async def messages_sent_to(self, to: str, since: datetime) -> Sequence[Any]:
        return await self.inner.messages_sent_to(to, since)


def enqueue(database: str, due: Sequence[datetime], tag: str) -> None:
    engine = create_engine(database)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        person = connection.execute(
            insert(PersonRow)
            .values(
                name="Bench",
                phone=f"+4530{uuid.uuid4().int % 10**6:06d}",
                email=None,
                channel="sms",
                timezone="UTC",
                active=True,
                opted_out=False,
                created_at=now,
                updated_at=now,
            )
            .returning(PersonRow.id)
        ).scalar_one()
        rows = [
            {
                "person_id": person,
                "channel": "sms",
                "recipient": f"+452{index % 10**7:07d}",
                "body": f"{BODY} {tag}{index}",
                "purpose": "initial",
                "status": "due",
                "due_at": at,
                "next_attempt_at": at,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for index, at in enumerate(due)
        ]
        for start in range(0, len(rows), 5000):
            connection.execute(insert(OutgoingMessageRow), rows[start : start + 5000])
    engine.dispose()


def sent(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(select(func.count()).where(OutgoingMessageRow.status == "sent")) or 0
        )


async def run_until(
    database: str, twilio_url: str, expected: int, config: WorkerConfig
) -> tuple[float, TimedGateway]:
    engine = create_engine(database)
    sessions = session_factory(engine)
    gateway = TimedGateway(
        AsyncTwilioSmsGateway(
            TwilioConfig(
                DEFAULT_ACCOUNT_SID,
                DEFAULT_AUTH_TOKEN,
                from_number="+15005550006",
                api_base_url=twilio_url,
            ),
            pool_size=config.concurrency,
        )
    )
    worker = Worker(lambda: SqlUnitOfWork(sessions), gateway, None, config)  # type: ignore[arg-type]
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(lambda: datetime.now(UTC), stop))
    while await asyncio.to_thread(sent, engine) < expected:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await gateway.inner.aclose()
    engine.dispose()
    return elapsed, gateway


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--late-count", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--lanes", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DOSEWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args(argv)
    config = WorkerConfig(
        worker_id="bench",
        status_callback="http://127.0.0.1:8000/twilio/status",
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        lanes=args.lanes,
        idle_sleep_s=0.05,
    )
    with scratch_database(args.postgres) as database, fake_twilio() as twilio_url:
        start = datetime.now(UTC) - timedelta(seconds=1)
        enqueue(database, [start] * args.count, "t")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            elapsed, _ = runner.run(run_until(database, twilio_url, args.count, config))
        print(
            f"throughput: {args.count} messages in {elapsed:.2f} s = "
            f"{args.count / elapsed:,.0f} msg/s (rate limit off, {args.lanes} lanes, "
            f"batch {args.batch_size}, {args.concurrency} in flight)"
        )

        # offered load: one message falling due every 1/rate s, starting 1 s from now
        first = datetime.now(UTC) + timedelta(seconds=1)
        due = [first + timedelta(seconds=i / args.rate) for i in range(args.late_count)]
        enqueue(database, due, "l")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            _, gateway = runner.run(
                run_until(database, twilio_url, args.count + args.late_count, config)
            )
        lateness = sorted(
            gateway.answered[f"{BODY} l{i}"] - at.timestamp() for i, at in enumerate(due)
        )
        p50 = statistics.median(lateness)
        p99 = lateness[int(len(lateness) * 0.99) - 1]
        print(
            f"lateness at {args.rate:.0f} msg/s offered ({args.late_count} messages), due -> "
            f"Twilio answered: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {lateness[-1] * 1000:.0f} ms"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of the notifier process): {peak:.0f} MB")


if __name__ == "__main__":
    main()
