"""Schema migrations, run from code: `dosewise db upgrade` needs no alembic.ini.

A new revision, after changing store/models.py (then tidy it by hand):
    python -c "from alembic import command; from store.migrate import alembic_config;
    command.revision(alembic_config('sqlite:///scratch.db'), 'what changed', autogenerate=True,
    rev_id='0002')"   # on a scratch database upgraded to the previous head
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from store.engine import create_engine, url_for_humans
from store.errors import DatabaseUnavailable, SchemaNotCurrent, first_line

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # ConfigParser reads % as interpolation; a password may hold one
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def upgrade(url: str, revision: str = "head") -> str:
    """Create or migrate the schema at `url`; the revision it is at afterwards."""
    engine = create_engine(url)
    try:
        _refuse_unknown_revision(engine)
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(engine) or "base"
    except DBAPIError as error:
        raise DatabaseUnavailable(f"database {url_for_humans(url)}: {first_line(error)}") from None
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """Refuse a database whose schema is missing or older than this program's. A SQLite file
    that is not there is refused before connecting, which would leave an empty file behind."""
    if _missing_sqlite_file(engine):
        raise SchemaNotCurrent(
            f"database {url_for_humans(engine.url)} does not exist yet:"
            " run `dosewise db upgrade` to create it"
        )
    try:
        current = current_revision(engine)
    except DBAPIError as error:
        where = url_for_humans(engine.url)
        raise DatabaseUnavailable(f"database {where}: {first_line(error)}") from None
    _refuse_unknown_revision(engine, current)
    if current != head_revision():
        state = "has no schema" if current is None else f"has schema revision {current}"
        raise SchemaNotCurrent(
            f"database {url_for_humans(engine.url)} {state}, not {head_revision()}:"
            " run `dosewise db upgrade`"
        )


def _missing_sqlite_file(engine: Engine) -> bool:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return False
    path = url.database
    return path is not None and path not in ("", ":memory:") and not Path(path).exists()


def _refuse_unknown_revision(engine: Engine, current: str | None = None) -> None:
    """A revision none of our migrations made (a newer dosewise's, say): `db upgrade` cannot
    help, and must not touch it."""
    current = current or current_revision(engine)
    if current is None:
        return
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaNotCurrent(
            f"database {url_for_humans(engine.url)} has schema revision {current}, which this "
            f"dosewise (schema {head_revision()}) does not know: it was made by another, "
            "probably newer, version of dosewise; nothing was changed"
        )
