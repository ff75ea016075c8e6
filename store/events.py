"""The event log: append in the writer's transaction, consume once per consumer.

Exactly once per consumer: `consume` reads past the consumer's cursor, runs the handler and
moves the cursor in one transaction, so the handler's changes and the cursor commit or roll
back together, and a rolled-back event was never there to be read.

A consumer must never move its cursor past an event whose transaction has not committed yet,
or it would never see that event. On PostgreSQL ids are drawn before commit, so id order is
not commit order. Each event therefore keeps the id of the transaction that wrote it (`tx`,
the server's default), and a consumer reads in (tx, id) order and only events of
transactions below its snapshot's xmin: every transaction there has committed or rolled back,
so nothing can appear behind the cursor later. Writers take no lock and commit as usual
(concurrent commits share WAL flushes). The cost: while a transaction that has written
anything stays open, consumers do not read past it; events wait, none is lost, and its
commit's NOTIFY (or the consumer's next poll) brings them. SQLite has one writer at a time:
tx is 0 and id order alone counts.

Earlier versions serialised writers on an advisory lock from the append to the commit,
committed asynchronously and flushed in a second transaction; under bench/webhook.py that
cost 12-18% more CPU per reply and the writers queued on the lock.

`append_many` leaves its rows for the commit on PostgreSQL: they go in the message that
commits, one round trip for both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import cast as typed

from psycopg import sql
from sqlalchemy import BigInteger, Text, cast, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from services.ports import Event, EventHandler, EventType, RecordedEvent
from store.driver import driver_connection, run_script
from store.models import EventCursorRow, EventRow, metadata
from store.types import require_aware
from store.upsert import insert_for

# the channel consumers LISTEN on to act on a new event at once instead of at the next poll
EVENTS_CHANNEL = "dosewise_events"


def _append(events: str) -> str:
    """PostgreSQL: NOTIFY and the rows (`events`: a JSON array) in one statement. ROWS FROM
    ... WITH ORDINALITY keeps the rows in the order given. NOTIFY is delivered when (and only
    if) the transaction commits, folded with repeats within it."""
    return f"""
    INSERT INTO events (type, person_id, payload, occurred_at)
    SELECT e.type, e.person_id, e.payload, e.occurred_at
    FROM ROWS FROM (
        jsonb_to_recordset(CAST({events} AS jsonb))
        AS (type varchar, person_id integer, payload jsonb, occurred_at timestamptz)
    ) WITH ORDINALITY AS e (type, person_id, payload, occurred_at, n)
    WHERE (SELECT true FROM pg_notify('{EVENTS_CHANNEL}', ''))
    ORDER BY e.n
    """


_INSERT_EVENTS = insert(metadata.tables["events"])
# xmin of the statement's snapshot: every transaction below it has ended
_SETTLED_BELOW = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)


class SqlEventLog:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        # PostgreSQL: append_many's rows, written by commit()
        self._staged: list[dict[str, Any]] = []

    def append(self, event: Event) -> None:
        """Add the event to the caller's transaction; it is seen once that commits."""
        self.append_many([event])

    def append_many(self, events: Sequence[Event]) -> None:
        """Add the events, in this order, to the caller's transaction; they are seen once that
        commits. On PostgreSQL they are written by commit(), in the message that commits."""
        if not events:
            return
        if self._postgres:
            self._staged += _rows(events)
            return
        self._session.connection().execute(_INSERT_EVENTS, [_row(each) for each in events])

    def commit(self) -> None:
        """Commit the caller's transaction; returns once it is on disk."""
        if not self._staged:
            self._session.commit()
            return
        self._session.flush()  # anything the ORM still holds goes before the events
        connection = self._session.connection()
        rows = json.dumps(self._staged)
        self._staged = []
        literal = sql.Literal(rows).as_string(driver_connection(connection))
        # one simple-query message (no parameters: the rows are a quoted literal)
        run_script(connection, _append(literal) + "; COMMIT")
        self._session.commit()  # the database's transaction is over; the session's follows

    def rollback(self) -> None:
        """Forget the staged events with the rest of the transaction."""
        self._staged = []
        self._session.rollback()

    def consume(self, consumer: str, handler: EventHandler, limit: int = 100) -> int:
        """Hand up to `limit` unseen events to `handler` in this transaction; how many."""
        after = self._lock_cursor(consumer)
        query = select(EventRow).where(tuple_(EventRow.tx, EventRow.id) > after)
        if self._postgres:
            query = query.where(EventRow.tx < _SETTLED_BELOW)
        rows = self._session.scalars(query.order_by(EventRow.tx, EventRow.id).limit(limit)).all()
        for row in rows:
            handler(_recorded(row))
        if rows:
            self._session.execute(
                update(EventCursorRow)
                .where(EventCursorRow.consumer == consumer)
                .values(last_tx=rows[-1].tx, last_event_id=rows[-1].id)
            )
        return len(rows)

    def _lock_cursor(self, consumer: str) -> tuple[int, int]:
        # FOR UPDATE makes a second process of the same consumer wait for this one's commit
        # and then read the cursor it left (SQLite's BEGIN IMMEDIATE already serialises)
        self._session.execute(
            insert_for(self._session, EventCursorRow)
            .values(consumer=consumer, last_tx=0, last_event_id=0)
            .on_conflict_do_nothing(index_elements=["consumer"])
        )
        cursor = self._session.execute(
            select(EventCursorRow.last_tx, EventCursorRow.last_event_id)
            .where(EventCursorRow.consumer == consumer)
            .with_for_update()
        ).one()
        return cursor.last_tx, cursor.last_event_id


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
        type=typed("EventType", row.type),
        person_id=row.person_id,
        occurred_at=row.occurred_at,
        payload=row.payload,
    )
    return RecordedEvent(row.id, event)
