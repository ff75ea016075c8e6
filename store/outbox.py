"""The outbox as the notifier sees it: claim due messages under a lease, record what happened.

A claim commits status 'sending' with a lease before any provider call, so a crashed notifier
leaves rows that say "maybe sent": the sweeper claims those once their lease has run out and
asks the provider before sending again. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several
notifiers claim side by side without waiting on or taking each other's rows; on SQLite the
engine begins every transaction with BEGIN IMMEDIATE, so claims simply take turns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    String,
    any_,
    bindparam,
    column,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.ports import (
    Addressee,
    ClaimedMessage,
    FinalStatus,
    MessageChannel,
    OutboxMessage,
    SentRecord,
)
from store.models import OptOutRow, OutgoingMessageRow, PersonRow, RegimenRow, metadata
from store.upsert import insert_for

# Core tables: a batch of hundreds of rows costs far less without the ORM's unit of work
_messages = metadata.tables["outgoing_messages"]
_reminders = metadata.tables["reminders"]
_slots = metadata.tables["send_rate_slots"]
_MESSAGE_COLUMNS = (
    _messages.c.id,
    _messages.c.reminder_id,
    _messages.c.person_id,
    _messages.c.channel,
    _messages.c.recipient,
    _messages.c.subject,
    _messages.c.body,
    _messages.c.purpose,
    _messages.c.due_at,
    _messages.c.not_after,
    _messages.c.attempts,
)
# how long a rate slot row is kept after its second has passed
_SLOT_KEEP_S = 60


class SqlOutbox:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _among(
        self, ids: ColumnElement[int] | InstrumentedAttribute[int], values: Iterable[int]
    ) -> ColumnElement[bool]:
        """`ids IN (values)`; on PostgreSQL `= ANY(array)`: one parameter however many values,
        so a batch of 500 neither renders 500 placeholders nor misses the statement caches."""
        if self._postgres:
            return ids == any_(bindparam("among", list(values), type_=ARRAY(BigInteger)))
        return ids.in_(list(values))

    # -- claiming ------------------------------------------------------------------------

    def claim(
        self,
        now: datetime,
        worker: str,
        limit: int,
        lease_until: datetime,
        *,
        sms: bool | None = None,
    ) -> list[ClaimedMessage]:
        """Up to `limit` due messages, oldest first, now 'sending' under this worker's lease.

        sms True: only SMS; False: only the other channels; None: any channel.
        """
        if limit <= 0:
            return []
        due = (
            select(_messages.c.id)
            .where(
                _messages.c.status == "due",
                _messages.c.next_attempt_at <= now,
                _messages.c.due_at <= now,
            )
            # the (status, next_attempt_at) index gives this order: a claim reads `limit`
            # index entries, however long the queue (a tie-break on id would sort it all)
            .order_by(_messages.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if sms is not None:
            is_sms = _messages.c.channel == "sms"
            due = due.where(is_sms if sms else ~is_sms)
        messages = self._take(due, now, worker, lease_until, count_attempt=True)
        addressees = self._addressees({message.person_id for message in messages})
        return [ClaimedMessage(message, addressees[message.person_id]) for message in messages]

    def claim_expired_leases(
        self, now: datetime, worker: str, limit: int, lease_until: datetime
    ) -> list[OutboxMessage]:
        """Messages whose claimer vanished mid-send (lease run out), now under a new lease."""
        stale = (
            select(_messages.c.id)
            .where(_messages.c.status == "sending", _messages.c.lease_until < now)
            .order_by(_messages.c.lease_until, _messages.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self._take(stale, now, worker, lease_until, count_attempt=False)

    def renew_leases(
        self, message_ids: Iterable[int], worker: str, lease_until: datetime, now: datetime
    ) -> set[int]:
        """Extend this worker's leases on the messages it still holds to `lease_until`: the
        ids renewed. One whose lease another notifier's sweeper has taken (this worker was
        away past its lease) is not renewed, and this worker must not send it."""
        ids = list(message_ids)
        if not ids:
            return set()
        rows = self._session.execute(
            update(_messages)
            .where(
                self._among(_messages.c.id, ids),
                _messages.c.status == "sending",
                _messages.c.claimed_by == worker,
                _messages.c.lease_until >= now,
            )
            .values(lease_until=lease_until)
            .returning(_messages.c.id)
        ).all()
        return {row.id for row in rows}

    def _take(
        self,
        ids: Any,
        now: datetime,
        worker: str,
        lease_until: datetime,
        *,
        count_attempt: bool,
    ) -> list[OutboxMessage]:
        attempts = _messages.c.attempts + 1 if count_attempt else _messages.c.attempts
        rows = self._session.execute(
            update(_messages)
            .where(_messages.c.id.in_(ids.scalar_subquery()))
            .values(
                status="sending",
                lease_until=lease_until,
                claimed_by=worker,
                attempts=attempts,
                updated_at=now,
            )
            .returning(*_MESSAGE_COLUMNS)
        ).all()
        # RETURNING gives no order; keep the queue's
        return sorted((outbox_message(row) for row in rows), key=lambda m: (m.due_at, m.id))

    def _addressees(self, person_ids: set[int]) -> dict[int, Addressee]:
        if not person_ids:
            return {}
        latest = (
            select(RegimenRow.person_id, func.max(RegimenRow.version).label("version"))
            .where(self._among(RegimenRow.person_id, person_ids))
            .group_by(RegimenRow.person_id)
            .subquery()
        )
        # only the quiet windows leave the database, not the whole regimen
        quiet = (
            select(RegimenRow.person_id, RegimenRow.body[("person", "quiet")].label("quiet"))
            .join(
                latest,
                (latest.c.person_id == RegimenRow.person_id)
                & (latest.c.version == RegimenRow.version),
            )
            .subquery()
        )
        people = self._session.execute(
            select(
                PersonRow.id,
                PersonRow.opted_out,
                PersonRow.email,
                PersonRow.timezone,
                PersonRow.language,
                quiet.c.quiet,
            )
            .outerjoin(quiet, quiet.c.person_id == PersonRow.id)
            .where(self._among(PersonRow.id, person_ids))
        ).all()
        return {
            row.id: Addressee(
                row.id, row.opted_out, row.email, row.timezone, _windows(row.quiet), row.language
            )
            for row in people
        }

    # -- results -------------------------------------------------------------------------

    def mark_sent(self, sent: Sequence[SentRecord], now: datetime) -> None:
        """Store what the providers answered, each message its own answer, in one statement
        on PostgreSQL; an initial message sends its reminder to 'sent'."""
        if not sent:
            return
        if self._postgres:
            self._session.execute(_mark_sent_from_arrays(sent, now))
        else:
            self._mark_sent_each(sent, now)
        initial = [r.reminder_id for r in sent if r.purpose == "initial" and r.reminder_id]
        self._advance_reminders(initial, "sent", now)

    def _mark_sent_each(self, sent: Sequence[SentRecord], now: datetime) -> None:
        # SQLite: one prepared UPDATE run per row (executemany), all in this transaction
        self._session.execute(
            update(_messages)
            .where(_messages.c.id == bindparam("message_id"))
            .values(
                status="sent",
                channel=bindparam("sent_channel"),
                provider_id=bindparam("sent_provider_id"),
                segments=bindparam("sent_segments"),
                sent_at=now,
                lease_until=None,
                error_code=None,
                error_message=None,
                updated_at=now,
            ),
            [
                {
                    "message_id": record.message_id,
                    "sent_channel": record.channel,
                    "sent_provider_id": record.provider_id,
                    "sent_segments": record.segments,
                }
                for record in sent
            ],
        )

    def retry(
        self,
        message_id: int,
        next_attempt_at: datetime,
        error_code: str | None,
        error_message: str,
        now: datetime,
    ) -> None:
        self._session.execute(
            update(_messages)
            .where(_messages.c.id == message_id)
            .values(
                status="due",
                next_attempt_at=next_attempt_at,
                lease_until=None,
                error_code=error_code,
                error_message=error_message,
                updated_at=now,
            )
        )

    def defer(self, message_id: int, next_attempt_at: datetime, now: datetime) -> None:
        """Back to due without spending an attempt (quiet hours are not a failure)."""
        self._session.execute(
            update(_messages)
            .where(_messages.c.id == message_id)
            .values(
                status="due",
                next_attempt_at=next_attempt_at,
                lease_until=None,
                attempts=_messages.c.attempts - 1,
                updated_at=now,
            )
        )

    def hold(
        self, message_id: int, lease_until: datetime, error_code: str | None, error_message: str
    ) -> None:
        """Keep 'sending' until `lease_until`: the provider may have it, the sweeper will ask."""
        self._session.execute(
            update(_messages)
            .where(_messages.c.id == message_id)
            .values(lease_until=lease_until, error_code=error_code, error_message=error_message)
        )

    def finish(
        self,
        message: OutboxMessage,
        status: FinalStatus,
        error_code: str | None,
        error_message: str,
        now: datetime,
    ) -> None:
        self._session.execute(
            update(_messages)
            .where(_messages.c.id == message.id)
            .values(
                status=status,
                lease_until=None,
                error_code=error_code,
                error_message=error_message,
                updated_at=now,
            )
        )
        if status == "expired" and message.purpose == "initial" and message.reminder_id:
            self._advance_reminders([message.reminder_id], "expired", now)

    def _advance_reminders(self, reminder_ids: Iterable[int], status: str, now: datetime) -> None:
        ids = list(reminder_ids)
        if not ids:
            return
        # only from 'queued': a reply may already have confirmed or skipped the reminder
        self._session.execute(
            update(_reminders)
            .where(self._among(_reminders.c.id, ids), _reminders.c.status == "queued")
            .values(status=status, updated_at=now)
        )

    def add_fallback(
        self, message: OutboxMessage, recipient: str, purpose: str, now: datetime
    ) -> bool:
        """Queue `message`'s subject and body (the caller writes them as an e-mail) to
        `recipient` by e-mail, due now; False when that fallback already exists."""
        inserted = self._session.execute(
            insert_for(self._session, _messages)
            .values(
                reminder_id=message.reminder_id,
                person_id=message.person_id,
                channel="email",
                recipient=recipient,
                subject=message.subject,
                body=message.body,
                purpose=purpose,
                status="due",
                due_at=now,
                not_after=message.not_after,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["reminder_id", "purpose"])
        )
        return bool(cast(Any, inserted).rowcount)

    def opt_out(self, person_id: int, source: str, now: datetime) -> bool:
        """Mark the person opted out; False when they already were."""
        changed = self._session.execute(
            update(PersonRow)
            .where(PersonRow.id == person_id, PersonRow.opted_out.is_(False))
            .values(opted_out=True, updated_at=now)
        )
        if not cast(Any, changed).rowcount:
            return False
        self._session.add(OptOutRow(person_id=person_id, opted_out_at=now, source=source))
        self._session.flush()
        return True

    # -- rate limit ----------------------------------------------------------------------

    def free_send_slots(self, sender: str, second: int, rate: int) -> int:
        """How many of the `rate` sends `sender` has in `second` are still free.

        The slot row is locked (FOR UPDATE; BEGIN IMMEDIATE on SQLite) until the caller
        commits, so notifier processes taking slots at once never hand out more than `rate`.
        """
        self._session.execute(
            insert_for(self._session, _slots)
            .values(sender=sender, second=second, used=0)
            .on_conflict_do_nothing(index_elements=["sender", "second"])
        )
        used = self._session.execute(
            select(_slots.c.used)
            .where(_slots.c.sender == sender, _slots.c.second == second)
            .with_for_update()
        ).scalar_one()
        self._session.execute(
            delete(_slots).where(_slots.c.sender == sender, _slots.c.second < second - _SLOT_KEEP_S)
        )
        return max(0, rate - int(used))

    def use_send_slots(self, sender: str, second: int, count: int) -> None:
        """Count `count` sends against the slot free_send_slots locked in this transaction."""
        if count:
            self._session.execute(
                update(_slots)
                .where(_slots.c.sender == sender, _slots.c.second == second)
                .values(used=_slots.c.used + count)
            )


def _mark_sent_from_arrays(sent: Sequence[SentRecord], now: datetime) -> Any:
    """UPDATE ... FROM unnest(ids, channels, sids, segments): one statement for a whole batch
    whatever its size, so its compiled form is cached and PostgreSQL plans it once."""
    answers = (
        func.unnest(
            bindparam("ids", [r.message_id for r in sent], type_=ARRAY(BigInteger)),
            bindparam("channels", [r.channel for r in sent], type_=ARRAY(String)),
            bindparam("provider_ids", [r.provider_id for r in sent], type_=ARRAY(String)),
            bindparam("segments", [r.segments for r in sent], type_=ARRAY(Integer)),
        )
        .table_valued(
            column("id", BigInteger),
            column("channel", String),
            column("provider_id", String),
            column("segments", Integer),
        )
        .render_derived(name="answers", with_types=False)
    )
    return (
        update(_messages)
        .where(_messages.c.id == answers.c.id)
        .values(
            status="sent",
            channel=answers.c.channel,
            provider_id=answers.c.provider_id,
            segments=answers.c.segments,
            sent_at=now,
            lease_until=None,
            error_code=None,
            error_message=None,
            updated_at=now,
        )
    )


def outbox_message(row: Row[Any] | OutgoingMessageRow) -> OutboxMessage:
    """A row of outgoing_messages (a Core row or the ORM's) as the notifier sees it."""
    return OutboxMessage(
        id=row.id,
        reminder_id=row.reminder_id,
        person_id=row.person_id,
        channel=cast("MessageChannel", row.channel),
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        purpose=row.purpose,
        due_at=row.due_at,
        not_after=row.not_after,
        attempts=row.attempts,
    )


def _windows(raw: object) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    return [
        {"from": str(w["from"]), "to": str(w["to"])}
        for w in raw
        if isinstance(w, dict) and "from" in w and "to" in w
    ]
