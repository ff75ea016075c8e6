"""Enrolling people on the real store: versions, events, and what is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.regimen import Regimen
from services.enrolment import enrol_person, list_people
from services.ports import RecordedEvent
from store.unit_of_work import SqlUnitOfWork

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def regimen(phone: str = "+4520123456", iron: str = "18 mg", **person: Any) -> Regimen:
    return Regimen.model_validate(
        {
            "person": {"name": "Ana Jensen", "phone": phone, "timezone": "Europe/Copenhagen"}
            | person,
            "supplements": [
                {"name": "iron", "dose": iron, "deficiency_confirmed": True},
                {"name": "vitamin C", "dose": "250 mg"},
            ],
        }
    )


def events(unit_of_work: UnitOfWorkFactory) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    with unit_of_work() as uow:
        uow.events.consume("test", seen.append)
        uow.commit()
    return seen


def test_a_new_person_gets_version_one_and_an_event(unit_of_work: UnitOfWorkFactory) -> None:
    enrolment = enrol_person(unit_of_work(), regimen(), NOW)
    assert (enrolment.version, enrolment.outcome) == (1, "enrolled")
    [changed] = events(unit_of_work)
    assert changed.event.type == "RegimenChanged"
    assert changed.event.person_id == enrolment.person_id
    assert changed.event.payload["version"] == 1
    with unit_of_work() as uow:
        current = uow.regimens.current(enrolment.person_id)
    assert current is not None
    assert current.regimen() == regimen()
    assert current.created_at == NOW


def test_a_changed_regimen_makes_a_new_version(unit_of_work: UnitOfWorkFactory) -> None:
    first = enrol_person(unit_of_work(), regimen(), NOW)
    second = enrol_person(unit_of_work(), regimen(iron="9 mg", channel="sms"), NOW)
    assert second.person_id == first.person_id
    assert (second.version, second.outcome) == (2, "new_version")
    assert [seen.event.payload["version"] for seen in events(unit_of_work)] == [1, 2]
    [summary] = list_people(unit_of_work())
    assert summary.regimen_version == 2


def test_the_same_regimen_again_changes_nothing(unit_of_work: UnitOfWorkFactory) -> None:
    enrol_person(unit_of_work(), regimen(), NOW)
    again = enrol_person(unit_of_work(), regimen(), NOW)
    assert (again.version, again.outcome) == (1, "unchanged")
    assert len(events(unit_of_work)) == 1


def test_people_are_listed_with_their_details(unit_of_work: UnitOfWorkFactory) -> None:
    enrol_person(unit_of_work(), regimen(), NOW)
    enrol_person(unit_of_work(), regimen("+4520123457", email="bo@example.com"), NOW)
    people = list_people(unit_of_work())
    assert [summary.person.details.phone for summary in people] == ["+4520123456", "+4520123457"]
    assert people[1].person.details.email == "bo@example.com"
    assert all(summary.person.active and not summary.person.opted_out for summary in people)


def test_a_naive_now_is_refused_and_nothing_written(unit_of_work: UnitOfWorkFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        enrol_person(unit_of_work(), regimen(), datetime(2026, 11, 23, 9, 0))
    assert list_people(unit_of_work()) == []
