"""The tracker's repository (services.reply_ports.ReplyRepository) on one SQLAlchemy session.

Rows that an answer changes are read FOR UPDATE (a no-op on SQLite, whose BEGIN IMMEDIATE
already serialises writers), so two replies racing for one reminder settle one after the
other: the second finds it answered and moves on to the next open one, or to none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    bindparam,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.reply_ports import (
    ANSWERABLE_STATUSES,
    ClaimedReply,
    ColdCourseRecord,
    ConfirmToken,
    InboundReply,
    MessageRecord,
    OpenReminder,
    Outcome,
    OutcomeSource,
    ReplyClaim,
    StoredReply,
)
from store.driver import DriverStatement, execute_together, stage, utc
from store.models import (
    ColdCourseRow,
    ConfirmTokenRow,
    InboundReplyRow,
    OptOutRow,
    OutgoingMessageRow,
    PersonRow,
    metadata,
)
from store.outbox import outbox_message
from store.repositories import person_record
from store.types import UTCDateTime, require_aware

# The hot path (an inbound SMS) runs Core statements built once here with named parameters:
# no ORM unit of work, no per-call statement building, and as few round trips as possible.
_people = metadata.tables["people"]
_replies = metadata.tables["inbound_replies"]
_reminders = metadata.tables["reminders"]
_confirmations = metadata.tables["confirmations"]
_NOW = bindparam("now", type_=UTCDateTime())

_PERSON = (
    _people.c.id,
    _people.c.name,
    _people.c.phone,
    _people.c.email,
    _people.c.channel,
    _people.c.timezone,
    _people.c.language,
    _people.c.active,
    _people.c.opted_out,
)
_PERSON_BY_PHONE = select(*_PERSON).where(_people.c.phone == bindparam("sender"))
_NEW_REPLY = {
    "provider_id": bindparam("sid"),
    "from_number": bindparam("sender"),
    "body": bindparam("text"),
    "kind": bindparam("read_as"),
    "answer": None,
    "received_at": _NOW,
}


def _reminder_columns(prefix: str = "") -> list[Any]:
    """An OpenReminder's columns, in its fields' order."""
    names = ("id", "person_id", "items", "due_at", "status", "window_closes_at")
    # by key: .items would be the column collection's own method
    return [_reminders.c[name].label(prefix + name) for name in names]


# the person's most recent reminder that went out, is due and whose window is still open;
# the unique key (person_id, due_at, slot_key) serves it newest first
_OPEN_REMINDERS = (
    select(*_reminder_columns())
    .where(
        _reminders.c.status.in_(ANSWERABLE_STATUSES),
        _reminders.c.due_at <= _NOW,
        _reminders.c.window_closes_at > _NOW,
    )
    .order_by(_reminders.c.due_at.desc(), _reminders.c.id.desc())
    .limit(1)
    .with_for_update()
)
_OPEN_REMINDER = _OPEN_REMINDERS.where(_reminders.c.person_id == bindparam("person"))
# a late TAKEN's candidates (services.replies.late_confirmable): the person's reminders due
# in (since, now], newest first; a dozen at most in the 12 hours it looks back
_RECENT_REMINDERS = (
    select(
        *_reminder_columns(),
        select(_confirmations.c.id)
        .where(_confirmations.c.reminder_id == _reminders.c.id)
        .exists()
        .label("answered"),
    )
    .where(
        _reminders.c.person_id == bindparam("person"),
        _reminders.c.due_at > bindparam("since", type_=UTCDateTime()),
        _reminders.c.due_at <= _NOW,
        _reminders.c.status != "cancelled",
    )
    .order_by(_reminders.c.due_at.desc(), _reminders.c.id.desc())
    .limit(100)
)


def _claim_in_one_statement(with_open_reminder: bool) -> Any:
    """PostgreSQL: find the sender, claim the MessageSid and (if asked) lock the sender's open
    reminder in one round trip; no row when the sid was already there."""
    person = _PERSON_BY_PHONE.cte("person")
    claimed = (
        postgresql.insert(_replies)
        .values(**_NEW_REPLY, person_id=select(person.c.id).scalar_subquery())
        .on_conflict_do_nothing(index_elements=["provider_id"])
        .returning(_replies.c.id)
        .cte("claimed")
    )
    columns = [claimed.c.id.label("reply_id"), *person.c]
    joined = claimed.outerjoin(person, true())
    if with_open_reminder:
        reminder = (
            _OPEN_REMINDERS.with_only_columns(*_reminder_columns("reminder_"))
            .where(_reminders.c.person_id == person.c.id)
            .lateral("reminder")
        )
        columns += list(reminder.c)
        joined = joined.outerjoin(reminder, true())
    return select(*columns).select_from(joined)


_CLAIM_PARAMETERS = ("sid", "sender", "text", "read_as", "now")
_CLAIM_POSTGRES = {
    wanted: DriverStatement.compile(_claim_in_one_statement(wanted), *_CLAIM_PARAMETERS)
    for wanted in (False, True)
}
# SQLite has no INSERT in a WITH: the sender is looked up first
_CLAIM_SQLITE = (
    sqlite.insert(_replies)
    .values(**_NEW_REPLY, person_id=bindparam("person"))
    .on_conflict_do_nothing(index_elements=["provider_id"])
    .returning(_replies.c.id)
)
_SET_ANSWER = (
    update(_replies)
    .where(_replies.c.id == bindparam("reply"))
    .values(kind=bindparam("read_as"), answer=bindparam("text"))
)
_RECORD_OUTCOME = (
    update(_reminders)
    .where(_reminders.c.id == bindparam("reminder"))
    .values(
        status=bindparam("new_status"),
        confirmed_at=bindparam("confirmed", type_=UTCDateTime()),
        updated_at=_NOW,
    )
)
_OUTCOME = {
    "person_id": bindparam("person", type_=Integer()),
    "outcome": bindparam("result", type_=String()),
    "at": _NOW,
    "source": bindparam("origin", type_=String()),
    "reply_id": bindparam("reply", type_=BigInteger()),
}
_ADD_CONFIRMATION = _confirmations.insert().values(reminder_id=bindparam("reminder"), **_OUTCOME)


def _record_in_one_statement() -> Any:
    """PostgreSQL: the reminder's new status and its confirmation row in one round trip."""
    updated = _RECORD_OUTCOME.returning(_reminders.c.id).cte("updated")
    return postgresql.insert(_confirmations).from_select(
        ["reminder_id", *_OUTCOME], select(updated.c.id, *_OUTCOME.values())
    )


_RECORD_PARAMETERS = ("reminder", "new_status", "confirmed", "now", "person", "result", "origin")
_RECORD_POSTGRES = DriverStatement.compile(_record_in_one_statement(), *_RECORD_PARAMETERS, "reply")
_SET_ANSWER_POSTGRES = DriverStatement.compile(_SET_ANSWER, "reply", "read_as", "text")
# lock_timeout for the rest of the transaction, as a statement that can be staged
_LIMIT_LOCK_WAITS = DriverStatement.compile(
    select(func.set_config("lock_timeout", bindparam("limit", type_=String()), true())),
    "limit",
)


class SqlReplies:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _connection(self) -> Connection:
        return self._session.connection()

    def stored(self, provider_id: str) -> StoredReply | None:
        row = self._session.execute(
            select(InboundReplyRow.id, InboundReplyRow.kind, InboundReplyRow.answer).where(
                InboundReplyRow.provider_id == provider_id
            )
        ).first()
        return None if row is None else StoredReply(row.id, row.kind, row.answer)

    def claim(
        self, reply: InboundReply, now: datetime, *, with_open_reminder: bool = False
    ) -> ClaimedReply | None:
        """Store the reply unless its MessageSid is already there: its id, its sender and (if
        asked) the sender's open reminder, locked; or None.

        ON CONFLICT DO NOTHING waits for a concurrent insert of the same sid to commit or roll
        back, so of two simultaneous deliveries exactly one claims the reply.
        """
        values = _claim_values(reply, now)
        connection = self._connection()
        if self._postgres:
            row = _CLAIM_POSTGRES[with_open_reminder].execute(connection, values).fetchone()
            return None if row is None else _claimed(row)
        found_person = connection.execute(_PERSON_BY_PHONE, {"sender": reply.from_number}).first()
        person = None if found_person is None else person_record(found_person)
        values["person"] = None if person is None else person.id
        claimed = connection.execute(_CLAIM_SQLITE, values).scalar_one_or_none()
        if claimed is None:
            return None
        reminder = None
        if with_open_reminder and person is not None:
            reminder = self.open_reminder(person.id, now)
        return ClaimedReply(claimed, person, reminder)

    def claim_together(self, claims: Sequence[ReplyClaim]) -> list[ClaimedReply | None]:
        if not self._postgres:  # SQLite: no round trips to save
            return [
                self.claim(each.reply, each.now, with_open_reminder=each.with_open_reminder)
                for each in claims
            ]
        executions = [
            (_CLAIM_POSTGRES[each.with_open_reminder], _claim_values(each.reply, each.now))
            for each in claims
        ]
        results = execute_together(self._connection(), executions)
        return [_claimed(rows[0]) if rows else None for rows in results]

    def limit_lock_waits(self, seconds: float) -> None:
        """A row lock this transaction waits for longer than `seconds` aborts it
        (TransactionAborted). PostgreSQL only: SQLite's writers wait at BEGIN."""
        if self._postgres:
            stage(self._session, _LIMIT_LOCK_WAITS, {"limit": f"{round(seconds * 1000)}ms"})

    def set_answer(self, reply_id: int, kind: str, answer: str | None) -> None:
        values = {"reply": reply_id, "read_as": kind, "text": answer}
        if self._postgres:
            stage(self._session, _SET_ANSWER_POSTGRES, values)
            return
        self._connection().execute(_SET_ANSWER, values)

    def open_reminder(self, person_id: int, now: datetime) -> OpenReminder | None:
        """The most recent reminder that went out, is due and whose window is still open."""
        row = self._connection().execute(_OPEN_REMINDER, {"person": person_id, "now": now}).first()
        return None if row is None else OpenReminder(*row)

    def reminder_for_update(self, reminder_id: int) -> OpenReminder | None:
        row = (
            self._connection()
            .execute(
                select(*_OPEN_REMINDER.selected_columns)
                .where(_reminders.c.id == reminder_id)
                .with_for_update()
            )
            .first()
        )
        return None if row is None else OpenReminder(*row)

    def recent_reminders(
        self, person_id: int, since: datetime, now: datetime
    ) -> list[OpenReminder]:
        rows = self._connection().execute(
            _RECENT_REMINDERS, {"person": person_id, "since": since, "now": now}
        )
        # the reminder's columns, then whether an outcome is recorded for it
        return [OpenReminder(*row[:6], answered=bool(row[6])) for row in rows]

    def record_outcome(
        self,
        reminder: OpenReminder,
        outcome: Outcome,
        at: datetime,
        source: OutcomeSource,
        reply_id: int | None,
        taken_at: datetime | None = None,
    ) -> None:
        taken = outcome == "taken"
        values = {
            "reminder": reminder.id,
            "new_status": "confirmed" if taken else "skipped",
            "confirmed": (taken_at or at) if taken else None,
            "now": at,
            "person": reminder.person_id,
            "result": outcome,
            "origin": source,
            "reply": reply_id,
        }
        if self._postgres:
            require_aware(at)
            stage(self._session, _RECORD_POSTGRES, values)
            return
        connection = self._connection()
        connection.execute(_RECORD_OUTCOME, values)
        connection.execute(_ADD_CONFIRMATION, values)

    def opt_out(self, person_id: int, source: str, now: datetime) -> bool:
        """Mark the person opted out; False when they already were."""
        changed = self._session.execute(
            update(PersonRow)
            .where(PersonRow.id == person_id, PersonRow.opted_out.is_(False))
            .values(opted_out=True, updated_at=now)
            .returning(PersonRow.id)
        ).scalar_one_or_none()
        if changed is None:
            return False
        self._session.add(OptOutRow(person_id=person_id, opted_out_at=now, source=source))
        self._session.flush()
        return True

    def stopped_while_unknown(
        self, phone: str, excluding_reply: int | None = None
    ) -> datetime | None:
        # the STOP family as the tracker stored it for a number it did not know
        # (services.replies); "yes" too: the tracker stored YES after STOP as "yes" before it
        # read it as START, and a YES with no STOP before it undoes nothing
        query = (
            select(InboundReplyRow.kind, InboundReplyRow.received_at)
            .where(
                InboundReplyRow.from_number == phone,
                InboundReplyRow.person_id.is_(None),
                InboundReplyRow.kind.in_(("stop", "start", "yes")),
            )
            .order_by(InboundReplyRow.received_at.desc(), InboundReplyRow.id.desc())
            .limit(1)
        )
        if excluding_reply is not None:
            query = query.where(InboundReplyRow.id != excluding_reply)
        last = self._session.execute(query).first()
        return last.received_at if last is not None and last.kind == "stop" else None

    def opt_in(self, person_id: int, now: datetime) -> bool:
        """Undo an opt-out; False when the person was not opted out."""
        changed = self._session.execute(
            update(PersonRow)
            .where(PersonRow.id == person_id, PersonRow.opted_out.is_(True))
            .values(opted_out=False, updated_at=now)
            .returning(PersonRow.id)
        ).scalar_one_or_none()
        if changed is None:
            return False
        self._session.execute(
            update(OptOutRow)
            .where(OptOutRow.person_id == person_id, OptOutRow.opted_in_at.is_(None))
            .values(opted_in_at=now)
        )
        return True

    def running_cold_course(self, person_id: int, now: datetime) -> ColdCourseRecord | None:
        row = self._session.scalar(
            select(ColdCourseRow)
            .where(
                ColdCourseRow.person_id == person_id,
                ColdCourseRow.ended_at.is_(None),
                ColdCourseRow.ends_at > now,
            )
            .order_by(ColdCourseRow.onset_at.desc())
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return None
        return ColdCourseRecord(row.id, row.person_id, row.onset_at, row.ends_at, row.ended_at)

    def start_cold_course(self, person_id: int, onset_at: datetime, ends_at: datetime) -> int:
        row = ColdCourseRow(person_id=person_id, onset_at=onset_at, ends_at=ends_at)
        self._session.add(row)
        self._session.flush()
        return row.id

    def end_cold_course(self, cold_course_id: int, now: datetime) -> None:
        self._session.execute(
            update(ColdCourseRow).where(ColdCourseRow.id == cold_course_id).values(ended_at=now)
        )

    def confirm_token(self, token_hash: str) -> ConfirmToken | None:
        row = self._session.scalar(
            select(ConfirmTokenRow)
            .where(ConfirmTokenRow.token_hash == token_hash)
            .with_for_update()
        )
        if row is None:
            return None
        return ConfirmToken(row.id, row.reminder_id, row.expires_at, row.used_at)

    def use_confirm_token(self, token_id: int, now: datetime) -> None:
        self._session.execute(
            update(ConfirmTokenRow).where(ConfirmTokenRow.id == token_id).values(used_at=now)
        )

    def message_by_provider_id(self, provider_id: str) -> MessageRecord | None:
        row = self._session.scalar(
            select(OutgoingMessageRow)
            .where(OutgoingMessageRow.provider_id == provider_id)
            .order_by(OutgoingMessageRow.id)
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return None
        return MessageRecord(
            row.id, row.reminder_id, row.person_id, row.status, row.error_code, outbox_message(row)
        )

    def set_message_status(
        self, message_id: int, status: str, error_code: str | None, now: datetime
    ) -> None:
        values: dict[str, object] = {"status": status, "updated_at": now}
        if error_code is not None:
            values["error_code"] = error_code
        self._session.execute(
            update(OutgoingMessageRow).where(OutgoingMessageRow.id == message_id).values(values)
        )


def _claim_values(reply: InboundReply, now: datetime) -> dict[str, Any]:
    return {
        "sid": reply.provider_id,
        "sender": reply.from_number,
        "text": reply.body,
        "read_as": reply.kind,
        "now": require_aware(now),
    }


def _claimed(row: tuple[Any, ...]) -> ClaimedReply:
    """A ClaimedReply from a row of _claim_in_one_statement: the reply's id, the person's
    columns (all NULL for an unknown number), then the reminder's (NULL when none is open,
    absent when none was asked for)."""
    reply_id, person_columns, reminder_columns = row[0], row[1:10], row[10:]
    person = None
    if person_columns[0] is not None:
        person = person_record(_PersonColumns(*person_columns))
    reminder = None
    if reminder_columns and reminder_columns[0] is not None:
        id_, person_id, items, due_at, status, closes_at = reminder_columns
        reminder = OpenReminder(id_, person_id, items, utc(due_at), status, utc(closes_at))
    return ClaimedReply(reply_id, person, reminder)


class _PersonColumns(NamedTuple):
    """_PERSON's columns by name, as person_record reads them."""

    id: int
    name: str
    phone: str
    email: str | None
    channel: str
    timezone: str
    language: str
    active: bool
    opted_out: bool
