"""Enrolling a person with a regimen, and listing who is enrolled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.regimen import Regimen
from services.clock import require_aware
from services.ports import Event, PersonDetails, PersonSummary, UnitOfWork

Outcome = Literal["enrolled", "new_version", "unchanged"]


@dataclass(frozen=True)
class Enrolment:
    person_id: int
    version: int
    outcome: Outcome


def enrol_person(uow: UnitOfWork, regimen: Regimen, now: datetime) -> Enrolment:
    """Add the person (known by phone) or a new regimen version; the same regimen again is a no-op.

    A new version is announced with a RegimenChanged event in the same transaction, so the
    scheduler re-plans exactly when the change is committed.
    """
    require_aware(now)
    details = PersonDetails.from_regimen(regimen)
    body = regimen.model_dump(mode="json")
    with uow:
        known = uow.people.by_phone(details.phone)
        if known is None:
            person_id = uow.people.add(details, now)
        else:
            person_id = known.id
            uow.people.update(person_id, details, now)
        current = uow.regimens.current(person_id)
        if current is not None and current.body == body:
            uow.commit()
            return Enrolment(person_id, current.version, "unchanged")
        added = uow.regimens.add(person_id, body, now)
        uow.events.append(
            Event(
                type="RegimenChanged",
                person_id=person_id,
                occurred_at=now,
                payload={"regimen_id": added.id, "version": added.version},
            )
        )
        uow.commit()
    return Enrolment(person_id, added.version, "enrolled" if known is None else "new_version")


def list_people(uow: UnitOfWork) -> list[PersonSummary]:
    with uow:
        return uow.people.summaries()
