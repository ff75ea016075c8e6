"""The shared database: one table per thing the services hand each other.

Every instant is a UTCDateTime and every time stamp is written from the `now` a use case is
given: no column has a server-side clock default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ports import EventType, ReminderKind, ReminderStatus
from store.types import BigId, Json, UTCDateTime

# stable constraint names, so migrations can refer to them on both databases
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHANNELS = ("sms", "email")
# a message sent on the console channel (no credentials) is recorded as sent there
MESSAGE_CHANNELS = (*CHANNELS, "console")
REMINDER_KINDS = get_args(ReminderKind)
REMINDER_STATUSES = get_args(ReminderStatus)
MESSAGE_STATUSES = ("due", "sending", "sent", "delivered", "failed", "expired", "cancelled")
OUTCOMES = ("taken", "skipped")
EVENT_TYPES = get_args(EventType)


def one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: Json}


metadata = Base.metadata


class PersonRow(Base):
    __tablename__ = "people"
    __table_args__ = (CheckConstraint(one_of("channel", CHANNELS), name="channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RegimenRow(Base):
    """One version of a person's regimen; a change adds a row, never edits one."""

    __tablename__ = "regimens"
    __table_args__ = (UniqueConstraint("person_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ColdCourseRow(Base):
    __tablename__ = "cold_courses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    onset_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class ReminderRow(Base):
    """One reminder: a person, a slot of their plan and the instant it is due."""

    __tablename__ = "reminders"
    __table_args__ = (
        # re-planning the same slot finds the row that is already there
        UniqueConstraint("person_id", "due_at", "slot_key"),
        CheckConstraint(one_of("kind", REMINDER_KINDS), name="kind"),
        CheckConstraint(one_of("status", REMINDER_STATUSES), name="status"),
        Index("ix_reminders_status_due_at", "status", "due_at"),
        Index("ix_reminders_status_followup_due_at", "status", "followup_due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    regimen_id: Mapped[int | None] = mapped_column(ForeignKey("regimens.id"))
    cold_course_id: Mapped[int | None] = mapped_column(ForeignKey("cold_courses.id"))
    slot_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    items: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    due_at: Mapped[datetime]
    window_closes_at: Mapped[datetime]
    followup_due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12), default="planned")
    confirmed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OutgoingMessageRow(Base):
    """The outbox: what the notifier is to send, and what became of it."""

    __tablename__ = "outgoing_messages"
    __table_args__ = (
        # one message per reminder and purpose (NULL reminder ids never collide)
        UniqueConstraint("reminder_id", "purpose"),
        CheckConstraint(one_of("channel", MESSAGE_CHANNELS), name="channel"),
        CheckConstraint(one_of("status", MESSAGE_STATUSES), name="status"),
        Index("ix_outgoing_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12), default="due")
    due_at: Mapped[datetime]
    not_after: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    segments: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundReplyRow(Base):
    __tablename__ = "inbound_replies"
    __table_args__ = (
        # what numbers that were not enrolled said (a STOP is honoured when they are): small,
        # and never written by a reply from someone enrolled
        Index(
            "ix_inbound_replies_unknown_sender",
            "from_number",
            "received_at",
            postgresql_where=text("person_id IS NULL"),
            sqlite_where=text("person_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Twilio's MessageSid: a redelivered webhook finds its reply already stored
    provider_id: Mapped[str] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    answer: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]


class ConfirmationRow(Base):
    __tablename__ = "confirmations"
    __table_args__ = (
        CheckConstraint(one_of("outcome", OUTCOMES), name="outcome"),
        Index("ix_confirmations_person_id_at", "person_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # a reminder has one outcome; a second "TAKEN" belongs to another reminder
    reminder_id: Mapped[int] = mapped_column(ForeignKey("reminders.id"), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    outcome: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_replies.id"))


class OptOutRow(Base):
    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    opted_out_at: Mapped[datetime]
    opted_in_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(16))


class ConfirmTokenRow(Base):
    __tablename__ = "confirm_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # only a hash is kept, so a database dump holds no usable links
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reminder_id: Mapped[int] = mapped_column(ForeignKey("reminders.id"))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class EventRow(Base):
    """The append-only event log; consumers read it in id order past their cursor."""

    __tablename__ = "events"
    __table_args__ = (CheckConstraint(one_of("type", EVENT_TYPES), name="type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]


class EventCursorRow(Base):
    __tablename__ = "event_cursors"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class SendRateSlotRow(Base):
    """Messages one sender may still send in one wall-clock second, shared by all notifiers."""

    __tablename__ = "send_rate_slots"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    second: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class AdminSessionRow(Base):
    """A dashboard session: the hash of its random id and the admin token's fingerprint
    (services.admin_sessions)."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class AdminSignInFailureRow(Base):
    """A wrong admin token, by client address: what limits sign-in attempts."""

    __tablename__ = "admin_sign_in_failures"
    __table_args__ = (Index("ix_admin_sign_in_failures_client_failed_at", "client", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime]


class AdminAuditRow(Base):
    """Who did what as the admin, and when; no health data."""

    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    who: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(80))
    person_id: Mapped[int | None] = mapped_column(BigInteger)


# -- the adherence report's rollup (derived from reminders and messages; see store.reports) --
# No foreign keys: these rows are rebuilt from `reminders` whenever a day changes, and the
# triggers that queue changed days run inside other writers' transactions, so they stay cheap.


class _DoseCounts:
    """The dose measures every report rollup table holds (summed from reminders)."""

    planned: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    on_time: Mapped[int] = mapped_column(Integer)
    late: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    missed: Mapped[int] = mapped_column(Integer)
    expired: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)


class _DayCounts:
    """The measures of a person's whole day: iron timing and deliveries."""

    iron_taken: Mapped[int] = mapped_column(Integer)
    iron_broken: Mapped[int] = mapped_column(Integer)  # taken without the iron gap
    delivered: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    email_fallback: Mapped[int] = mapped_column(Integer)


class ReportDayRow(_DoseCounts, _DayCounts, Base):
    """One person's dose and delivery measures on one local date (the plan's day)."""

    __tablename__ = "report_days"
    __table_args__ = (Index("ix_report_days_day", "day"),)

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD


class ReportSupplementDayRow(_DoseCounts, Base):
    """One person's dose measures of one supplement on one local date."""

    __tablename__ = "report_supplement_days"
    __table_args__ = (Index("ix_report_supplement_days_day", "day"),)

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    supplement: Mapped[str] = mapped_column(String(64), primary_key=True)


class ReportDirtyDayRow(Base):
    """A (person, local date) whose rollup rows may be out of date: written by triggers on
    `reminders` and `outgoing_messages`, consumed by the rollup refresh."""

    __tablename__ = "report_dirty_days"
    __table_args__ = (Index("ix_report_dirty_days_person_id_day", "person_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[str] = mapped_column(String(10))


class ReportWeekRow(_DoseCounts, _DayCounts, Base):
    """The sums of a person's report_days rows of one week (`week`: its Monday), and the
    streak flag of each day in 4 bits at 4 x (days since Monday)."""

    __tablename__ = "report_weeks"

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    week: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, a Monday
    flags: Mapped[int] = mapped_column(BigInteger)


class ReportSupplementWeekRow(_DoseCounts, Base):
    """The sums of a person's report_supplement_days rows of one week and supplement."""

    __tablename__ = "report_supplement_weeks"

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    week: Mapped[str] = mapped_column(String(10), primary_key=True)
    supplement: Mapped[str] = mapped_column(String(64), primary_key=True)
