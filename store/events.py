"""The event log: append in the writer's transaction, consume once per consumer.

Exactly once per consumer: `consume` reads past the consumer's cursor, runs the handler and
moves the cursor in one transaction, so the handler's changes and the cursor commit or roll
back together, and a rolled-back event was never there to be read.

Ids must become visible in id order, or a consumer could move its cursor past an id whose
transaction has not committed yet and never see that event. SQLite has one writer at a time,
so it holds. On PostgreSQL, `append` takes a transaction-level advisory lock first: the next
appender waits until this transaction has committed or rolled back before it draws an id. We
chose the lock over filtering on pg_snapshot_xmin because it keeps the cursor a single id
that both databases read the same way; its cost is that event writers queue on one another
between their append and their commit.

That queue is why `append_many` leaves its rows for the commit to send, in the one message
that inserts them, takes the lock and commits: the lock is then held only while the database
runs that message, never while this process waits for its GIL or the CPU to send the next
statement. And why a transaction holding the lock commits asynchronously (synchronous_commit
off, set with the lock): the lock is released as soon as the commit record is written, not
after the disk has flushed it, which would cap all event writers together at one flush (a
few ms) each.
The unit of work's commit then waits for the flush outside the lock (`SqlEventLog.commit`),
where concurrent writers share flushes, so `commit()` still returns only once the work is on
disk. (The flush is a logical decoding message, prefix "dosewise.flush", in the WAL: logical
replication ignores it unless asked for messages.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from psycopg import sql
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from services.ports import Event, EventHandler, EventType, RecordedEvent
from store.driver import driver_connection, run_script
from store.models import EventCursorRow, EventRow, metadata
from store.types import require_aware
from store.upsert import insert_for

# pg_advisory_xact_lock key of the event log ("dwEVENTS"); other advisory locks use other keys
EVENT_LOG_LOCK = 0x6477_4556_454E_5453
# the channel consumers LISTEN on to act on a new event at once instead of at the next poll
EVENTS_CHANNEL = "dosewise_events"


def _append_locked(events: str) -> str:
    """PostgreSQL: lock, asynchronous commit, NOTIFY and the rows (`events`: a JSON array) in
    one statement. The lock sits in a one-time filter, which runs before the first row is drawn
    and so before the first id is; ROWS FROM ... WITH ORDINALITY keeps the rows in the order
    given. NOTIFY is delivered when (and only if) the transaction commits, folded with repeats
    within it."""
    return f"""
    INSERT INTO events (type, person_id, payload, occurred_at)
    SELECT e.type, e.person_id, e.payload, e.occurred_at
    FROM ROWS FROM (
        jsonb_to_recordset(CAST({events} AS jsonb))
        AS (type varchar, person_id integer, payload jsonb, occurred_at timestamptz)
    ) WITH ORDINALITY AS e (type, person_id, payload, occurred_at, n)
    WHERE (
        SELECT true
        FROM pg_advisory_xact_lock({EVENT_LOG_LOCK}),
            set_config('synchronous_commit', 'off', true),
            pg_notify('{EVENTS_CHANNEL}', '')
    )
    ORDER BY e.n
    """


_APPEND_LOCKED = text(_append_locked(":events"))
_INSERT_EVENTS = insert(metadata.tables["events"])
# Sent after a transaction that took the lock, in one round trip (one simple-query message):
# its asynchronous COMMIT, which releases the lock, then a transactional WAL record in an
# implicit transaction of its own, whose synchronous commit flushes the WAL up to there, and
# so the COMMIT before it, where concurrent writers share flushes. pg_current_xact_id() alone
# writes no WAL and would not wait.
_COMMIT_AND_FLUSH = "COMMIT; SELECT pg_logical_emit_message(true, 'dosewise.flush', '')"


class SqlEventLog:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        # the lock was taken, so this transaction commits asynchronously: see the docstring
        self.commit_needs_flush = False
        # PostgreSQL: append_many's rows, written by commit()
        self._staged: list[dict[str, Any]] = []

    def append(self, event: Event) -> None:
        """Add the event to the caller's transaction now (on PostgreSQL taking the log's lock
        until the commit); it is seen once that commits."""
        if not self._postgres:
            self.append_many([event])
            return
        self._session.connection().execute(_APPEND_LOCKED, {"events": _json([event])})
        self.commit_needs_flush = True

    def append_many(self, events: Sequence[Event]) -> None:
        """Add the events, in this order, to the caller's transaction; they are seen once that
        commits. On PostgreSQL they are written by commit(), in the message that commits: the
        log's lock is held only while the database itself inserts and commits, never while
        this process (its GIL, its CPU) gets round to sending the COMMIT."""
        if not events:
            return
        if self._postgres:
            self._staged += _rows(events)
            return
        # SQLite: one writer at a time, no lock to hold short
        self._session.connection().execute(_INSERT_EVENTS, [_row(each) for each in events])

    def commit(self) -> None:
        """Commit the caller's transaction; returns once it is on disk."""
        if not (self._staged or self.commit_needs_flush):
            self._session.commit()
            return
        self._session.flush()  # anything the ORM still holds goes before the events
        connection = self._session.connection()
        message = [_COMMIT_AND_FLUSH]
        if self._staged:
            rows = json.dumps(self._staged)
            literal = sql.Literal(rows).as_string(driver_connection(connection))
            message.insert(0, _append_locked(literal))
        self._staged, self.commit_needs_flush = [], False
        # one simple-query message (no parameters: the rows are a quoted literal)
        run_script(connection, ";".join(message))
        self._session.commit()  # the database's transaction is over; the session's follows

    def rollback(self) -> None:
        """Forget the staged events with the rest of the transaction."""
        self._staged, self.commit_needs_flush = [], False
        self._session.rollback()

    def consume(self, consumer: str, handler: EventHandler, limit: int = 100) -> int:
        """Hand up to `limit` unseen events to `handler` in this transaction; how many."""
        after = self._lock_cursor(consumer)
        rows = self._session.scalars(
            select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
        ).all()
        for row in rows:
            handler(_recorded(row))
        if rows:
            self._session.execute(
                update(EventCursorRow)
                .where(EventCursorRow.consumer == consumer)
                .values(last_event_id=rows[-1].id)
            )
        return len(rows)

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
