"""The adherence report's rollup by week (Monday to Sunday): a long window reads a row per
person and week (and per supplement) instead of seven, and the day rows' dates are indexed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("planned", "sent", "on_time", "late", "skipped", "missed", "expired", "pending")
DAY_EXTRAS = ("iron_taken", "iron_broken", "delivered", "failed", "email_fallback")


def _counts(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "report_weeks",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(10), nullable=False),
        *_counts(*COUNTS, *DAY_EXTRAS),
        sa.Column("flags", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "week", name="pk_report_weeks"),
    )
    op.create_table(
        "report_supplement_weeks",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(10), nullable=False),
        sa.Column("supplement", sa.String(64), nullable=False),
        *_counts(*COUNTS),
        sa.PrimaryKeyConstraint(
            "person_id", "week", "supplement", name="pk_report_supplement_weeks"
        ),
    )
    # a window's edge days are found by date, not read from a scan of every day
    op.create_index("ix_report_days_day", "report_days", ["day"])
    op.create_index("ix_report_supplement_days_day", "report_supplement_days", ["day"])
    # the weeks are sums of the day rows: queue every day already rolled up, so the next
    # refresh rebuilds its week too
    op.execute(
        "INSERT INTO report_dirty_days (person_id, day) SELECT person_id, day FROM report_days"
    )


def downgrade() -> None:
    op.drop_index("ix_report_supplement_days_day", table_name="report_supplement_days")
    op.drop_index("ix_report_days_day", table_name="report_days")
    op.drop_table("report_supplement_weeks")
    op.drop_table("report_weeks")
