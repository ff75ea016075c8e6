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
between their append and their commit, which events at the pace of people's replies afford.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.ports import Event, EventHandler, EventType, RecordedEvent
from store.models import EventCursorRow, EventRow
from store.upsert import insert_for

# pg_advisory_xact_lock key of the event log ("dwEVENTS"); other advisory locks use other keys
EVENT_LOG_LOCK = 0x6477_4556_454E_5453
# the channel consumers LISTEN on to act on a new event at once instead of at the next poll
EVENTS_CHANNEL = "dosewise_events"


class SqlEventLog:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def append(self, event: Event) -> None:
        """Add the event to the caller's transaction; it is seen once that commits."""
        if self._postgres:
            self._session.execute(select(func.pg_advisory_xact_lock(EVENT_LOG_LOCK)))
        self._session.add(
            EventRow(
                type=event.type,
                person_id=event.person_id,
                payload=event.payload,
                occurred_at=event.occurred_at,
            )
        )
        self._session.flush()
        if self._postgres:
            # PostgreSQL delivers a NOTIFY when (and only if) the transaction commits, and
            # folds repeats within one transaction into one
            self._session.execute(select(func.pg_notify(EVENTS_CHANNEL, "")))

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


def _recorded(row: EventRow) -> RecordedEvent:
    event = Event(
        type=cast("EventType", row.type),
        person_id=row.person_id,
        occurred_at=row.occurred_at,
        payload=row.payload,
    )
    return RecordedEvent(row.id, event)
