"""The fault suite: dosewise's real services as processes on loopback under a steady, bounded
flow of signed replies and due SMS (a fake Twilio), while the database goes away (PostgreSQL
stopped for 30 s or restarted, in a throwaway cluster of the test's own; a SQLite disk full),
a notifier, the scheduler leader or a tracker worker is killed with SIGKILL, or the clock
steps. Each test records its figures (tests/fault_figures.py), printed at the end of the run:
replies lost, duplicates sent, STOPs honoured, log lines per failure, time to recover.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from notifier.console import ConsoleChannel, ConsoleEmailGateway
from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig
from notifier.worker import Worker, WorkerConfig
from store.engine import create_engine
from store.models import OutgoingMessageRow
from store.unit_of_work import SqlUnitOfWork
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioServer
from tests.fault_figures import Figures, record
from tests.fault_rig import Rig, read_logs, wait_until
from tests.notifier_support import add_person
from tests.outages import PostgresCluster, SmallDisk

pytestmark = pytest.mark.slow

REPLIERS = ["+4520100001", "+4520100002", "+4520100003"]
STOPPER = "+4520100009"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL of the suite's own, which its tests stop, restart and start again."""
    server = PostgresCluster()
    yield server
    server.destroy()


@dataclass
class Backend:
    kind: str
    url: str
    engine: Engine
    away: Callable[[], None]
    back: Callable[[], None]


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[Backend]:
    """A fresh migrated database and how to take it away: PostgreSQL stopped (its whole
    cluster), or SQLite's disk filled to the last byte."""
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("cluster")
        if not cluster.running():
            cluster.start()
        url = cluster.new_database(f"faults_{tmp_path.name[-20:].lower()}_{time.time_ns()}")
        engine = create_engine(url)
        try:
            yield Backend("postgresql", url, engine, cluster.stop, cluster.start)
        finally:
            engine.dispose()
            if not cluster.running():
                cluster.start()
        return
    disk = SmallDisk(megabytes=32)
    try:
        path = disk.path / "dosewise.db"
        path.write_bytes(sqlite_template.read_bytes())
        url = f"sqlite:///{path}"
        engine = create_engine(url)
        try:
            yield Backend("sqlite", url, engine, lambda: disk.fill(path), disk.free)
        finally:
            engine.dispose()
    finally:
        disk.free()
        disk.unmount()


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(note_arrivals=True, latency_s=0.02) as server:
        yield server


@pytest.fixture
def rig(backend: Backend, twilio: FakeTwilioServer, tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(backend.url, backend.engine, tmp_path, twilio)
    try:
        yield rig
    finally:
        rig.stop_all()


# -- the database away under load ------------------------------------------------------------


def test_the_database_away_under_load_loses_no_reply_sends_nothing_twice_and_honours_stop(
    backend: Backend, rig: Rig
) -> None:
    """PostgreSQL stopped for 30 s (SQLite: its disk full for 10 s) while replies come in at
    4/s and SMS fall due at 3/s; a person texts STOP 5 s into the outage and is sent nothing
    after it, end to end through the tracker's spool, its replay and the notifier."""
    outage_s = 30.0 if backend.kind == "postgresql" else 10.0
    people = [rig.enrol(phone) for phone in REPLIERS]
    stopper = rig.enrol(STOPPER)
    start = datetime.now(UTC) + timedelta(seconds=3)
    span = int(outage_s) + 30
    for person, phone in zip(people[:2], REPLIERS[:2], strict=True):
        rig.due_messages(person, phone, start, timedelta(seconds=1), span, f"flow {phone}")
    rig.due_messages(stopper, STOPPER, start, timedelta(seconds=1), span, "to the stopper")
    rig.start_tracker(workers=2)
    rig.start_notifier()
    scheduler = rig.start("scheduler", "scheduler")
    wait_until(lambda: "scheduler: leading" in scheduler.log.read_text(), 60, "the scheduler")
    with rig.steady_replies(REPLIERS, per_second=4):
        wait_until(lambda: len(rig.twilio.messages) >= 6, 30, "sending under way")
        went_away = datetime.now(UTC)
        backend.away()
        time.sleep(5)
        stop = rig.reply(STOPPER, "STOP")
        assert stop.status == 200
        time.sleep(outage_s - 5)
        backend.back()
        # recovered: every reply answered so far is in the database, and SMS go out again
        answered = [r for r in rig.replies if r.status == 200]
        replies_in = wait_until(
            lambda: {r.sid for r in answered} <= rig.stored_sids(), 30, "kept replies stored"
        )
        sent_before = len(rig.twilio.messages)
        sends_again = wait_until(
            lambda: len(rig.twilio.messages) > sent_before, 30, "sending again"
        )
        recovered = max(replies_in, sends_again)
        time.sleep(3)
    due_by_now = datetime.now(UTC)
    wait_until(lambda: _settled_before(rig, due_by_now), 60, "every due message settled")
    # every service lived through it
    assert [service.process.poll() for service in rig.services] == [None, None, None]
    rig.stop_all()

    after_stop = [at for at in rig.arrivals_to(STOPPER) if at > stop.sent_at]
    logs = read_logs(rig.services, since=went_away)
    figures = Figures(
        f"{backend.kind}: database away {outage_s:.0f} s under load",
        replies_lost=rig.replies_lost(),
        duplicates_sent=rig.duplicates_sent(),
        stops_honoured=f"{int(not after_stop and rig.opted_out(stopper))}/1",
        lines_per_failure=logs.lines_per_failure,
        failures_logged=logs.failures,
        recovered_s=recovered,
        notes=[f"{len(rig.replies)} replies, {len(rig.twilio.messages)} SMS"],
    )
    record(figures)
    assert rig.unanswered() == []  # every webhook answered 200, none 503
    assert figures.replies_lost == 0
    assert figures.duplicates_sent == 0
    assert after_stop == []
    assert rig.opted_out(stopper)
    assert logs.failures > 0 and logs.continuations == 0
    assert recovered < 10, recovered
    # what the database kept: the stopper's SMS due after the STOP were cancelled, not sent
    assert rig.statuses().get("cancelled", 0) > 0


def _settled_before(rig: Rig, moment: datetime) -> bool:
    with rig.engine.connect() as connection:
        waiting = connection.scalars(
            select(OutgoingMessageRow.id).where(
                OutgoingMessageRow.status.in_(("due", "sending")),
                OutgoingMessageRow.due_at <= moment,
            )
        ).all()
    return not waiting


def test_postgresql_restarted_under_load_loses_nothing_and_health_stays_true(
    cluster: PostgresCluster, twilio: FakeTwilioServer, tmp_path: Path
) -> None:
    if not cluster.running():
        cluster.start()
    url = cluster.new_database(f"restart_{time.time_ns()}")
    engine = create_engine(url)
    rig = Rig(url, engine, tmp_path, twilio)
    try:
        people = [rig.enrol(phone) for phone in REPLIERS]
        start = datetime.now(UTC) + timedelta(seconds=2)
        for person, phone in zip(people, REPLIERS, strict=True):
            rig.due_messages(person, phone, start, timedelta(seconds=1), 20, f"flow {phone}")
        rig.start_tracker(workers=2)
        rig.start_notifier()
        with rig.steady_replies(REPLIERS, per_second=5):
            wait_until(lambda: len(rig.twilio.messages) >= 3, 30, "sending under way")
            went_away = datetime.now(UTC)
            cluster.restart()
            back_at = time.monotonic()
            # the first probe after the restart: the pooled connections are dead, the
            # database is fine, and the health check says so
            first = [rig.health() for _ in range(4)]
            answered = [r for r in rig.replies if r.status == 200]
            wait_until(lambda: {r.sid for r in answered} <= rig.stored_sids(), 30, "replies stored")
            recovered = time.monotonic() - back_at
            time.sleep(2)
        due_by_now = datetime.now(UTC)
        wait_until(lambda: _settled_before(rig, due_by_now), 60, "every due message settled")
        rig.stop_all()
        logs = read_logs(rig.services, since=went_away)
        figures = Figures(
            "postgresql: restarted under load",
            replies_lost=rig.replies_lost(),
            duplicates_sent=rig.duplicates_sent(),
            lines_per_failure=logs.lines_per_failure,
            failures_logged=logs.failures,
            recovered_s=recovered,
            notes=[f"health after restart {first}"],
        )
        record(figures)
        assert first == [200] * 4
        assert rig.unanswered() == []
        assert figures.replies_lost == 0
        assert figures.duplicates_sent == 0
        assert logs.continuations == 0
    finally:
        rig.stop_all()
        engine.dispose()


# -- kill -9 -------------------------------------------------------------------------------------


def test_kill_9_of_a_notifier_another_sends_its_claims_within_10_s_and_none_twice(
    backend: Backend, rig: Rig
) -> None:
    """Two notifiers share the work; one is killed mid-run with its claims queued and in
    flight. The other (its sweeper asking Twilio first) sends what the dead one had not."""
    count = 200
    person = rig.enrol(REPLIERS[0])
    rig.twilio.latency_s = 0.05  # sends under way when the kill lands
    victim = rig.start_notifier("--batch-size", "40", "--concurrency", "10")
    rig.start_notifier("--batch-size", "40", "--concurrency", "10")
    rig.due_messages(
        person,
        REPLIERS[0],
        datetime.now(UTC) - timedelta(seconds=1),
        timedelta(0),
        count,
        "k",
        numbers_of_their_own=True,
    )
    wait_until(lambda: len(rig.twilio.messages) >= 40, 60, "sending under way")
    victim.kill()
    killed_at = time.monotonic()
    victim_id = f"{os.uname().nodename}:{victim.process.pid}"
    with rig.engine.connect() as connection:
        held = set(
            connection.scalars(
                select(OutgoingMessageRow.id).where(
                    OutgoingMessageRow.status == "sending",
                    OutgoingMessageRow.claimed_by == victim_id,
                )
            )
        )

    def held_sent() -> bool:
        with rig.engine.connect() as connection:
            statuses = connection.scalars(
                select(OutgoingMessageRow.status).where(OutgoingMessageRow.id.in_(held))
            ).all()
        return all(status == "sent" for status in statuses)

    wait_until(held_sent, 30, "the dead notifier's claims sent")
    recovered = time.monotonic() - killed_at
    wait_until(lambda: rig.statuses() == {"sent": count}, 60, "everything sent")
    rig.stop_all()
    figures = Figures(
        f"{backend.kind}: kill -9 of a notifier",
        duplicates_sent=rig.duplicates_sent(),
        recovered_s=recovered,
        notes=[f"{len(held)} claims held at the kill"],
    )
    record(figures)
    assert len({m.body for m in rig.twilio.messages}) == count  # none lost
    assert figures.duplicates_sent == 0
    assert held, "the kill landed while the notifier held nothing"
    assert recovered < 10, recovered


def test_kill_9_of_the_scheduler_leader_the_standby_leads_within_10_s(
    backend: Backend, rig: Rig
) -> None:
    schedulers = [rig.start("scheduler", "scheduler") for _ in range(2)]
    wait_until(
        lambda: (
            sum("scheduler: leading" in s.log.read_text() for s in schedulers) == 1
            and sum("standing by" in s.log.read_text() for s in schedulers) == 1
        ),
        60,
        "a leader and a standby",
    )
    first, second = sorted(schedulers, key=lambda s: "standing by" in s.log.read_text())
    first.kill()
    killed_at = time.monotonic()
    wait_until(lambda: "scheduler: leading" in second.log.read_text(), 30, "the takeover")
    recovered = time.monotonic() - killed_at
    rig.stop_all()
    logs = read_logs([second])
    record(
        Figures(
            f"{backend.kind}: kill -9 of the scheduler leader",
            lines_per_failure=logs.lines_per_failure,
            failures_logged=logs.failures,
            recovered_s=recovered,
        )
    )
    assert logs.continuations == 0
    assert recovered < 10, recovered


def test_kill_9_of_a_tracker_worker_loses_none_of_the_replies_it_kept(
    backend: Backend, rig: Rig
) -> None:
    for phone in REPLIERS:
        rig.enrol(phone)
    tracker = rig.start_tracker(workers=2)
    backend.away()
    kept = [rig.reply(REPLIERS[n % 3], "TAKEN") for n in range(20)]
    assert [reply.status for reply in kept] == [200] * 20
    workers = rig.tracker_workers(tracker)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # with what it kept, not yet replayed
    wait_until(
        lambda: (
            len(rig.tracker_workers(tracker)) == 2
            and workers[0] not in rig.tracker_workers(tracker)
        ),
        30,
        "the worker replaced",
    )
    backend.back()
    back_at = time.monotonic()
    wait_until(lambda: {r.sid for r in kept} <= rig.stored_sids(), 30, "every kept reply stored")
    recovered = time.monotonic() - back_at
    rig.stop_all()
    figures = Figures(
        f"{backend.kind}: kill -9 of a tracker worker, database away",
        replies_lost=rig.replies_lost(),
        recovered_s=recovered,
    )
    record(figures)
    assert "of a worker that ended; replaying them" in tracker.log.read_text()  # adopted
    assert figures.replies_lost == 0
    assert recovered < 10, recovered


# -- the clock steps -----------------------------------------------------------------------------


def test_a_notifier_whose_clock_steps_forward_and_back_sends_each_message_once(
    engine: Engine, unit_of_work: Callable[[], SqlUnitOfWork], twilio: FakeTwilioServer
) -> None:
    """The wall clock jumps an hour ahead mid-run (every lease looks run out), then a minute
    back: held messages are left to the sweeper, which asks Twilio before anything is sent
    again; none goes twice, none is lost (one put off goes once the clock gets there)."""
    count = 60
    now = datetime.now(UTC)
    person = add_person(engine, now)
    # windows longer than the steps: none expires because the clock jumped past it
    Rig("", engine, Path("."), twilio).due_messages(
        person,
        "+4520123456",
        now - timedelta(seconds=1),
        timedelta(0),
        count,
        "clock",
        window=timedelta(days=1),
    )
    twilio.latency_s = 0.05
    offset = timedelta(0)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    async def scenario() -> None:
        nonlocal offset
        sms = AsyncTwilioSmsGateway(
            TwilioConfig(
                DEFAULT_ACCOUNT_SID,
                DEFAULT_AUTH_TOKEN,
                from_number="+15005550006",
                api_base_url=twilio.base_url,
            )
        )
        config = WorkerConfig(
            worker_id="clock",
            batch_size=10,
            concurrency=4,
            lease=timedelta(seconds=2),
            idle_sleep_s=0.05,
            sweep_every_s=0.2,
        )
        email = ConsoleEmailGateway(ConsoleChannel(stream=io.StringIO()))
        worker = Worker(unit_of_work, sms, email, config, random.Random(9))
        stop = asyncio.Event()
        loop = asyncio.create_task(worker.run(clock, stop))
        started = time.monotonic()

        async def until(done: Callable[[], bool]) -> None:
            while not done() and time.monotonic() - started < 60:
                await asyncio.sleep(0.02)

        try:
            await until(lambda: len(twilio.messages) >= count // 3)
            offset = timedelta(hours=1)  # every lease looks run out
            await until(lambda: len(twilio.messages) >= 2 * count // 3)
            offset = timedelta(minutes=59)  # a minute back
            await asyncio.sleep(2)
            # what was put off to a time the clock has left behind goes once it gets there
            offset = timedelta(minutes=61)
            await until(lambda: not _open(engine))
        finally:
            stop.set()
            await loop
            await sms.aclose()

    asyncio.run(scenario())
    bodies = [message.body for message in twilio.messages]
    record(
        Figures(
            f"{engine.dialect.name}: notifier clock +1 h, then -1 min",
            duplicates_sent=len(bodies) - len(set(bodies)),
            notes=[f"{len(set(bodies))}/{count} sent"],
        )
    )
    assert sorted(set(bodies)) == sorted(f"dosewise clock #{i}" for i in range(count))
    assert len(bodies) == count
    assert not _open(engine)


def _open(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.scalars(
                select(OutgoingMessageRow.id).where(
                    OutgoingMessageRow.status.in_(("due", "sending"))
                )
            ).first()
        )
