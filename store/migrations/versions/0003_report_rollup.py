"""The adherence report's rollup: per person and local date, per supplement, and the queue
of days to refresh, filled by triggers on reminders and outgoing messages.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTS = ("planned", "sent", "on_time", "late", "skipped", "missed", "expired", "pending")
DAY_EXTRAS = ("iron_taken", "iron_broken", "delivered", "failed", "email_fallback")

# what a reminder's measures are read from; a change of anything else leaves the day as it is
REMINDER_COLUMNS = (
    "person_id",
    "slot_key",
    "kind",
    "status",
    "items",
    "due_at",
    "confirmed_at",
    "regimen_id",
)
# message statuses the measures count (sent, delivered, failed); `due`/`sending` count nothing
COUNTED_MESSAGE = "('sent', 'delivered', 'failed')"

_POSTGRESQL_FUNCTIONS = f"""
CREATE FUNCTION report_mark_reminders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT person_id, substr(slot_key, 1, 10) FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT person_id, substr(slot_key, 1, 10) FROM old_rows;
    ELSE
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT k.person_id, k.day
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.person_id, substr(o.slot_key, 1, 10)),
                                   (n.person_id, substr(n.slot_key, 1, 10))) AS k(person_id, day)
        WHERE ({", ".join(f"o.{c}" for c in REMINDER_COLUMNS)})
              IS DISTINCT FROM ({", ".join(f"n.{c}" for c in REMINDER_COLUMNS)});
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_mark_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT r.person_id, substr(r.slot_key, 1, 10)
        FROM new_rows m JOIN reminders r ON r.id = m.reminder_id
        WHERE m.status IN {COUNTED_MESSAGE} OR m.purpose LIKE '%-email';
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT r.person_id, substr(r.slot_key, 1, 10)
        FROM old_rows m JOIN reminders r ON r.id = m.reminder_id;
    ELSE
        INSERT INTO report_dirty_days (person_id, day)
        SELECT DISTINCT r.person_id, substr(r.slot_key, 1, 10)
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN reminders r ON r.id IN (o.reminder_id, n.reminder_id)
        WHERE (o.reminder_id, o.purpose) IS DISTINCT FROM (n.reminder_id, n.purpose)
           OR (o.status IS DISTINCT FROM n.status
               AND (o.status IN {COUNTED_MESSAGE} OR n.status IN {COUNTED_MESSAGE}));
    END IF;
    RETURN NULL;
END $$;
"""


def _postgresql_triggers() -> list[str]:
    """Statement-level triggers with transition tables: a batch update of 500 reminders
    queues its days in one INSERT, not 500."""
    statements = []
    for table, function in (
        ("reminders", "report_mark_reminders"),
        ("outgoing_messages", "report_mark_messages"),
    ):
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            statements.append(
                f"CREATE TRIGGER {function}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    return statements


def _sqlite_triggers() -> list[str]:
    """SQLite has row-level triggers only; WHEN keeps the unchanged rows out."""
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in REMINDER_COLUMNS)
    old_day = "SELECT OLD.person_id, substr(OLD.slot_key, 1, 10)"
    new_day = "SELECT NEW.person_id, substr(NEW.slot_key, 1, 10)"
    mark = "INSERT INTO report_dirty_days (person_id, day)"

    def day_of(reminder: str) -> str:
        return (
            f"{mark} SELECT person_id, substr(slot_key, 1, 10) FROM reminders "
            f"WHERE id = {reminder};"
        )

    return [
        f"CREATE TRIGGER report_mark_reminders_insert AFTER INSERT ON reminders "
        f"BEGIN {mark} {new_day}; END",
        f"CREATE TRIGGER report_mark_reminders_update AFTER UPDATE ON reminders "
        f"WHEN {changed} BEGIN {mark} {old_day} UNION {new_day}; END",
        f"CREATE TRIGGER report_mark_reminders_delete AFTER DELETE ON reminders "
        f"BEGIN {mark} {old_day}; END",
        f"CREATE TRIGGER report_mark_messages_insert AFTER INSERT ON outgoing_messages "
        f"WHEN NEW.status IN {COUNTED_MESSAGE} OR NEW.purpose LIKE '%-email' "
        f"BEGIN {day_of('NEW.reminder_id')} END",
        f"CREATE TRIGGER report_mark_messages_update AFTER UPDATE ON outgoing_messages "
        f"WHEN OLD.reminder_id IS NOT NEW.reminder_id OR OLD.purpose IS NOT NEW.purpose "
        f"OR (OLD.status IS NOT NEW.status AND (OLD.status IN {COUNTED_MESSAGE} "
        f"OR NEW.status IN {COUNTED_MESSAGE})) "
        f"BEGIN {day_of('OLD.reminder_id')} {day_of('NEW.reminder_id')} END",
        f"CREATE TRIGGER report_mark_messages_delete AFTER DELETE ON outgoing_messages "
        f"BEGIN {day_of('OLD.reminder_id')} END",
    ]


def _counts(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        *_counts(*COUNTS, *DAY_EXTRAS),
        sa.PrimaryKeyConstraint("person_id", "day", name="pk_report_days"),
    )
    op.create_table(
        "report_supplement_days",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("supplement", sa.String(64), nullable=False),
        *_counts(*COUNTS),
        sa.PrimaryKeyConstraint("person_id", "day", "supplement", name="pk_report_supplement_days"),
    )
    op.create_table(
        "report_dirty_days",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report_dirty_days"),
    )
    op.create_index("ix_report_dirty_days_person_id_day", "report_dirty_days", ["person_id", "day"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRESQL_FUNCTIONS)
        for statement in _postgresql_triggers():
            op.execute(statement)
    else:
        for statement in _sqlite_triggers():
            op.execute(statement)
    # every day already there is queued: the rollup is built by the refresh, not here
    op.execute(
        "INSERT INTO report_dirty_days (person_id, day) "
        "SELECT DISTINCT person_id, substr(slot_key, 1, 10) FROM reminders"
    )


def downgrade() -> None:
    for table, function in (
        ("reminders", "report_mark_reminders"),
        ("outgoing_messages", "report_mark_messages"),
    ):
        for event in ("insert", "update", "delete"):
            op.execute(
                f"DROP TRIGGER IF EXISTS {function}_{event}"
                + (f" ON {table}" if op.get_bind().dialect.name == "postgresql" else "")
            )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION report_mark_reminders()")
        op.execute("DROP FUNCTION report_mark_messages()")
    op.drop_index("ix_report_dirty_days_person_id_day", table_name="report_dirty_days")
    op.drop_table("report_dirty_days")
    op.drop_table("report_supplement_days")
    op.drop_table("report_days")
