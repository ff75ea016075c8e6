"""The repositories the use cases type against (services.ports), on one SQLAlchemy session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.ports import (
    Channel,
    PersonDetails,
    PersonRecord,
    PersonSummary,
    RegimenVersion,
    ReminderKind,
    ReminderPlan,
    ReminderRecord,
    ReminderStatus,
)
from store.models import PersonRow, RegimenRow, ReminderRow, metadata
from store.upsert import insert_for


class SqlPeople:
    def __init__(self, session: Session) -> None:
        self._session = session

    def by_phone(self, phone: str) -> PersonRecord | None:
        row = self._session.scalar(select(PersonRow).where(PersonRow.phone == phone))
        return None if row is None else person_record(row)

    def get(self, person_id: int) -> PersonRecord | None:
        row = self._session.get(PersonRow, person_id)
        return None if row is None else person_record(row)

    def add(self, details: PersonDetails, now: datetime) -> int:
        row = PersonRow(
            **asdict(details), active=True, opted_out=False, created_at=now, updated_at=now
        )
        self._session.add(row)
        self._session.flush()
        return row.id

    def update(self, person_id: int, details: PersonDetails, now: datetime) -> None:
        # enrolling again makes the person active; only the person can undo an opt-out
        self._session.execute(
            update(PersonRow)
            .where(PersonRow.id == person_id)
            .values(**asdict(details), active=True, updated_at=now)
        )

    def summaries(self) -> list[PersonSummary]:
        latest = (
            select(RegimenRow.person_id, func.max(RegimenRow.version).label("version"))
            .group_by(RegimenRow.person_id)
            .subquery()
        )
        rows = self._session.execute(
            select(PersonRow, latest.c.version)
            .outerjoin(latest, latest.c.person_id == PersonRow.id)
            .order_by(PersonRow.id)
        )
        return [PersonSummary(person_record(person), version) for person, version in rows]


def person_record(row: Any) -> PersonRecord:
    """A person from a PersonRow or any row with its columns (the tracker's Core queries)."""
    details = PersonDetails(
        name=row.name,
        phone=row.phone,
        email=row.email,
        channel=cast("Channel", row.channel),
        timezone=row.timezone,
        language=row.language,
    )
    return PersonRecord(row.id, details, active=row.active, opted_out=row.opted_out)


class SqlRegimens:
    def __init__(self, session: Session) -> None:
        self._session = session

    def current(self, person_id: int) -> RegimenVersion | None:
        row = self._session.scalar(
            select(RegimenRow)
            .where(RegimenRow.person_id == person_id)
            .order_by(RegimenRow.version.desc())
            .limit(1)
        )
        return None if row is None else _regimen(row)

    def add(self, person_id: int, body: dict[str, Any], now: datetime) -> RegimenVersion:
        # two enrolments racing for one version number: the unique key refuses the second
        latest = self._session.scalar(
            select(func.max(RegimenRow.version)).where(RegimenRow.person_id == person_id)
        )
        row = RegimenRow(person_id=person_id, version=(latest or 0) + 1, body=body, created_at=now)
        self._session.add(row)
        self._session.flush()
        return _regimen(row)


def _regimen(row: RegimenRow) -> RegimenVersion:
    return RegimenVersion(row.id, row.person_id, row.version, row.body, row.created_at)


# what re-planning may refresh in a reminder that has not gone out yet
_REPLANNED = (
    "kind",
    "items",
    "window_closes_at",
    "followup_due_at",
    "regimen_id",
    "cold_course_id",
)


class SqlReminders:
    def __init__(self, session: Session) -> None:
        self._session = session

    def upsert(self, plans: Sequence[ReminderPlan], now: datetime) -> None:
        """Make each planned reminder exist once; a reminder already under way is left alone."""
        if not plans:
            return
        # the Core table, not the entity: the ORM's bulk path costs more per row here
        statement = insert_for(self._session, metadata.tables["reminders"])
        statement = statement.on_conflict_do_update(
            index_elements=["person_id", "due_at", "slot_key"],
            set_={name: statement.excluded[name] for name in (*_REPLANNED, "updated_at")},
            where=ReminderRow.status == "planned",
        )
        # shallow copies: dataclasses.asdict deep-copies and doubles the cost of a big batch
        fixed = {"status": "planned", "created_at": now, "updated_at": now}
        rows = [{**vars(plan), **fixed} for plan in plans]
        self._session.execute(statement, rows)

    def between(self, person_id: int, start: datetime, end: datetime) -> list[ReminderRecord]:
        """The person's reminders due in [start, end), earliest first."""
        rows = self._session.scalars(
            select(ReminderRow)
            .where(
                ReminderRow.person_id == person_id,
                ReminderRow.due_at >= start,
                ReminderRow.due_at < end,
            )
            .order_by(ReminderRow.due_at, ReminderRow.slot_key)
        )
        return [_reminder(row) for row in rows]


def _reminder(row: ReminderRow) -> ReminderRecord:
    plan = reminder_plan(row)
    return ReminderRecord(row.id, plan, cast("ReminderStatus", row.status), row.confirmed_at)


def reminder_plan(row: ReminderRow) -> ReminderPlan:
    """The plan a reminder row was made from."""
    return ReminderPlan(
        person_id=row.person_id,
        slot_key=row.slot_key,
        kind=cast("ReminderKind", row.kind),
        due_at=row.due_at,
        window_closes_at=row.window_closes_at,
        items=row.items,
        followup_due_at=row.followup_due_at,
        regimen_id=row.regimen_id,
        cold_course_id=row.cold_course_id,
    )
