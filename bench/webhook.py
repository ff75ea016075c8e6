"""Signed inbound SMS replies against the real `dosewise tracker` under uvicorn, on PostgreSQL.

    .venv/bin/python bench/webhook.py [--seconds 10] [--workers N] [--rate 1000]
        [--concurrency 16] [--connections 64] [--people 40000]

Creates its own database on the server of DOSEWISE_BENCH_POSTGRES_URL (default: the test
server), migrates it, enrols `--people` people each with one sent iron reminder that is open
now and yesterday's dose answered (a history, as a tracker in service has), starts `dosewise
tracker [--workers N]` (its own default unless given; configured through the environment, as
in production) and drives it from an asyncio HTTP/1.1 keep-alive client on uvloop with
requests signed beforehand, so the client costs little of the CPU the server shares. Every
request is a distinct signed "TAKEN" from a distinct person: the full effect (reply stored,
confirmation, reminder confirmed, two events, TwiML answer).

Two phases: a closed loop (`--concurrency` requests in flight) for the most replies/s, then an
open loop offering `--rate` replies/s on `--connections` connections, whose latency counts
from each request's scheduled instant. Each prints replies/s, latency percentiles, the load
average and the CPU milliseconds per reply of tracker, database and client (a figure other
load on the machine skews less than replies/s). The goal: >= 1,000 replies/s sustained with
p99 < 50 ms. The database is dropped afterwards.
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
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
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
    # as the notifier would after sending them; in slices, as the report's statement-level
    # trigger (migration 0003) joins each statement's old and new rows
    for first in range(0, len(ids), 1000):
        with engine.begin() as connection:
            connection.execute(
                update(ReminderRow)
                .where(ReminderRow.person_id.in_(ids[first : first + 1000]))
                .values(status="sent")
            )
    with engine.begin() as connection:
        seed_history(connection, now - timedelta(days=1))
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def seed_history(connection: sqlalchemy.Connection, yesterday: datetime) -> None:
    """Yesterday's dose for everyone, answered TAKEN: the reply, its confirmation and the two
    events. A tracker in service meets tables with a history, and the database plans its
    foreign-key checks by their size when a connection first makes them: on empty tables
    those plans scan, and every reply of a run would scan all replies stored before it."""
    at = {"at": yesterday}
    for statement in (
        "INSERT INTO reminders (person_id, slot_key, kind, items, due_at, window_closes_at,"
        " status, confirmed_at, created_at, updated_at)"
        " SELECT r.person_id, 'yesterday', r.kind, r.items, %(at)s, %(at)s + interval '3 hours',"
        " 'confirmed', %(at)s, %(at)s, %(at)s FROM reminders r",
        "INSERT INTO inbound_replies (provider_id, from_number, body, person_id, kind, answer,"
        " received_at) SELECT 'SMhistory' || p.id, p.phone, 'TAKEN', p.id, 'taken', 'Logged.',"
        " %(at)s FROM people p",
        "INSERT INTO confirmations (reminder_id, person_id, outcome, at, source, reply_id)"
        " SELECT r.id, r.person_id, 'taken', %(at)s, 'sms', i.id FROM reminders r"
        " JOIN inbound_replies i ON i.person_id = r.person_id WHERE r.slot_key = 'yesterday'",
        "INSERT INTO events (type, person_id, payload, occurred_at)"
        " SELECT kind, person_id, '{}', %(at)s FROM confirmations,"
        " (VALUES ('ReplyReceived'), ('DoseConfirmed')) AS k (kind) ORDER BY id",
    ):
        connection.exec_driver_sql(statement, at)


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


class Connection:
    """One HTTP/1.1 keep-alive connection to the tracker, opened again when an answer says
    `connection: close` (as Twilio's client would; the tracker's workers close some to even
    out their shares of the connections). The reconnection counts in the latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnections = 0

    async def exchange(self, request: bytes) -> str | None:
        """Send one request and read its answer: None when it is the expected TwiML."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        closing = False
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif line.startswith(b"connection:") and b"close" in line:
                closing = True
        body = await self.reader.readexactly(length)
        if closing:
            self.close()
            self.reconnections += 1
        if head.startswith(b"HTTP/1.1 200") and b"Iron logged" in body:
            return None
        return head.split(b"\r\n", 1)[0].decode() + " " + body[:80].decode()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def closed_loop(
    port: int, queue: list[bytes], deadline: float, latencies: list[float], errors: list[str]
) -> int:
    """One keep-alive connection sending its next request as soon as the last is answered;
    how many times it was opened again."""
    connection = Connection(port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            error = await connection.exchange(request)
            latencies.append(time.perf_counter() - started)
            if error:
                errors.append(error)
    finally:
        connection.close()
    return connection.reconnections


async def open_loop(
    port: int, schedule: list[tuple[float, bytes]], latencies: list[float], errors: list[str]
) -> int:
    """One connection sending each request at its scheduled instant (or as soon as the one
    before is answered); latency counts from the schedule, so a backlog shows in the figure.
    How many times it was opened again."""
    connection = Connection(port)
    try:
        for due, request in schedule:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            error = await connection.exchange(request)
            latencies.append(time.perf_counter() - due)
            if error:
                errors.append(error)
    finally:
        connection.close()
    return connection.reconnections


async def max_throughput(
    port: int, prepared: list[bytes], concurrency: int, seconds: float, meter: CpuMeter
) -> None:
    before, batches = meter.sample(), meter.transactions()
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    reconnections = await asyncio.gather(
        *(closed_loop(port, prepared, deadline, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    report(f"closed loop, {concurrency} connections", latencies, errors, elapsed)
    print(f"  connections opened again (the tracker closed them): {sum(reconnections)}")
    print_cpu(before, meter.sample(), len(latencies))
    print_batches(meter, batches)
    if not prepared:
        print("note: ran out of prepared replies before the time was up; use more --people")


async def fixed_rate(
    port: int,
    prepared: list[bytes],
    rate: float,
    connections: int,
    seconds: float,
    meter: CpuMeter,
) -> tuple[float, float, int]:
    before, batches = meter.sample(), meter.transactions()
    count = min(len(prepared), int(rate * seconds))
    start = time.perf_counter() + 0.2
    schedules: list[list[tuple[float, bytes]]] = [[] for _ in range(connections)]
    for index in range(count):
        schedules[index % connections].append((start + index / rate, prepared.pop()))
    latencies: list[float] = []
    errors: list[str] = []
    reconnections = await asyncio.gather(
        *(open_loop(port, each, latencies, errors) for each in schedules)
    )
    elapsed = time.perf_counter() - start
    figures = report(f"open loop at {rate:.0f}/s offered", latencies, errors, elapsed)
    print(f"  connections opened again (the tracker closed them): {sum(reconnections)}")
    print_cpu(before, meter.sample(), len(latencies))
    print_batches(meter, batches)
    return (*figures, len(errors))


async def drive(
    port: int, prepared: list[bytes], arguments: argparse.Namespace, meter: CpuMeter
) -> bool:
    warmup = prepared[-500:]
    del prepared[-500:]
    await asyncio.gather(
        *(closed_loop(port, warmup, time.perf_counter() + 30, [], []) for _ in range(8))
    )
    await max_throughput(port, prepared, arguments.concurrency, arguments.seconds, meter)
    rate, p99, errors = await fixed_rate(
        port, prepared, arguments.rate, arguments.connections, arguments.seconds, meter
    )
    met = rate >= 0.98 * arguments.rate and arguments.rate >= 1000 and p99 < 50 and not errors
    print(f"goal (>= 1000 replies/s sustained with p99 < 50 ms): {'met' if met else 'NOT met'}")
    return met


def report(
    title: str, latencies: list[float], errors: list[str], elapsed: float
) -> tuple[float, float]:
    """Print one phase's figures; (replies/s, p99 ms)."""
    ordered = sorted(latencies)
    if not ordered:
        print(f"{title}: no replies (no prepared replies left: use more --people)")
        return 0.0, float("inf")

    def percentile(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    rate = len(ordered) / elapsed
    print(f"{title}: {len(ordered)} replies in {elapsed:.1f} s = {rate:.0f} replies/s")
    print(
        f"  latency ms: p50 {percentile(0.50):.1f}  p90 {percentile(0.90):.1f}  "
        f"p99 {percentile(0.99):.1f}  max {ordered[-1] * 1000:.1f}  "
        f"mean {statistics.fmean(ordered) * 1000:.1f}"
    )
    print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"  load average: {load_average()}")
    return rate, percentile(0.99)


def run_client(main: Coroutine[Any, Any, bool]) -> None:
    """The client on uvloop when it is there (uvicorn[standard] brings it): less of the CPU
    the server shares with it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed with uvicorn[standard]
        asyncio.run(main)
        return
    uvloop.run(main)


class CpuMeter:
    """CPU seconds spent by the tracker's processes, the database's backends for the bench
    database and this client: a per-reply cost that other load on the machine does not skew
    the way it skews replies/s."""

    def __init__(self, server_pid: int, admin: sqlalchemy.Engine, database: str, port: int) -> None:
        self.server_pid = server_pid
        self.admin = admin
        self.database = database
        self.port = port

    def transactions(self) -> tuple[float, float]:
        """(inbound SMS, transactions they took) so far, from the tracker's /metrics (every
        worker's, summed)."""
        import httpx

        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics").text
        found = dict.fromkeys(("sum", "count"), 0.0)
        for line in text.splitlines():
            for part in found:
                if line.startswith(f"dosewise_tracker_sms_per_transaction_{part} "):
                    found[part] = float(line.split()[1])
        return found["sum"], found["count"]

    def sample(self) -> dict[str, float]:
        tracker = [self.server_pid, *_children(self.server_pid)]
        with self.admin.connect() as connection:
            backends = connection.exec_driver_sql(
                f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.database}'"
            ).scalars()
            database = [int(pid) for pid in backends]
        client = os.times()
        return {
            "tracker": sum(_cpu_seconds(pid) for pid in tracker),
            "database": sum(_cpu_seconds(pid) for pid in database),
            "client": client.user + client.system,
        }


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_batches(meter: CpuMeter, before: tuple[float, float]) -> None:
    now = meter.transactions()
    replies, transactions = now[0] - before[0], now[1] - before[1]
    if transactions:
        print(f"  replies per transaction (group commit): {replies / transactions:.2f}")


def print_cpu(before: dict[str, float], after: dict[str, float], replies: int) -> None:
    if not replies:
        return
    costs = {name: (after[name] - before[name]) / replies * 1000 for name in before}
    total = sum(costs.values())
    parts = "  ".join(f"{name} {cost:.2f}" for name, cost in costs.items())
    capacity = (os.cpu_count() or 1) / total * 1000 if total else 0
    print(f"  CPU ms per reply: {parts}  total {total:.2f} (= {capacity:.0f}/s on all CPUs)")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (on {os.cpu_count()} CPUs)"


def serve(url: str, port: int, workers: int | None) -> subprocess.Popen[bytes]:
    """The real `dosewise tracker`, configured through the environment as in production."""
    environment = {
        **os.environ,
        "DOSEWISE_DATABASE_URL": url,
        "DOSEWISE_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    # the tracker logs a line per webhook: kept, but not on this terminal
    return subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)


def port_is_free(port: int) -> None:
    """Another server on the port would answer /healthz and every request in our stead."""
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is in use: choose another with --port")


def wait_for(port: int, child: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
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
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=1000, help="open-loop replies/s offered")
    parser.add_argument("--connections", type=int, default=64, help="open-loop connections")
    parser.add_argument("--workers", type=int, help="default: the tracker's own default")
    parser.add_argument("--people", type=int, default=40000)
    parser.add_argument("--port", type=int, default=8765)
    arguments = parser.parse_args()
    port_is_free(arguments.port)
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
        print(f"seeded {arguments.people} people: an open iron reminder each, yesterday's answered")
        child = serve(url, arguments.port, arguments.workers)
        wait_for(arguments.port, child)
        workers = "default" if arguments.workers is None else arguments.workers
        print(f"dosewise tracker, workers: {workers}; load average {load_average()}")
        meter = CpuMeter(child.pid, admin, name, arguments.port)
        run_client(drive(arguments.port, prepared, arguments, meter))
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=30)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
