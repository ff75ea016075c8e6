"""The language a person reads: every text they are sent is in it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "people", sa.Column("language", sa.String(8), nullable=False, server_default="en")
    )


def downgrade() -> None:
    with op.batch_alter_table("people") as people:
        people.drop_column("language")
