"""Is the database there, with our schema? For /healthz."""

from __future__ import annotations

from services.ports import UnitOfWork

# no person has this id: the query proves the database answers and has the people table
_NOBODY = -1


def check_database(uow: UnitOfWork) -> None:
    """Returns when a read succeeds; raises whatever the store raises when it does not."""
    with uow:
        uow.people.get(_NOBODY)
