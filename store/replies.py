"""The tracker's repository (services.reply_ports.ReplyRepository) on one SQLAlchemy session.

Rows that an answer changes are read FOR UPDATE (a no-op on SQLite, whose BEGIN IMMEDIATE
already serialises writers), so two replies racing for one reminder settle one after the
other: the second finds it answered and moves on to the next open one, or to none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.reply_ports import (
    ColdCourseRecord,
    ConfirmToken,
    InboundReply,
    MessageRecord,
    OpenReminder,
    Outcome,
    OutcomeSource,
    StoredReply,
)
from store.models import (
    ColdCourseRow,
    ConfirmationRow,
    ConfirmTokenRow,
    InboundReplyRow,
    OptOutRow,
    OutgoingMessageRow,
    PersonRow,
    ReminderRow,
)
from store.upsert import insert_for

# a reminder takes an answer once it has gone out (queued: the notifier may be sending it)
OPEN_STATUSES = ("queued", "sent")


class SqlReplies:
    def __init__(self, session: Session) -> None:
        self._session = session

    def stored(self, provider_id: str) -> StoredReply | None:
        row = self._session.execute(
            select(InboundReplyRow.id, InboundReplyRow.kind, InboundReplyRow.answer).where(
                InboundReplyRow.provider_id == provider_id
            )
        ).first()
        return None if row is None else StoredReply(row.id, row.kind, row.answer)

    def claim(self, reply: InboundReply, now: datetime) -> int | None:
        """Store the reply unless its MessageSid is already there; its id, or None.

        ON CONFLICT DO NOTHING waits for a concurrent insert of the same sid to commit or roll
        back, so of two simultaneous deliveries exactly one claims the reply.
        """
        statement = (
            insert_for(self._session, InboundReplyRow)
            .values(
                provider_id=reply.provider_id,
                from_number=reply.from_number,
                body=reply.body,
                person_id=reply.person_id,
                kind=reply.kind,
                answer=None,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["provider_id"])
            .returning(InboundReplyRow.id)
        )
        return self._session.execute(statement).scalar_one_or_none()

    def set_answer(self, reply_id: int, kind: str, answer: str | None) -> None:
        self._session.execute(
            update(InboundReplyRow)
            .where(InboundReplyRow.id == reply_id)
            .values(kind=kind, answer=answer)
        )

    def open_reminder(self, person_id: int, now: datetime) -> OpenReminder | None:
        """The most recent reminder that went out, is due and whose window is still open."""
        row = self._session.scalar(
            select(ReminderRow)
            .where(
                ReminderRow.person_id == person_id,
                ReminderRow.status.in_(OPEN_STATUSES),
                ReminderRow.due_at <= now,
                ReminderRow.window_closes_at > now,
            )
            .order_by(ReminderRow.due_at.desc(), ReminderRow.id.desc())
            .limit(1)
            .with_for_update()
        )
        return None if row is None else _reminder(row)

    def reminder_for_update(self, reminder_id: int) -> OpenReminder | None:
        row = self._session.scalar(
            select(ReminderRow).where(ReminderRow.id == reminder_id).with_for_update()
        )
        return None if row is None else _reminder(row)

    def record_outcome(
        self,
        reminder: OpenReminder,
        outcome: Outcome,
        at: datetime,
        source: OutcomeSource,
        reply_id: int | None,
    ) -> None:
        self._session.execute(
            update(ReminderRow)
            .where(ReminderRow.id == reminder.id)
            .values(
                status="confirmed" if outcome == "taken" else "skipped",
                confirmed_at=at if outcome == "taken" else None,
                updated_at=at,
            )
        )
        self._session.add(
            ConfirmationRow(
                reminder_id=reminder.id,
                person_id=reminder.person_id,
                outcome=outcome,
                at=at,
                source=source,
                reply_id=reply_id,
            )
        )
        self._session.flush()

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
        return MessageRecord(row.id, row.reminder_id, row.person_id, row.status, row.error_code)

    def set_message_status(
        self, message_id: int, status: str, error_code: str | None, now: datetime
    ) -> None:
        values: dict[str, object] = {"status": status, "updated_at": now}
        if error_code is not None:
            values["error_code"] = error_code
        self._session.execute(
            update(OutgoingMessageRow).where(OutgoingMessageRow.id == message_id).values(values)
        )


def _reminder(row: ReminderRow) -> OpenReminder:
    return OpenReminder(row.id, row.person_id, row.items, row.due_at, row.status)
