"""The composition root: settings from the environment become an engine and units of work.

Only here (and in the command modules it serves) do the store's errors become UserErrors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dosewise.errors import UserError
from dosewise.settings import Settings
from services.ports import UnitOfWork
from store.engine import create_engine, session_factory
from store.errors import StoreError
from store.migrate import require_current
from store.unit_of_work import SqlUnitOfWork

UnitOfWorkFactory = Callable[[], UnitOfWork]


def load_settings() -> Settings:
    try:
        return Settings.from_environment()
    except ValueError as error:
        raise UserError(str(error)) from None


@contextmanager
def store_errors_as_user_errors() -> Iterator[None]:
    try:
        yield
    except StoreError as error:
        raise UserError(str(error)) from None


@contextmanager
def database(settings: Settings) -> Iterator[UnitOfWorkFactory]:
    """Units of work on the configured database, which must already have the current schema."""
    with store_errors_as_user_errors():
        engine = create_engine(settings.database_url)
        try:
            require_current(engine)
            sessions = session_factory(engine)
            yield lambda: SqlUnitOfWork(sessions)
        finally:
            engine.dispose()
