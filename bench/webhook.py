"""Signed inbound SMS replies against the tracker under uvicorn, on PostgreSQL.

    .venv/bin/python bench/webhook.py [--seconds 15] [--concurrency 16] [--people 30000]

Creates its own database on the server of DOSEWISE_BENCH_POSTGRES_URL (default: the test
server), migrates it, enrols `--people` people each with one sent iron reminder that is open
now, serves the real app (dosewise.cmd_tracker.tracker_app) with uvicorn in a subprocess, and
drives it from a raw asyncio HTTP/1.1 keep-alive client: every request is a distinct signed
"TAKEN" from a distinct person, so each one is the full effect (reply stored, confirmation,
reminder confirmed, two events, TwiML answer). Closed loop: `--concurrency` requests in flight.
Prints replies/s and latency percentiles; the goal is >= 1,000/s with p99 < 50 ms. The
database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.twilio_webhooks import compute_signature
from services.ports import ReminderPlan
from store.engine import create_engine, session_factory
from store.migrate import upgrade
from store.models import PersonRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork

SERVER = os.environ.get(
    "DOSEWISE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
AUTH_TOKEN = "bench-auth-token"
PUBLIC_URL = "http://bench.example"
PATH = "/twilio/sms"
ITEMS = [{"supplement": "iron", "dose": "18 mg"}, {"supplement": "vitamin_c", "dose": "250 mg"}]


def phone(number: int) -> str:
    return f"+4530{number:06d}"


def seed(url: str, people: int, now: datetime) -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        session.add_all(
            PersonRow(
                name=f"Bench {number}",
                phone=phone(number),
                channel="sms",
                timezone="Europe/Copenhagen",
                active=True,
                opted_out=False,
                created_at=now,
                updated_at=now,
            )
            for number in range(people)
        )
        session.commit()
        ids = session.scalars(sqlalchemy.select(PersonRow.id)).all()
    plans = [
        ReminderPlan(
            person_id=person_id,
            slot_key="bench",
            kind="dose",
            due_at=now - timedelta(minutes=5),
            window_closes_at=now + timedelta(hours=3),
            items=ITEMS,
        )
        for person_id in ids
    ]
    with SqlUnitOfWork(session_factory(engine)) as uow:
        uow.reminders.upsert(plans, now)
        uow.commit()
    with engine.begin() as connection:  # as the notifier would after sending them
        connection.execute(update(ReminderRow).values(status="sent"))
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def requests(people: int) -> list[bytes]:
    prepared = []
    for number in range(people):
        form = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "AccountSid": "AC" + "0" * 32,
            "From": phone(number),
            "To": "+4599999999",
            "Body": "TAKEN",
        }
        body = urlencode(form).encode()
        signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + PATH, form)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        prepared.append(head.encode() + body)
    return prepared


async def one_connection(
    port: int, queue: list[bytes], latencies: list[float], deadline: float, errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or b"Iron logged" not in body:
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:80].decode())
    finally:
        writer.close()


async def drive(port: int, prepared: list[bytes], concurrency: int, seconds: float) -> None:
    warmup = prepared[-200:]
    del prepared[-200:]
    await asyncio.gather(
        *(one_connection(port, warmup, [], time.perf_counter() + 30, []) for _ in range(4))
    )
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(one_connection(port, prepared, latencies, deadline, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    report(latencies, errors, elapsed, concurrency, exhausted=not prepared)


def report(
    latencies: list[float], errors: list[str], elapsed: float, concurrency: int, exhausted: bool
) -> None:
    ordered = sorted(latencies)

    def percentile(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    rate = len(ordered) / elapsed
    print(f"replies: {len(ordered)} in {elapsed:.1f} s at concurrency {concurrency}")
    print(f"throughput: {rate:.0f} replies/s")
    print(
        f"latency ms: p50 {percentile(0.50):.1f}  p90 {percentile(0.90):.1f}  "
        f"p99 {percentile(0.99):.1f}  max {ordered[-1] * 1000:.1f}  "
        f"mean {statistics.fmean(ordered) * 1000:.1f}"
    )
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if exhausted:
        print("note: ran out of prepared replies before the time was up; use more --people")
    goal = rate >= 1000 and percentile(0.99) < 50
    print(f"goal (>= 1000 replies/s, p99 < 50 ms): {'met' if goal else 'NOT met'}")


def serve(url: str, port: int) -> None:
    """The child process: the real tracker app under uvicorn."""
    import uvicorn

    from dosewise.cmd_tracker import tracker_app
    from dosewise.settings import Settings

    settings = Settings(database_url=url, public_url=PUBLIC_URL, twilio_auth_token=AUTH_TOKEN)
    engine = create_engine(url)
    sessions = session_factory(engine)
    app = tracker_app(settings, lambda: SqlUnitOfWork(sessions), lambda: datetime.now(UTC))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_for(port: int, child: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(200):
        if child.poll() is not None:
            raise SystemExit("the tracker did not start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the tracker did not answer /healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--people", type=int, default=30000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port)
        return
    server = make_url(SERVER)
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"dosewise_bench_{os.getpid()}"
    url = server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    child: subprocess.Popen[bytes] | None = None
    try:
        upgrade(url)
        now = datetime.now(UTC)
        seed(url, arguments.people, now)
        prepared = requests(arguments.people)
        print(f"seeded {arguments.people} people with an open iron reminder each")
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, "--port", str(arguments.port)]
        )
        wait_for(arguments.port, child)
        asyncio.run(drive(arguments.port, prepared, arguments.concurrency, arguments.seconds))
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=10)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
