"""The scheduler's repository (services.scheduling_ports.SchedulingRepository) on one session.

Reminders and messages are written set-wise: the outbox and the reminders table carry unique
keys, so a re-run (or a second scheduler that slipped past the leader lock) inserts nothing
twice.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from services.ports import Channel, PersonDetails, ReminderKind, ReminderPlan, ReminderStatus
from services.scheduling_ports import (
    REMINDED_STATUSES,
    ColdCourseRecord,
    ConfirmToken,
    OutgoingMessage,
    Plannable,
    RemindedDose,
    ScheduledReminder,
)
from store.models import (
    ColdCourseRow,
    ConfirmTokenRow,
    OutgoingMessageRow,
    PersonRow,
    RegimenRow,
    ReminderRow,
    metadata,
)
from store.repositories import reminder_plan
from store.upsert import insert_for

# above this many rows PostgreSQL gets them by COPY, which is several times faster than VALUES
COPY_THRESHOLD = 2000

_PLAN_COLUMNS = (
    "person_id",
    "regimen_id",
    "cold_course_id",
    "slot_key",
    "kind",
    "items",
    "due_at",
    "window_closes_at",
    "followup_due_at",
)
# what re-planning may change in a reminder that has not gone out yet
_REPLANNED = (
    "kind",
    "items",
    "window_closes_at",
    "followup_due_at",
    "regimen_id",
    "cold_course_id",
)
# reminders that have not reached the notifier, so cancelling them stops them
_PENDING = ("planned", "queued")


class SqlScheduling:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def plannable(self, person_id: int | None = None) -> list[Plannable]:
        latest = (
            select(RegimenRow.person_id, func.max(RegimenRow.version).label("version"))
            .group_by(RegimenRow.person_id)
            .subquery()
        )
        query = (
            select(RegimenRow.person_id, RegimenRow.id, RegimenRow.body)
            .join(
                latest,
                and_(
                    latest.c.person_id == RegimenRow.person_id,
                    latest.c.version == RegimenRow.version,
                ),
            )
            .join(PersonRow, PersonRow.id == RegimenRow.person_id)
            .where(PersonRow.active.is_(True), PersonRow.opted_out.is_(False))
            .order_by(RegimenRow.person_id)
        )
        if person_id is not None:
            query = query.where(RegimenRow.person_id == person_id)
        return [Plannable(p, r, body) for p, r, body in self._session.execute(query)]

    def running_courses(
        self, now: datetime, person_id: int | None = None
    ) -> list[ColdCourseRecord]:
        query = select(ColdCourseRow).where(
            ColdCourseRow.ended_at.is_(None), ColdCourseRow.ends_at > now
        )
        if person_id is not None:
            query = query.where(ColdCourseRow.person_id == person_id)
        return [_course(row) for row in self._session.scalars(query.order_by(ColdCourseRow.id))]

    def course(self, course_id: int) -> ColdCourseRecord | None:
        row = self._session.get(ColdCourseRow, course_id)
        return None if row is None else _course(row)

    def reminded(self, since: datetime, person_id: int | None = None) -> list[RemindedDose]:
        query = select(
            ReminderRow.person_id,
            ReminderRow.slot_key,
            ReminderRow.kind,
            ReminderRow.due_at,
            ReminderRow.items,
        ).where(ReminderRow.status.in_(REMINDED_STATUSES), ReminderRow.due_at >= since)
        if person_id is not None:
            query = query.where(ReminderRow.person_id == person_id)
        rows = self._session.execute(query.order_by(ReminderRow.due_at, ReminderRow.id))
        return [
            RemindedDose(
                row.person_id, row.slot_key, cast("ReminderKind", row.kind), row.due_at, row.items
            )
            for row in rows
        ]

    def lozenges_given(self, person_id: int, since: datetime, before: datetime) -> list[datetime]:
        # a pending lozenge due after its course ended is cancelled once the scheduler reads
        # the ColdEnded (cancel_course_reminders): not given, even before it does
        to_be_cancelled = and_(
            ReminderRow.status.in_(_PENDING),
            ColdCourseRow.ended_at.is_not(None),
            ReminderRow.due_at >= ColdCourseRow.ended_at,
        )
        query = (
            select(ReminderRow.due_at)
            .join(ColdCourseRow, ColdCourseRow.id == ReminderRow.cold_course_id)
            .where(
                ReminderRow.person_id == person_id,
                ReminderRow.kind == "lozenge",
                ReminderRow.due_at >= since,
                ReminderRow.due_at < before,
                ReminderRow.status != "cancelled",
                ~to_be_cancelled,
            )
            .order_by(ReminderRow.due_at)
        )
        return list(self._session.scalars(query))

    def save_reminders(self, plans: Sequence[ReminderPlan], now: datetime) -> None:
        """Make each reminder exist once; refresh it only while it is planned (or cancelled:
        planning it again, after an opt-in or a regimen changed back, revives it)."""
        if not plans:
            return
        # rows in key order, whoever writes them (materialise, an event's re-plan): two
        # writers lock reminders in one order, so they wait for each other, never deadlock
        plans = sorted(plans, key=lambda plan: (plan.person_id, plan.due_at, plan.slot_key))
        if self._postgres and len(plans) > COPY_THRESHOLD:
            self._save_by_copy(plans, now)
            return
        statement = _upsert(insert_for(self._session, _reminders()))
        fixed = {"status": "planned", "created_at": now, "updated_at": now}
        self._session.execute(statement, [{**vars(plan), **fixed} for plan in plans])

    def _save_by_copy(self, plans: Sequence[ReminderPlan], now: datetime) -> None:
        connection = self._session.connection()
        connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE reminders_incoming (person_id integer, regimen_id integer,"
            " cold_course_id integer, slot_key varchar(64), kind varchar(8), items jsonb,"
            " due_at timestamptz, window_closes_at timestamptz, followup_due_at timestamptz)"
            " ON COMMIT DROP"
        )
        driver = connection.connection.driver_connection
        assert driver is not None
        columns = ", ".join(_PLAN_COLUMNS)
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY reminders_incoming ({columns}) FROM STDIN") as copy,
        ):
            # people who share a regimen share its items lists: encode each list once
            encoded: dict[int, str] = {}
            for plan in plans:
                items = encoded.get(id(plan.items))
                if items is None:
                    items = encoded[id(plan.items)] = json.dumps(plan.items)
                copy.write_row(
                    (
                        plan.person_id,
                        plan.regimen_id,
                        plan.cold_course_id,
                        plan.slot_key,
                        plan.kind,
                        items,
                        plan.due_at,
                        plan.window_closes_at,
                        plan.followup_due_at,
                    )
                )
        # one set-wise upsert from the staged rows; :now is a parameter, never NOW()
        connection.exec_driver_sql(
            f"INSERT INTO reminders ({columns}, status, created_at, updated_at)"
            f" SELECT {columns}, 'planned', %(now)s, %(now)s FROM reminders_incoming"
            " ORDER BY person_id, due_at, slot_key"
            " ON CONFLICT (person_id, due_at, slot_key) DO UPDATE SET "
            + ", ".join(f"{name} = EXCLUDED.{name}" for name in _REPLANNED)
            + ", status = 'planned', updated_at = EXCLUDED.updated_at"
            " WHERE reminders.status = 'cancelled' OR (reminders.status = 'planned' AND ("
            + " OR ".join(
                f"reminders.{name} IS DISTINCT FROM EXCLUDED.{name}" for name in _REPLANNED
            )
            + "))",
            {"now": now},
        )

    def cancel_planned_reminders_except(
        self, person_id: int, after: datetime, keep: Collection[tuple[datetime, str]], now: datetime
    ) -> int:
        rows = self._session.execute(
            select(ReminderRow.id, ReminderRow.due_at, ReminderRow.slot_key).where(
                ReminderRow.person_id == person_id,
                ReminderRow.status == "planned",
                ReminderRow.due_at >= after,
            )
        )
        wanted = set(keep)
        stale = [row.id for row in rows if (row.due_at, row.slot_key) not in wanted]
        self.set_status(stale, "cancelled", now)
        return len(stale)

    def cancel_course_reminders(self, course_id: int, after: datetime, now: datetime) -> int:
        ids = self._session.scalars(
            select(ReminderRow.id).where(
                ReminderRow.cold_course_id == course_id,
                ReminderRow.status.in_(_PENDING),
                ReminderRow.due_at >= after,
            )
        ).all()
        self._cancel_with_messages(ids, now)
        return len(ids)

    def cancel_pending(self, person_id: int, now: datetime) -> int:
        ids = self._session.scalars(
            select(ReminderRow.id).where(
                ReminderRow.person_id == person_id, ReminderRow.status.in_(_PENDING)
            )
        ).all()
        self._cancel_with_messages(ids, now)
        # follow-ups and snoozes of reminders already sent, and messages with no reminder
        self._session.execute(
            update(OutgoingMessageRow)
            .where(OutgoingMessageRow.person_id == person_id, OutgoingMessageRow.status == "due")
            .values(status="cancelled", updated_at=now)
        )
        return len(ids)

    def _cancel_with_messages(self, reminder_ids: Sequence[int], now: datetime) -> None:
        self.set_status(reminder_ids, "cancelled", now)
        for chunk in _chunks(reminder_ids):
            self._session.execute(
                update(OutgoingMessageRow)
                .where(
                    OutgoingMessageRow.reminder_id.in_(chunk), OutgoingMessageRow.status == "due"
                )
                .values(status="cancelled", updated_at=now)
            )

    def cancel_due_messages(
        self, reminder_id: int, now: datetime, purposes: Collection[str] | None = None
    ) -> int:
        statement = update(OutgoingMessageRow).where(
            OutgoingMessageRow.reminder_id == reminder_id, OutgoingMessageRow.status == "due"
        )
        if purposes is not None:
            statement = statement.where(OutgoingMessageRow.purpose.in_(purposes))
        result = self._session.execute(statement.values(status="cancelled", updated_at=now))
        return cast("int", getattr(result, "rowcount", 0))

    def reminder(self, reminder_id: int) -> ScheduledReminder | None:
        row = self._session.execute(
            select(ReminderRow, PersonRow)
            .join(PersonRow, PersonRow.id == ReminderRow.person_id)
            .where(ReminderRow.id == reminder_id)
        ).first()
        return None if row is None else _scheduled(*row)

    def message_purposes(self, reminder_id: int) -> list[str]:
        return list(
            self._session.scalars(
                select(OutgoingMessageRow.purpose).where(
                    OutgoingMessageRow.reminder_id == reminder_id
                )
            )
        )

    def due_reminders(self, now: datetime, limit: int) -> list[ScheduledReminder]:
        return self._with_people(
            ReminderRow.status == "planned", ReminderRow.due_at <= now, limit=limit
        )

    def followups_due(self, now: datetime, limit: int) -> list[ScheduledReminder]:
        # one follow-up each: a reminder that has one (or was snoozed) is not picked again
        answered_otherwise = select(OutgoingMessageRow.id).where(
            OutgoingMessageRow.reminder_id == ReminderRow.id,
            or_(
                OutgoingMessageRow.purpose == "followup",
                OutgoingMessageRow.purpose.like("snooze-%"),
            ),
        )
        return self._with_people(
            ReminderRow.status == "sent",
            ReminderRow.followup_due_at <= now,
            ReminderRow.window_closes_at > now,
            ~answered_otherwise.exists(),
            limit=limit,
        )

    def _with_people(self, *conditions: Any, limit: int) -> list[ScheduledReminder]:
        rows = self._session.execute(
            select(ReminderRow, PersonRow)
            .join(PersonRow, PersonRow.id == ReminderRow.person_id)
            .where(*conditions, PersonRow.active.is_(True), PersonRow.opted_out.is_(False))
            .order_by(ReminderRow.due_at, ReminderRow.id)
            .limit(limit)
        )
        return [_scheduled(reminder, person) for reminder, person in rows]

    def add_messages(self, messages: Sequence[OutgoingMessage], now: datetime) -> None:
        if not messages:
            return
        statement = insert_for(self._session, OutgoingMessageRow).on_conflict_do_nothing(
            index_elements=["reminder_id", "purpose"]
        )
        fixed = {
            "status": "due",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        rows = [
            {**vars(message), **fixed, "next_attempt_at": message.due_at} for message in messages
        ]
        self._session.execute(statement, rows)

    def add_confirm_tokens(self, tokens: Sequence[ConfirmToken]) -> None:
        if tokens:
            self._session.execute(insert(ConfirmTokenRow), [vars(token) for token in tokens])

    def set_status(
        self, reminder_ids: Sequence[int], status: ReminderStatus, now: datetime
    ) -> None:
        for chunk in _chunks(reminder_ids):
            self._session.execute(
                update(ReminderRow)
                .where(ReminderRow.id.in_(chunk))
                .values(status=status, updated_at=now)
            )

    def close_windows(self, now: datetime) -> int:
        """Sent and unanswered when the window closed: missed; never sent: expired. Their
        messages still due are cancelled: the dose takes no answer any more."""
        closed = 0
        transitions: tuple[tuple[ReminderStatus, ReminderStatus], ...] = (
            ("sent", "missed"),
            ("queued", "expired"),
        )
        for before, after in transitions:
            ids = self._session.scalars(
                select(ReminderRow.id).where(
                    ReminderRow.status == before, ReminderRow.window_closes_at <= now
                )
            ).all()
            for chunk in _chunks(ids):
                # still `before`: a late TAKEN may have confirmed one since it was selected
                self._session.execute(
                    update(ReminderRow)
                    .where(ReminderRow.id.in_(chunk), ReminderRow.status == before)
                    .values(status=after, updated_at=now)
                )
            for chunk in _chunks(ids):
                self._session.execute(
                    update(OutgoingMessageRow)
                    .where(
                        OutgoingMessageRow.reminder_id.in_(chunk),
                        OutgoingMessageRow.status == "due",
                    )
                    .values(status="cancelled", updated_at=now)
                )
            closed += len(ids)
        return closed


def _reminders() -> Table:
    return metadata.tables["reminders"]


def _upsert(statement: Any) -> Any:
    table = _reminders()
    excluded = statement.excluded
    changed = or_(*[table.c[name].is_distinct_from(excluded[name]) for name in _REPLANNED])
    return statement.on_conflict_do_update(
        index_elements=["person_id", "due_at", "slot_key"],
        set_={
            **{name: excluded[name] for name in _REPLANNED},
            "status": "planned",
            "updated_at": excluded["updated_at"],
        },
        # an unchanged planned row is not rewritten: re-materialising every few minutes
        # leaves no dead rows behind on PostgreSQL
        where=or_(table.c.status == "cancelled", and_(table.c.status == "planned", changed)),
    )


def _chunks(ids: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _course(row: ColdCourseRow) -> ColdCourseRecord:
    return ColdCourseRecord(row.id, row.person_id, row.onset_at, row.ends_at, row.ended_at)


def _scheduled(row: ReminderRow, person: PersonRow) -> ScheduledReminder:
    plan = reminder_plan(row)
    details = PersonDetails(
        person.name,
        person.phone,
        person.email,
        cast("Channel", person.channel),
        person.timezone,
        person.language,
    )
    return ScheduledReminder(row.id, plan, cast("ReminderStatus", row.status), details)
