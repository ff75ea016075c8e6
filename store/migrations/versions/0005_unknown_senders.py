"""An index of the replies from numbers that were not enrolled, so that enrolling a number
finds a STOP it sent before (partial: replies from enrolled people are not in it).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNKNOWN_SENDER = sa.text("person_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_inbound_replies_unknown_sender",
        "inbound_replies",
        ["from_number", "received_at"],
        postgresql_where=_UNKNOWN_SENDER,
        sqlite_where=_UNKNOWN_SENDER,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_replies_unknown_sender", table_name="inbound_replies")
