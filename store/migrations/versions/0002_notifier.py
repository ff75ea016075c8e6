"""The notifier: the console channel on the outbox, and per-second send slots per sender.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_CHANNELS = "channel IN ('sms', 'email')"
_NEW_CHANNELS = "channel IN ('sms', 'email', 'console')"


def _channels(check: str) -> None:
    # batch mode: SQLite can only change a CHECK constraint by copying the table
    with op.batch_alter_table("outgoing_messages") as batch:
        batch.drop_constraint("ck_outgoing_messages_channel", type_="check")
        batch.create_check_constraint("ck_outgoing_messages_channel", check)


def upgrade() -> None:
    _channels(_NEW_CHANNELS)
    op.create_table(
        "send_rate_slots",
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("second", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sender", "second", name="pk_send_rate_slots"),
    )


def downgrade() -> None:
    op.drop_table("send_rate_slots")
    op.execute("UPDATE outgoing_messages SET channel = 'sms' WHERE channel = 'console'")
    _channels(_OLD_CHANNELS)
