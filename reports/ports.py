"""What the report needs from the database: a read model, apart from the units of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from reports.adherence import AdherenceReport


@dataclass(frozen=True)
class PersonRef:
    id: int
    name: str
    phone: str


class AdherenceQueries(Protocol):
    def find_person(self, ref: str) -> PersonRef | None:
        """A person by id (digits) or by phone number."""
        ...

    def report(
        self, start: date, end: date, now: datetime, person_id: int | None = None
    ) -> AdherenceReport:
        """The report over the local dates [start, end] for everyone or one person."""
        ...
