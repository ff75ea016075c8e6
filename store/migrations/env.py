"""Alembic's entry point. `store.migrate` hands it an open connection; `alembic` on the command
line (for writing a new revision) gives it `sqlalchemy.url` instead."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from store.engine import create_engine
from store.models import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite alters a table by copying it; batch mode writes that for later revisions
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as opened:
            run_migrations(opened)
    finally:
        engine.dispose()


main()
