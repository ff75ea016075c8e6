"""One use case, one transaction: the SQLAlchemy implementation of services.ports.UnitOfWork."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store.engine import url_for_humans
from store.errors import DatabaseUnavailable, TransactionAborted, first_line
from store.events import SqlEventLog
from store.outbox import SqlOutbox
from store.replies import SqlReplies
from store.repositories import SqlPeople, SqlRegimens, SqlReminders
from store.scheduling import SqlScheduling

# SQLSTATEs of a transaction the database aborted, not of a database that failed us: class 40
# (serialization failure, deadlock), lock_not_available (lock_timeout), query_canceled
# (statement_timeout)
_ABORTED_CLASS = "40"
_ABORTED_STATES = frozenset({"55P03", "57014"})


class SqlUnitOfWork:
    """`with uow:` opens a session; `commit()` keeps the work; leaving without it rolls back."""

    people: SqlPeople
    regimens: SqlRegimens
    reminders: SqlReminders
    events: SqlEventLog
    outbox: SqlOutbox
    replies: SqlReplies
    scheduling: SqlScheduling

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._session: Session | None = None

    def __enter__(self) -> Self:
        session = self._sessions()
        self._session = session
        self.people = SqlPeople(session)
        self.regimens = SqlRegimens(session)
        self.reminders = SqlReminders(session)
        self.events = SqlEventLog(session)
        self.outbox = SqlOutbox(session)
        self.replies = SqlReplies(session)
        self.scheduling = SqlScheduling(session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self._require_session(), None
        try:
            session.rollback()  # nothing left to undo after a commit
        except (OperationalError, InterfaceError) as error:
            exc = exc or error
        finally:
            session.close()
        if isinstance(exc, OperationalError) and _aborted(exc):
            raise TransactionAborted(f"transaction aborted: {first_line(exc)}") from exc
        if isinstance(exc, OperationalError | InterfaceError):
            # the connection failed or the database refused: one line for the caller
            where = url_for_humans(session.get_bind().engine.url)
            raise DatabaseUnavailable(f"database {where}: {first_line(exc)}") from exc

    def commit(self) -> None:
        """Keep the work; returns once it is on disk (see store.events on event writers)."""
        self._require_session()
        self.events.commit()

    def rollback(self) -> None:
        self._require_session()
        self.events.rollback()

    def _require_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return self._session


def _aborted(error: OperationalError) -> bool:
    """Whether the database aborted the transaction rather than failing us."""
    state = getattr(error.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_ABORTED_CLASS) or state in _ABORTED_STATES
    return "database is locked" in str(error.orig)  # SQLite's busy timeout ran out
