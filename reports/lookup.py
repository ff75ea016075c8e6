"""The report for everyone, or for one person named by id or phone number as an admin types
it (the command line's --person, the admin API's person=)."""

from __future__ import annotations

from datetime import date, datetime

from reports.adherence import AdherenceReport
from reports.ports import AdherenceQueries, PersonRef
from schemas.regimen import check_phone


class UnknownPerson(LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no person with id or phone {ref!r}")


def adherence_for(
    queries: AdherenceQueries, start: date, end: date, now: datetime, person: str | None
) -> AdherenceReport:
    """The report over the local dates [start, end]; UnknownPerson when `person` names nobody."""
    person_id = None
    if person is not None:
        found = queries.find_person(person) or _by_phone_as_typed(queries, person)
        if found is None:
            raise UnknownPerson(person)
        person_id = found.id
    return queries.report(start, end, now, person_id)


def _by_phone_as_typed(queries: AdherenceQueries, ref: str) -> PersonRef | None:
    """'+1 415 555 0123' finds the person enrolled as +14155550123, as enrolment wrote it."""
    try:
        phone = check_phone(ref.strip())
    except ValueError:
        return None
    return queries.find_person(phone)
