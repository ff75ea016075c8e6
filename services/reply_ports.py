"""What the tracker's use cases need from the database, beyond services.ports.

Kept in its own module so that the replies port can grow without touching the shared one;
services.ports only names it on the unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # services.ports imports this module
    from services.ports import OutboxMessage, PersonRecord

Outcome = Literal["taken", "skipped"]
OutcomeSource = Literal["sms", "email"]


@dataclass(frozen=True)
class InboundReply:
    """An SMS as Twilio delivered it, with what it was read as."""

    provider_id: str
    from_number: str
    body: str
    kind: str


@dataclass(frozen=True)
class ReplyClaim:
    """One reply to claim (ReplyRepository.claim), at `now`."""

    reply: InboundReply
    now: datetime
    with_open_reminder: bool = False


@dataclass(frozen=True)
class StoredReply:
    id: int
    kind: str
    answer: str | None


# a reminder takes an answer once it has gone out (queued: the notifier may be sending it)
ANSWERABLE_STATUSES = ("queued", "sent")


@dataclass(frozen=True)
class OpenReminder:
    """A reminder as a reply finds it: one that still takes an answer, or (recent_reminders)
    one of the person's recent ones, which a late TAKEN may confirm."""

    id: int
    person_id: int
    items: list[dict[str, Any]]
    due_at: datetime
    status: str
    window_closes_at: datetime  # after it the dose takes no answer, and no snooze is sent
    # an outcome (taken, skipped) is recorded for it, whatever its status says
    answered: bool = False


@dataclass(frozen=True)
class ClaimedReply:
    """A reply stored for the first time, the person whose phone sent it (if any) and, when
    asked for, that person's open reminder, locked for this transaction (see open_reminder)."""

    id: int
    person: PersonRecord | None
    open_reminder: OpenReminder | None = None


@dataclass(frozen=True)
class ColdCourseRecord:
    id: int
    person_id: int
    onset_at: datetime
    ends_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class ConfirmToken:
    id: int
    reminder_id: int
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class MessageRecord:
    """An outgoing message as a status callback finds it; `outbox` is the same message as the
    notifier sees it, which an e-mail fallback of it is made from."""

    id: int
    reminder_id: int | None
    person_id: int
    status: str
    error_code: str | None
    outbox: OutboxMessage


class ReplyRepository(Protocol):
    # inbound replies: the MessageSid is the idempotency key
    def stored(self, provider_id: str) -> StoredReply | None: ...

    def claim(
        self, reply: InboundReply, now: datetime, *, with_open_reminder: bool = False
    ) -> ClaimedReply | None: ...

    def claim_together(self, claims: Sequence[ReplyClaim]) -> list[ClaimedReply | None]:
        """Each as claim would, in order, in one round trip where the store can: for replies
        whose claims do not depend on each other (different senders)."""
        ...

    def set_answer(self, reply_id: int, kind: str, answer: str | None) -> None: ...

    def limit_lock_waits(self, seconds: float) -> None:
        """Abort the transaction (StoreConflict) when it waits for a row lock longer."""
        ...

    # reminders and their outcomes
    def open_reminder(self, person_id: int, now: datetime) -> OpenReminder | None: ...

    def reminder_for_update(self, reminder_id: int) -> OpenReminder | None: ...

    def recent_reminders(
        self, person_id: int, since: datetime, now: datetime
    ) -> list[OpenReminder]:
        """The person's reminders due after `since` and up to `now`, newest first, whatever
        their status but cancelled, each saying whether an outcome is recorded for it; not
        locked."""
        ...

    def record_outcome(
        self,
        reminder: OpenReminder,
        outcome: Outcome,
        at: datetime,
        source: OutcomeSource,
        reply_id: int | None,
        taken_at: datetime | None = None,
    ) -> None:
        """The reminder's outcome, recorded at `at`; a dose taken at `taken_at` (when the
        person says so) rather than `at`."""
        ...

    # opting out and in
    def opt_out(self, person_id: int, source: str, now: datetime) -> bool: ...

    def stopped_while_unknown(
        self, phone: str, excluding_reply: int | None = None
    ) -> datetime | None:
        """When the number, while no one enrolled had it, last said STOP without a START (or a
        YES, START's meaning right after STOP) after it; None when it did not (or said START
        since). `excluding_reply`: a reply of this transaction not to count."""
        ...

    def opt_in(self, person_id: int, now: datetime) -> bool: ...

    # cold courses
    def running_cold_course(self, person_id: int, now: datetime) -> ColdCourseRecord | None: ...

    def start_cold_course(self, person_id: int, onset_at: datetime, ends_at: datetime) -> int: ...

    def end_cold_course(self, cold_course_id: int, now: datetime) -> None: ...

    # e-mail confirm links
    def confirm_token(self, token_hash: str) -> ConfirmToken | None: ...

    def use_confirm_token(self, token_id: int, now: datetime) -> None: ...

    # delivery status callbacks
    def message_by_provider_id(self, provider_id: str) -> MessageRecord | None: ...

    def set_message_status(
        self, message_id: int, status: str, error_code: str | None, now: datetime
    ) -> None: ...
