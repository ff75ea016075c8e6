"""The event log: append in the writer's transaction, consume once per consumer.

Exactly once per consumer: `consume` reads past the consumer's cursor, runs the handler and
moves the cursor in one transaction, so the handler's changes and the cursor commit or roll
back together, and a rolled-back event was never there to be read.

A consumer must never move its cursor past an event whose transaction has not committed yet,
or it would never see that event. On PostgreSQL ids are drawn before commit, so a smaller id
can become visible after a larger one: a gap in the ids a consumer sees is either a writer
still committing or one that rolled back (or a sequence that skipped). So:

- A writer takes a shared advisory lock (transaction-level) as it inserts its events, which
  go with its commit (staged: store.driver), so it holds the lock only while it commits.
  Writers never wait for one another.
- A consumer reads past its cursor and takes the run of ids with no gap. Only when the very
  next id is missing does it raise the barrier (`_settled_below`): a transaction of its own
  that takes the lock exclusively, so it waits for the writers committing at that moment
  (at most BARRIER_WAIT_MS, else it reads nothing this time), and reads the id sequence's
  last value. Every id up to it is then final, committed or never to be, and the consumer
  reads again up to there, gaps included.

A transaction that writes no events holds nothing back, however long it runs. SQLite has
one writer at a time: ids become visible in order, no gaps to wait for.

An exclusive lock from the append to the commit would serialise every event writer, and an
order by transaction id would let any long writer (the scheduler's materialisation, the report
rollup) hold every consumer back for seconds; the shared lock and the barrier avoid both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from psycopg.errors import LockNotAvailable
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.ports import Event, EventHandler, EventType, RecordedEvent
from store.driver import DriverStatement, send_staged, stage
from store.models import EventCursorRow, EventRow, metadata
from store.types import require_aware
from store.upsert import insert_for

# pg_advisory_xact_lock key of the event writers ("dwEVENTS"); other advisory locks use others
EVENT_WRITERS_LOCK = 0x6477_4556_454E_5453
# how long the barrier waits for the writers committing at that moment (usually a few ms)
BARRIER_WAIT_MS = 200
# the channel consumers LISTEN on to act on a new event at once instead of at the next poll
EVENTS_CHANNEL = "dosewise_events"


def _append(events: str) -> str:
    """PostgreSQL: the writers' shared lock, NOTIFY and the rows (`events`: a JSON array) in
    one statement. The lock sits in a one-time filter, which runs before the first row is
    drawn and so before the first id is; ROWS FROM ... WITH ORDINALITY keeps the rows in the
    order given. NOTIFY is delivered when (and only if) the transaction commits, folded with
    repeats within it."""
    return f"""
    INSERT INTO events (type, person_id, payload, occurred_at)
    SELECT e.type, e.person_id, e.payload, e.occurred_at
    FROM ROWS FROM (
        jsonb_to_recordset(CAST({events} AS jsonb))
        AS (type varchar, person_id integer, payload jsonb, occurred_at timestamptz)
    ) WITH ORDINALITY AS e (type, person_id, payload, occurred_at, n)
    WHERE (
        SELECT true
        FROM pg_advisory_xact_lock_shared({EVENT_WRITERS_LOCK}), pg_notify('{EVENTS_CHANNEL}', '')
    )
    ORDER BY e.n
    """


_APPEND = DriverStatement(_append("%(events)s"), {})
_INSERT_EVENTS = insert(metadata.tables["events"])
# The barrier: in a statement (and transaction) of its own, once every writer that holds the
# shared lock has committed or rolled back, the last id drawn. A writer that comes later draws
# a larger one. The lock is taken in FROM, before the target list reads the sequence.
_BARRIER = text(
    "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'id')), 0)"
    " FROM pg_advisory_xact_lock(:key)"
)


class SqlEventLog:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def append(self, event: Event) -> None:
        """Add the event to the caller's transaction; it is seen once that commits."""
        self.append_many([event])

    def append_many(self, events: Sequence[Event]) -> None:
        """Add the events, in this order, to the caller's transaction; they are seen once that
        commits. On PostgreSQL they are staged: written with the commit, or before the next
        statement."""
        if not events:
            return
        if self._postgres:
            stage(self._session, _APPEND, {"events": _json(events)})
            return
        self._session.connection().execute(_INSERT_EVENTS, [_row(each) for each in events])

    def commit(self) -> None:
        """Commit the caller's transaction; returns once it is on disk. On PostgreSQL the
        staged writes and COMMIT go in one round trip."""
        if self._postgres and self._session.in_transaction():
            self._session.flush()
            send_staged(self._session.connection(), then_commit=True)
        self._session.commit()  # the database's transaction may be over; the session's follows

    def rollback(self) -> None:
        """Undo the transaction; staged writes are forgotten with it."""
        self._session.rollback()

    def consume(self, consumer: str, handler: EventHandler, limit: int = 100) -> int:
        """Hand up to `limit` unseen events to `handler` in this transaction; how many."""
        after = self._lock_cursor(consumer)
        rows = self._unseen(after, limit)
        if self._postgres:
            rows = self._up_to_a_gap(after, rows, limit)
        for row in rows:
            handler(_recorded(row))
        if rows:
            self._session.execute(
                update(EventCursorRow)
                .where(EventCursorRow.consumer == consumer)
                .values(last_event_id=rows[-1].id)
            )
        return len(rows)

    def _unseen(self, after: int, limit: int, up_to: int | None = None) -> list[EventRow]:
        query = select(EventRow).where(EventRow.id > after)
        if up_to is not None:
            query = query.where(EventRow.id <= up_to)
        return list(self._session.scalars(query.order_by(EventRow.id).limit(limit)))

    def _up_to_a_gap(self, after: int, rows: list[EventRow], limit: int) -> list[EventRow]:
        """The run of `rows` with no id missing; when the very next id is missing, the events
        up to the barrier instead (the later ones of a run that stops at a gap wait for the
        next call, which the missing writer's commit NOTIFY brings)."""
        run = _run_length(after, rows)
        if run or not rows:
            return rows[:run]
        settled = self._settled_below()
        return [] if settled is None else self._unseen(after, limit, up_to=settled)

    def _settled_below(self) -> int | None:
        """The barrier's id (every id up to it is final); None when writers held it off for
        BARRIER_WAIT: then nothing past the gap this time (their commits NOTIFY again)."""
        # outside this transaction: inside it, the lock would hold writers off until our
        # commit. The wait is short because writers that ask for the lock after the barrier
        # has queue behind it.
        engine = self._session.get_bind().engine
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{BARRIER_WAIT_MS}ms'")
                found = connection.execute(_BARRIER, {"key": EVENT_WRITERS_LOCK})
                return int(found.scalar_one())
        except OperationalError as error:
            if isinstance(error.orig, LockNotAvailable):
                return None
            raise

    def _lock_cursor(self, consumer: str) -> int:
        # FOR UPDATE makes a second process of the same consumer wait for this one's commit
        # and then read the cursor it left (SQLite's BEGIN IMMEDIATE already serialises)
        self._session.execute(
            insert_for(self._session, EventCursorRow)
            .values(consumer=consumer, last_event_id=0)
            .on_conflict_do_nothing(index_elements=["consumer"])
        )
        return self._session.execute(
            select(EventCursorRow.last_event_id)
            .where(EventCursorRow.consumer == consumer)
            .with_for_update()
        ).scalar_one()


def _run_length(after: int, rows: Sequence[EventRow]) -> int:
    """How many of `rows` (in id order) follow `after` with no id missing."""
    for index, row in enumerate(rows):
        if row.id != after + index + 1:
            return index
    return len(rows)


def _rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    return [{**_row(each), "occurred_at": _instant(each.occurred_at)} for each in events]


def _json(events: Sequence[Event]) -> str:
    return json.dumps(_rows(events))


def _row(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "person_id": event.person_id,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
    }


def _instant(at: datetime) -> str:
    # the check UTCDateTime makes on every other column: an instant, never a wall time
    return require_aware(at).isoformat()


def _recorded(row: EventRow) -> RecordedEvent:
    event = Event(
        type=cast("EventType", row.type),
        person_id=row.person_id,
        occurred_at=row.occurred_at,
        payload=row.payload,
    )
    return RecordedEvent(row.id, event)
