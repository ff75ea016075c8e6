"""What the use cases need from the database, as Protocols, and the values that cross them.

The store implements these; the use cases are typed against them only, so they know no SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from schemas.regimen import Regimen
from services.reply_ports import ReplyRepository

if TYPE_CHECKING:  # scheduling_ports imports this module's values
    from services.scheduling_ports import SchedulingRepository

Channel = Literal["sms", "email"]
ReminderKind = Literal["dose", "lozenge"]
ReminderStatus = Literal[
    "planned", "queued", "sent", "confirmed", "skipped", "missed", "cancelled", "expired"
]
EventType = Literal[
    "ReplyReceived",
    "DoseConfirmed",
    "DoseSkipped",
    "Snoozed",
    "ColdOnset",
    "ColdEnded",
    "RegimenChanged",
    "OptedOut",
    "OptedIn",
    "DeliveryFailed",
]


@dataclass(frozen=True)
class PersonDetails:
    """Who a person is and how to reach them, as a regimen file states it."""

    name: str
    phone: str
    email: str | None
    channel: Channel
    timezone: str
    language: str = "en"  # every text the person sees is in it

    @classmethod
    def from_regimen(cls, regimen: Regimen) -> PersonDetails:
        person = regimen.person
        return cls(
            person.name,
            person.phone,
            person.email,
            person.channel,
            person.timezone,
            person.language,
        )


@dataclass(frozen=True)
class PersonRecord:
    id: int
    details: PersonDetails
    active: bool
    opted_out: bool


@dataclass(frozen=True)
class PersonSummary:
    """A line of `dosewise people list`."""

    person: PersonRecord
    regimen_version: int | None


@dataclass(frozen=True)
class RegimenVersion:
    id: int
    person_id: int
    version: int
    body: dict[str, Any]
    created_at: datetime

    def regimen(self) -> Regimen:
        return Regimen.model_validate(self.body)


@dataclass(frozen=True)
class ReminderPlan:
    """A reminder the scheduler wants to exist; (person_id, due_at, slot_key) names it."""

    person_id: int
    slot_key: str
    kind: ReminderKind
    due_at: datetime
    window_closes_at: datetime
    items: list[dict[str, Any]]
    followup_due_at: datetime | None = None
    regimen_id: int | None = None
    cold_course_id: int | None = None


@dataclass(frozen=True)
class ReminderRecord:
    id: int
    plan: ReminderPlan
    status: ReminderStatus
    confirmed_at: datetime | None


@dataclass(frozen=True)
class Event:
    """A domain event to append; the payload is plain JSON (instants as ISO text)."""

    type: EventType
    person_id: int | None
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the log holds it: ids grow in the order the events were committed."""

    id: int
    event: Event


EventHandler = Callable[[RecordedEvent], None]


class StoreUnusable(Exception):
    """The database cannot be used (a store error derives from this): the same for every use
    case, not the fault of the one that met it. A lost connection may be one of a pool's,
    which a fresh connection does not share."""


class StoreConflict(Exception):
    """The database aborted this transaction (a deadlock, a lock or statement timeout, a
    serialization failure; a store error derives from this): the same work, tried again,
    may well succeed."""


class PeopleRepository(Protocol):
    def by_phone(self, phone: str) -> PersonRecord | None: ...

    def get(self, person_id: int) -> PersonRecord | None: ...

    def add(self, details: PersonDetails, now: datetime) -> int: ...

    def update(self, person_id: int, details: PersonDetails, now: datetime) -> None: ...

    def summaries(self) -> list[PersonSummary]: ...


class RegimenRepository(Protocol):
    def current(self, person_id: int) -> RegimenVersion | None: ...

    def add(self, person_id: int, body: dict[str, Any], now: datetime) -> RegimenVersion: ...


class ReminderRepository(Protocol):
    def upsert(self, plans: Sequence[ReminderPlan], now: datetime) -> None: ...

    def between(self, person_id: int, start: datetime, end: datetime) -> list[ReminderRecord]: ...


class EventLog(Protocol):
    def append(self, event: Event) -> None: ...

    def append_many(self, events: Sequence[Event]) -> None: ...

    def consume(self, consumer: str, handler: EventHandler, limit: int = 100) -> int: ...


class UnitOfWork(Protocol):
    """One transaction: `with uow:` begins it, `uow.commit()` keeps it, leaving rolls back."""

    @property
    def people(self) -> PeopleRepository: ...

    @property
    def regimens(self) -> RegimenRepository: ...

    @property
    def reminders(self) -> ReminderRepository: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def replies(self) -> ReplyRepository: ...

    @property
    def scheduling(self) -> SchedulingRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


# -- the outbox (the notifier's side of outgoing_messages) -----------------------------------

MessageChannel = Literal["sms", "email", "console"]
FinalStatus = Literal["failed", "expired", "cancelled"]


@dataclass(frozen=True)
class OutboxMessage:
    """An outgoing message as the notifier claimed it (attempts counts this claim)."""

    id: int
    reminder_id: int | None
    person_id: int
    channel: MessageChannel
    recipient: str
    subject: str | None
    body: str
    purpose: str
    due_at: datetime
    not_after: datetime | None
    attempts: int


@dataclass(frozen=True)
class Addressee:
    """What the notifier checks again at send time: opt-out, quiet hours, an e-mail fallback.

    `quiet` is the current regimen's quiet windows as the file states them ({"from", "to"}).
    """

    person_id: int
    opted_out: bool
    email: str | None
    timezone: str
    quiet: list[dict[str, str]]
    language: str = "en"


@dataclass(frozen=True)
class ClaimedMessage:
    message: OutboxMessage
    addressee: Addressee


@dataclass(frozen=True)
class SentRecord:
    """A message a provider accepted: what to store right after the call."""

    message_id: int
    reminder_id: int | None
    purpose: str
    channel: MessageChannel
    provider_id: str
    segments: int | None


class OutboxRepository(Protocol):
    def claim(
        self,
        now: datetime,
        worker: str,
        limit: int,
        lease_until: datetime,
        *,
        sms: bool | None = None,
    ) -> list[ClaimedMessage]: ...

    def claim_expired_leases(
        self, now: datetime, worker: str, limit: int, lease_until: datetime
    ) -> list[OutboxMessage]: ...

    def renew_leases(
        self, message_ids: Iterable[int], worker: str, lease_until: datetime, now: datetime
    ) -> set[int]: ...

    def mark_sent(self, sent: Sequence[SentRecord], now: datetime) -> None: ...

    def retry(
        self,
        message_id: int,
        next_attempt_at: datetime,
        error_code: str | None,
        error_message: str,
        now: datetime,
    ) -> None: ...

    def defer(self, message_id: int, next_attempt_at: datetime, now: datetime) -> None: ...

    def hold(
        self, message_id: int, lease_until: datetime, error_code: str | None, error_message: str
    ) -> None: ...

    def finish(
        self,
        message: OutboxMessage,
        status: FinalStatus,
        error_code: str | None,
        error_message: str,
        now: datetime,
    ) -> None: ...

    def add_fallback(
        self, message: OutboxMessage, recipient: str, purpose: str, now: datetime
    ) -> bool: ...

    def opt_out(self, person_id: int, source: str, now: datetime) -> bool: ...

    def free_send_slots(self, sender: str, second: int, rate: int) -> int: ...

    def use_send_slots(self, sender: str, second: int, count: int) -> None: ...
