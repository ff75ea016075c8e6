"""The event log: each consumer acts on each committed event exactly once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.ports import Event, EventType, RecordedEvent
from store.engine import create_engine, session_factory
from store.events import BARRIER_WAIT_MS
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import PostgresServer

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def append(unit_of_work: UnitOfWorkFactory, *types: EventType) -> None:
    with unit_of_work() as uow:
        for index, kind in enumerate(types):
            uow.events.append(Event(kind, None, NOW + timedelta(seconds=index), {"n": index}))
        uow.commit()


def consume(
    unit_of_work: UnitOfWorkFactory, consumer: str, limit: int = 100
) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    with unit_of_work() as uow:
        uow.events.consume(consumer, seen.append, limit)
        uow.commit()
    return seen


def test_a_consumer_sees_each_event_once_in_order(unit_of_work: UnitOfWorkFactory) -> None:
    append(unit_of_work, "ColdOnset", "Snoozed", "ColdEnded")
    first = consume(unit_of_work, "scheduler", limit=2)
    rest = consume(unit_of_work, "scheduler")
    assert [seen.event.type for seen in first + rest] == ["ColdOnset", "Snoozed", "ColdEnded"]
    assert [seen.event.payload for seen in first + rest] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert first[0].event.occurred_at == NOW
    assert consume(unit_of_work, "scheduler") == []


def test_each_consumer_has_its_own_cursor(unit_of_work: UnitOfWorkFactory) -> None:
    append(unit_of_work, "OptedOut")
    scheduler_first = consume(unit_of_work, "scheduler")
    append(unit_of_work, "OptedIn")
    scheduler_second = consume(unit_of_work, "scheduler")
    notifier = consume(unit_of_work, "notifier")
    assert [seen.event.type for seen in scheduler_first] == ["OptedOut"]
    assert [seen.event.type for seen in scheduler_second] == ["OptedIn"]
    assert [seen.event.type for seen in notifier] == ["OptedOut", "OptedIn"]


def test_an_event_rolled_back_is_never_seen(unit_of_work: UnitOfWorkFactory) -> None:
    with unit_of_work() as uow:
        uow.events.append(Event("DoseConfirmed", None, NOW))
        # leaving without commit rolls back
    append(unit_of_work, "DoseSkipped")
    assert [seen.event.type for seen in consume(unit_of_work, "scheduler")] == ["DoseSkipped"]


def test_a_failing_handler_leaves_the_events_for_the_next_try(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    append(unit_of_work, "ColdOnset", "ColdEnded")

    def fail_on_second(seen: RecordedEvent) -> None:
        if seen.event.type == "ColdEnded":
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError), unit_of_work() as uow:
        uow.events.consume("scheduler", fail_on_second)
        uow.commit()
    again = consume(unit_of_work, "scheduler")
    assert [seen.event.type for seen in again] == ["ColdOnset", "ColdEnded"]


def test_the_handler_acts_in_the_consuming_transaction(unit_of_work: UnitOfWorkFactory) -> None:
    append(unit_of_work, "ReplyReceived")
    with unit_of_work() as uow:
        # the handler's own write commits or rolls back together with the cursor
        uow.events.consume(
            "tracker", lambda seen: uow.events.append(Event("DoseConfirmed", None, NOW))
        )
        uow.commit()
    assert [seen.event.type for seen in consume(unit_of_work, "tracker")] == ["DoseConfirmed"]


def test_two_processes_of_one_consumer_share_the_work(unit_of_work: UnitOfWorkFactory) -> None:
    append(unit_of_work, *(["Snoozed"] * 40))
    handled: list[int] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := consume(unit_of_work, "scheduler", limit=3):
            with lock:
                handled.extend(seen.id for seen in batch)

    workers = [threading.Thread(target=drain) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(handled) == 40
    assert len(set(handled)) == 40


def test_append_many_keeps_its_order_in_one_transaction(unit_of_work: UnitOfWorkFactory) -> None:
    kinds: list[EventType] = ["ReplyReceived", "DoseConfirmed", "OptedIn"]
    with unit_of_work() as uow:
        uow.events.append_many(
            [
                Event(kind, None, NOW + timedelta(minutes=n), {"n": n})
                for n, kind in enumerate(kinds)
            ]
        )
        uow.events.append_many([])  # nothing to write, no lock to take
        uow.commit()
    seen = consume(unit_of_work, "scheduler")
    assert [each.event.type for each in seen] == kinds
    assert [each.event.payload["n"] for each in seen] == [0, 1, 2]
    assert [each.event.occurred_at for each in seen] == [
        NOW + timedelta(minutes=n) for n in range(3)
    ]
    assert seen[0].id < seen[1].id < seen[2].id


def test_staged_events_keep_any_text_and_go_with_a_rollback(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    # on PostgreSQL append_many's rows travel as a quoted literal in the committing message
    payload = {"text": "50% 'quoted' \\ back\nslash; COMMIT; -- ø 😊", "n": [1, None]}
    with unit_of_work() as uow:
        uow.events.append_many([Event("ReplyReceived", None, NOW, {"gone": True})])
        uow.rollback()
        uow.events.append_many([Event("ReplyReceived", None, NOW, payload)])
        uow.commit()
    seen = consume(unit_of_work, "scheduler")
    assert [each.event.payload for each in seen] == [payload]


@pytest.fixture
def postgres_engine(postgres_server: PostgresServer) -> Iterator[Engine]:
    with postgres_server.fresh_database("dosewise_events") as url:
        engine = create_engine(url)
        yield engine
        engine.dispose()


def test_commit_returns_once_an_event_writer_is_on_disk(postgres_engine: Engine) -> None:
    # by commit()'s return the WAL is flushed past everything the transaction wrote before its
    # commit message (a transactional WAL record written here marks that point)
    sessions = session_factory(postgres_engine)
    with SqlUnitOfWork(sessions) as uow:
        uow.events.append_many([Event("DoseConfirmed", None, NOW)])
        written = uow.events._session.execute(
            sqlalchemy.text(
                "SELECT pg_logical_emit_message(true, 'dosewise.test', 'written')::text"
            )
        ).scalar_one()
        uow.commit()
    with postgres_engine.connect() as connection:
        behind = connection.execute(
            sqlalchemy.text("SELECT pg_current_wal_flush_lsn() < CAST(:written AS pg_lsn)"),
            {"written": written},
        ).scalar_one()
    assert behind is False


def _writer_in_commit(sessions: sessionmaker[Session], *types: EventType) -> SqlUnitOfWork:
    """A unit of work whose events are inserted (ids drawn, the writers' lock held) and not
    yet committed, as a writer is while its commit message runs."""
    uow = SqlUnitOfWork(sessions).__enter__()
    uow.events.append_many([Event(kind, None, NOW) for kind in types])
    uow.events._session.execute(sqlalchemy.text("SELECT 1"))  # sends the staged rows
    return uow


def _end(uow: SqlUnitOfWork, *, commit: bool) -> None:
    if commit:
        uow.commit()
    uow.__exit__(None, None, None)  # rolls back what was not committed


def test_a_consumer_does_not_pass_a_writer_still_committing(postgres_engine: Engine) -> None:
    # a later writer commits first without waiting; the consumer meets the gap the earlier
    # one leaves, and neither passes it nor waits past the barrier's bound for it
    sessions = session_factory(postgres_engine)
    unit_of_work = partial(SqlUnitOfWork, sessions)
    first = _writer_in_commit(sessions, "ColdOnset")
    started = time.monotonic()
    append(unit_of_work, "ColdEnded", "Snoozed")
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    assert consume(unit_of_work, "scheduler") == []
    assert time.monotonic() - started < 5 * BARRIER_WAIT_MS / 1000
    _end(first, commit=True)
    seen = consume(unit_of_work, "scheduler")
    assert [each.event.type for each in seen] == ["ColdOnset", "ColdEnded", "Snoozed"]
    assert consume(unit_of_work, "scheduler") == []


def test_the_gap_of_a_writer_that_rolled_back_is_passed(postgres_engine: Engine) -> None:
    sessions = session_factory(postgres_engine)
    unit_of_work = partial(SqlUnitOfWork, sessions)
    gone = _writer_in_commit(sessions, "ColdOnset")
    append(unit_of_work, "ColdEnded")
    _end(gone, commit=False)
    assert [each.event.type for each in consume(unit_of_work, "scheduler")] == ["ColdEnded"]
    append(unit_of_work, "Snoozed")
    assert [each.event.type for each in consume(unit_of_work, "scheduler")] == ["Snoozed"]


def test_the_barrier_waits_for_the_writer_committing_at_that_moment(
    postgres_engine: Engine,
) -> None:
    sessions = session_factory(postgres_engine)
    unit_of_work = partial(SqlUnitOfWork, sessions)
    first = _writer_in_commit(sessions, "ColdOnset")
    append(unit_of_work, "ColdEnded")
    seen: list[RecordedEvent] = []
    consumer = threading.Thread(target=lambda: seen.extend(consume(unit_of_work, "scheduler")))
    consumer.start()
    time.sleep(BARRIER_WAIT_MS / 1000 / 4)  # the consumer is at the barrier, waiting
    _end(first, commit=True)
    consumer.join(timeout=10)
    assert [each.event.type for each in seen] == ["ColdOnset", "ColdEnded"]


def test_a_long_transaction_that_writes_no_event_holds_nothing_back(
    postgres_engine: Engine,
) -> None:
    # as the scheduler's materialisation or the report rollup, which run for seconds
    sessions = session_factory(postgres_engine)
    unit_of_work = partial(SqlUnitOfWork, sessions)
    long = SqlUnitOfWork(sessions).__enter__()
    long.events._session.execute(sqlalchemy.text("SELECT pg_current_xact_id()"))  # it writes
    append(unit_of_work, "ColdEnded")
    started = time.monotonic()
    assert [each.event.type for each in consume(unit_of_work, "scheduler")] == ["ColdEnded"]
    assert time.monotonic() - started < BARRIER_WAIT_MS / 1000
    _end(long, commit=False)


def test_concurrent_writers_and_a_consumer_see_every_committed_event_once(
    postgres_engine: Engine,
) -> None:
    # writers hold their events uncommitted for a while after drawing ids, some roll back,
    # while a consumer drains: a cursor that passed a gap too early would lose events
    sessions = session_factory(postgres_engine)
    committed: list[int] = []
    lock = threading.Lock()
    writers_done = threading.Event()

    def write(seed: int) -> None:
        chance = random.Random(seed)
        for n in range(40):
            marker = seed * 1000 + n
            uow = SqlUnitOfWork(sessions).__enter__()
            uow.events.append_many([Event("Snoozed", None, NOW, {"marker": marker})])
            uow.events._session.execute(sqlalchemy.text("SELECT 1"))  # ids drawn now
            time.sleep(chance.uniform(0, 0.004))
            kept = chance.random() >= 0.2
            _end(uow, commit=kept)
            if kept:
                with lock:
                    committed.append(marker)

    seen: list[RecordedEvent] = []

    def drain() -> None:
        unit_of_work = partial(SqlUnitOfWork, sessions)
        while not writers_done.is_set():
            seen.extend(consume(unit_of_work, "scheduler", limit=7))
        while batch := consume(unit_of_work, "scheduler"):
            seen.extend(batch)

    consumer = threading.Thread(target=drain)
    consumer.start()
    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(1, 5)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    writers_done.set()
    consumer.join(timeout=60)
    markers = [each.event.payload["marker"] for each in seen]
    assert len(markers) == len(set(markers))
    assert sorted(markers) == sorted(committed)
    assert len(committed) > 100
