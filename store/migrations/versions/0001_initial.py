"""The initial schema: people, regimens, reminders, the outbox, replies and the event log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the column types of store.types, spelled out so this revision never changes under us
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def instant(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def foreign_key(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        instant("created_at"),
        instant("updated_at"),
        sa.CheckConstraint("channel IN ('sms', 'email')", name="ck_people_channel"),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("phone", name="uq_people_phone"),
    )
    op.create_table(
        "regimens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", JSON, nullable=False),
        instant("created_at"),
        foreign_key("regimens", "person_id", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_regimens"),
        sa.UniqueConstraint("person_id", "version", name="uq_regimens_person_id_version"),
    )
    op.create_table(
        "cold_courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        instant("onset_at"),
        instant("ends_at"),
        instant("ended_at", nullable=True),
        foreign_key("cold_courses", "person_id", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_cold_courses"),
    )
    op.create_index("ix_cold_courses_person_id", "cold_courses", ["person_id"])
    op.create_table(
        "reminders",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("regimen_id", sa.Integer(), nullable=True),
        sa.Column("cold_course_id", sa.Integer(), nullable=True),
        sa.Column("slot_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("items", JSON, nullable=False),
        instant("due_at"),
        instant("window_closes_at"),
        instant("followup_due_at", nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        instant("confirmed_at", nullable=True),
        instant("created_at"),
        instant("updated_at"),
        sa.CheckConstraint("kind IN ('dose', 'lozenge')", name="ck_reminders_kind"),
        sa.CheckConstraint(
            "status IN ('planned', 'queued', 'sent', 'confirmed', 'skipped', 'missed',"
            " 'cancelled', 'expired')",
            name="ck_reminders_status",
        ),
        foreign_key("reminders", "person_id", "people"),
        foreign_key("reminders", "regimen_id", "regimens"),
        foreign_key("reminders", "cold_course_id", "cold_courses"),
        sa.PrimaryKeyConstraint("id", name="pk_reminders"),
        sa.UniqueConstraint(
            "person_id", "due_at", "slot_key", name="uq_reminders_person_id_due_at_slot_key"
        ),
    )
    op.create_index("ix_reminders_status_due_at", "reminders", ["status", "due_at"])
    op.create_index(
        "ix_reminders_status_followup_due_at", "reminders", ["status", "followup_due_at"]
    )
    op.create_table(
        "outgoing_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("reminder_id", BIG_ID, nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        instant("due_at"),
        instant("not_after", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        instant("next_attempt_at"),
        instant("lease_until", nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("provider_id", sa.String(64), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        instant("sent_at", nullable=True),
        instant("created_at"),
        instant("updated_at"),
        sa.CheckConstraint("channel IN ('sms', 'email')", name="ck_outgoing_messages_channel"),
        sa.CheckConstraint(
            "status IN ('due', 'sending', 'sent', 'delivered', 'failed', 'expired', 'cancelled')",
            name="ck_outgoing_messages_status",
        ),
        foreign_key("outgoing_messages", "person_id", "people"),
        foreign_key("outgoing_messages", "reminder_id", "reminders"),
        sa.PrimaryKeyConstraint("id", name="pk_outgoing_messages"),
        sa.UniqueConstraint(
            "reminder_id", "purpose", name="uq_outgoing_messages_reminder_id_purpose"
        ),
    )
    op.create_index("ix_outgoing_messages_provider_id", "outgoing_messages", ["provider_id"])
    op.create_index(
        "ix_outgoing_messages_status_next_attempt_at",
        "outgoing_messages",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "inbound_replies",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False),
        sa.Column("from_number", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        instant("received_at"),
        foreign_key("inbound_replies", "person_id", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_replies"),
        sa.UniqueConstraint("provider_id", name="uq_inbound_replies_provider_id"),
    )
    op.create_index("ix_inbound_replies_person_id", "inbound_replies", ["person_id"])
    op.create_table(
        "confirmations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("reminder_id", BIG_ID, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        instant("at"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reply_id", BIG_ID, nullable=True),
        sa.CheckConstraint("outcome IN ('taken', 'skipped')", name="ck_confirmations_outcome"),
        foreign_key("confirmations", "person_id", "people"),
        foreign_key("confirmations", "reminder_id", "reminders"),
        foreign_key("confirmations", "reply_id", "inbound_replies"),
        sa.PrimaryKeyConstraint("id", name="pk_confirmations"),
        sa.UniqueConstraint("reminder_id", name="uq_confirmations_reminder_id"),
    )
    op.create_index("ix_confirmations_person_id_at", "confirmations", ["person_id", "at"])
    op.create_table(
        "opt_outs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        instant("opted_out_at"),
        instant("opted_in_at", nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        foreign_key("opt_outs", "person_id", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_opt_outs"),
    )
    op.create_index("ix_opt_outs_person_id", "opt_outs", ["person_id"])
    op.create_table(
        "confirm_tokens",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("reminder_id", BIG_ID, nullable=False),
        instant("expires_at"),
        instant("used_at", nullable=True),
        foreign_key("confirm_tokens", "reminder_id", "reminders"),
        sa.PrimaryKeyConstraint("id", name="pk_confirm_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_confirm_tokens_token_hash"),
    )
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        instant("occurred_at"),
        sa.CheckConstraint(
            "type IN ('ReplyReceived', 'DoseConfirmed', 'DoseSkipped', 'Snoozed', 'ColdOnset',"
            " 'ColdEnded', 'RegimenChanged', 'OptedOut', 'OptedIn', 'DeliveryFailed')",
            name="ck_events_type",
        ),
        foreign_key("events", "person_id", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name="pk_event_cursors"),
    )


def downgrade() -> None:
    for table in (
        "event_cursors",
        "events",
        "confirm_tokens",
        "opt_outs",
        "confirmations",
        "inbound_replies",
        "outgoing_messages",
        "reminders",
        "cold_courses",
        "regimens",
        "people",
    ):
        op.drop_table(table)
