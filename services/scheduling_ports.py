"""What the scheduler's use cases need from the database beyond services.ports.

Kept apart from services.ports so the scheduler's values and its repository Protocol change
without touching the file every service edits; the unit of work exposes it as `scheduling`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.ports import Channel, PersonDetails, ReminderKind, ReminderPlan, ReminderStatus

# a reminder in one of these has reached the person (or is on its way): its dose is theirs to
# answer, and planning again must not remind them of it a second time
REMINDED_STATUSES = ("queued", "sent", "confirmed", "skipped", "missed")


@dataclass(frozen=True)
class Plannable:
    """An active, opted-in person with a regimen: whom the scheduler plans for."""

    person_id: int
    regimen_id: int
    body: dict[str, Any]


@dataclass(frozen=True)
class ColdCourseRecord:
    id: int
    person_id: int
    onset_at: datetime
    ends_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class ScheduledReminder:
    """A stored reminder with the person it goes to."""

    id: int
    plan: ReminderPlan
    status: ReminderStatus
    person: PersonDetails


@dataclass(frozen=True)
class RemindedDose:
    """A stored reminder that went out (REMINDED_STATUSES): which doses of its day it stood for."""

    person_id: int
    slot_key: str
    kind: ReminderKind
    due_at: datetime
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class OutgoingMessage:
    """A row of the outbox for the notifier; unique on (reminder_id, purpose)."""

    reminder_id: int | None
    person_id: int
    channel: Channel
    recipient: str
    subject: str | None
    body: str
    purpose: str
    due_at: datetime
    not_after: datetime | None


@dataclass(frozen=True)
class ConfirmToken:
    """A confirm link's token as stored: only its SHA-256 hash."""

    token_hash: str
    reminder_id: int
    expires_at: datetime


class SchedulingRepository(Protocol):
    def plannable(self, person_id: int | None = None) -> list[Plannable]: ...

    def running_courses(
        self, now: datetime, person_id: int | None = None
    ) -> list[ColdCourseRecord]: ...

    def course(self, course_id: int) -> ColdCourseRecord | None: ...

    def reminded(self, since: datetime, person_id: int | None = None) -> list[RemindedDose]:
        """Reminders due at or after `since` that went out (REMINDED_STATUSES), by due time."""
        ...

    def lozenges_given(self, person_id: int, since: datetime, before: datetime) -> list[datetime]:
        """The due instants, in order, of the person's lozenge reminders due in [since,
        before): given once due, whatever their status became (it changes after a new onset,
        which must not move the new course's lozenges), unless cancelled, or waiting to be
        because their course ended before them."""
        ...

    def save_reminders(self, plans: Sequence[ReminderPlan], now: datetime) -> None: ...

    def cancel_planned_reminders_except(
        self, person_id: int, after: datetime, keep: Collection[tuple[datetime, str]], now: datetime
    ) -> int: ...

    def cancel_course_reminders(self, course_id: int, after: datetime, now: datetime) -> int: ...

    def cancel_pending(self, person_id: int, now: datetime) -> int: ...

    def cancel_due_messages(
        self, reminder_id: int, now: datetime, purposes: Collection[str] | None = None
    ) -> int: ...

    def reminder(self, reminder_id: int) -> ScheduledReminder | None: ...

    def message_purposes(self, reminder_id: int) -> list[str]: ...

    def due_reminders(self, now: datetime, limit: int) -> list[ScheduledReminder]: ...

    def followups_due(self, now: datetime, limit: int) -> list[ScheduledReminder]: ...

    def add_messages(self, messages: Sequence[OutgoingMessage], now: datetime) -> None: ...

    def add_confirm_tokens(self, tokens: Sequence[ConfirmToken]) -> None: ...

    def set_status(
        self, reminder_ids: Sequence[int], status: ReminderStatus, now: datetime
    ) -> None: ...

    def close_windows(self, now: datetime) -> int: ...
