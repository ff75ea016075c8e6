"""The event log: append in the writer's transaction, consume once per consumer.

Exactly once per consumer: `consume` reads past the consumer's cursor, runs the handler and
moves the cursor in one transaction, so the handler's changes and the cursor commit or roll
back together, and a rolled-back event was never there to be read.

A consumer must never move its cursor past an event whose transaction has not committed yet,
or it would never see that event. On PostgreSQL ids are drawn before commit, so id order is
not commit order. Each event therefore keeps the id of the transaction that wrote it (`tx`,
the server's default), and a consumer reads in (tx, id) order and only events below the
oldest transaction of this database still in progress in its snapshot (`_SETTLED_BELOW`):
every transaction before that has committed or rolled back, so nothing can appear behind the
cursor later. Writers take no lock and commit as usual
(concurrent commits share WAL flushes). The cost: while a transaction that has written
anything stays open, consumers do not read past it; events wait, none is lost, and its
commit's NOTIFY (or the consumer's next poll) brings them. SQLite has one writer at a time:
tx is 0 and id order alone counts.

Earlier versions serialised writers on an advisory lock from the append to the commit,
committed asynchronously and flushed in a second transaction; under bench/webhook.py that
cost 12-18% more CPU per reply and the writers queued on the lock.

On PostgreSQL the rows are staged (store.driver): they go with the commit, in one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import cast as typed

from sqlalchemy import BigInteger, column, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from services.ports import Event, EventHandler, EventType, RecordedEvent
from store.driver import DriverStatement, send_staged, stage
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


_APPEND = DriverStatement(_append("%(events)s"), {})
_INSERT_EVENTS = insert(metadata.tables["events"])
# Below what every event is final, in the statement's snapshot: its xmax, or the oldest
# transaction still in progress that may be this database's. Transactions ids are the whole
# server's, so one proven to belong to another database (pg_stat_activity) cannot write our
# events and holds nothing back; one that has ended since the snapshot cannot be placed and
# counts, so an event its commit made visible after the snapshot is never passed.
_SETTLED_BELOW = (
    text(
        """
        SELECT CAST(CAST(LEAST(pg_snapshot_xmax(s.snapshot), (
            SELECT min(x) FROM pg_snapshot_xip(s.snapshot) AS x
            WHERE xid(x) NOT IN (
                SELECT a.backend_xid FROM pg_stat_activity AS a
                WHERE a.backend_xid IS NOT NULL
                AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
            )
        )) AS text) AS bigint)
        FROM (SELECT pg_current_snapshot() AS snapshot) AS s
        """
    )
    .columns(column("settled_below", BigInteger))
    .scalar_subquery()
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
        connection = self._session.connection()
        if self._postgres:
            self._session.flush()  # what the ORM holds goes first, as it was written first
            stage(connection, _APPEND, {"events": _json(events)})
            return
        connection.execute(_INSERT_EVENTS, [_row(each) for each in events])

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
