"""The event log in transaction order: each event keeps the id of the transaction that wrote
it, and a consumer's cursor is (transaction, event id), so writers no longer queue on a lock
(store.events).

Events already there keep transaction 0 and cursors start at transaction 0, so an event a
consumer had not read yet is read first, in id order as before.

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

# the writing transaction's id (xid8: 64 bits with the epoch, so it never wraps) as bigint
_WRITER = "CAST(CAST(pg_current_xact_id() AS text) AS bigint)"


def upgrade() -> None:
    op.add_column("events", sa.Column("tx", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "tx", server_default=sa.text(_WRITER))
    op.create_index("ix_events_tx_id", "events", ["tx", "id"])
    op.add_column(
        "event_cursors",
        sa.Column("last_tx", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table
    with op.batch_alter_table("event_cursors") as batch:
        batch.drop_column("last_tx")
    op.drop_index("ix_events_tx_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("tx")
