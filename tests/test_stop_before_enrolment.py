"""A number that said STOP before it was enrolled is enrolled opted out, until it says START."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from services.enrolment import enrol_person
from services.replies import InboundSms, receive_sms
from store.models import InboundReplyRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import event_types, person_regimen

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PHONE = "+4520111222"

# the answers to a number no one enrolled, in English (the words of every language read so)
NOT_ENROLLED = "This number is not enrolled with dosewise, so nothing was recorded."
NOT_ENROLLED_START = (
    "This number is not enrolled with dosewise. Noted: if it is enrolled, it will get "
    "dosewise reminders."
)


def _say(unit_of_work: UnitOfWorkFactory, words: str, at: datetime, phone: str = PHONE) -> str:
    sms = InboundSms(f"SM{uuid.uuid4().hex}", phone, words)
    return receive_sms(unit_of_work(), sms, at).text or ""


def _opted_out(unit_of_work: UnitOfWorkFactory, phone: str = PHONE) -> bool:
    with unit_of_work() as uow:
        person = uow.people.by_phone(phone)
    assert person is not None
    return person.opted_out


def test_a_stop_before_enrolment_enrols_the_number_opted_out(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    assert _say(unit_of_work, "STOP", NOW - timedelta(days=3)) == ""  # no answer to a STOP
    enrolment = enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert enrolment.outcome == "enrolled"
    assert any(
        "replied STOP on 2026-11-28, before it was enrolled" in warning
        and "until it replies START" in warning
        for warning in enrolment.warnings
    )
    assert _opted_out(unit_of_work)
    assert event_types(engine)[-2:] == ["OptedOut", "RegimenChanged"]
    # nothing is sent to it, not even an answer, until START
    assert _say(unit_of_work, "TAKEN", NOW + timedelta(minutes=1)) == ""
    assert "resume" in _say(unit_of_work, "START", NOW + timedelta(minutes=2))
    assert not _opted_out(unit_of_work)


def test_a_start_after_the_stop_lifts_it(unit_of_work: UnitOfWorkFactory) -> None:
    _say(unit_of_work, "STOP", NOW - timedelta(days=3))
    _say(unit_of_work, "START", NOW - timedelta(days=2))
    enrolment = enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert enrolment.warnings == ()
    assert not _opted_out(unit_of_work)


def test_a_stop_again_after_a_start_counts(unit_of_work: UnitOfWorkFactory) -> None:
    for days_ago, words in ((5, "STOP"), (4, "START"), (3, "unsubscribe")):
        _say(unit_of_work, words, NOW - timedelta(days=days_ago))
    enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert _opted_out(unit_of_work)


def test_other_numbers_and_other_words_do_not_count(unit_of_work: UnitOfWorkFactory) -> None:
    _say(unit_of_work, "STOP", NOW - timedelta(days=1), phone="+4520999888")
    _say(unit_of_work, "HELP", NOW - timedelta(days=1))
    _say(unit_of_work, "TAKEN", NOW - timedelta(hours=1))
    enrolment = enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert enrolment.warnings == ()
    assert not _opted_out(unit_of_work)


def test_a_stop_from_an_enrolled_person_is_theirs_not_the_next_enrolment(
    unit_of_work: UnitOfWorkFactory,
) -> None:
    enrol_person(unit_of_work(), person_regimen(PHONE), NOW - timedelta(days=10))
    _say(unit_of_work, "STOP", NOW - timedelta(days=3))
    assert _opted_out(unit_of_work)
    # a new regimen for the same person: their own opt-out stands, no second one is recorded
    again = enrol_person(unit_of_work(), person_regimen(PHONE, timezone="Europe/Berlin"), NOW)
    assert again.outcome == "new_version"
    assert again.warnings == ()
    assert _opted_out(unit_of_work)


def test_yes_after_the_stop_is_a_start_and_lifts_it(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    _say(unit_of_work, "STOP", NOW - timedelta(days=3))
    answer = _say(unit_of_work, "YES", NOW - timedelta(days=2))
    assert "nothing was recorded" not in answer
    assert answer == NOT_ENROLLED_START
    assert _kinds(engine) == ["stop", "start"]
    enrolment = enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert enrolment.warnings == ()
    assert not _opted_out(unit_of_work)


def test_a_yes_stored_after_the_stop_before_yes_was_read_as_start_lifts_it(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    # rows as the tracker wrote them before: the YES after the STOP kept as "yes"
    for days_ago, kind in ((3, "stop"), (2, "yes")):
        with Session(engine) as session:
            session.add(
                InboundReplyRow(
                    provider_id=f"SM{uuid.uuid4().hex}",
                    from_number=PHONE,
                    body=kind.upper(),
                    kind=kind,
                    received_at=NOW - timedelta(days=days_ago),
                )
            )
            session.commit()
    enrol_person(unit_of_work(), person_regimen(PHONE), NOW)
    assert not _opted_out(unit_of_work)


def test_start_and_yes_from_an_unknown_number_are_answered_truthfully(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    # START is kept for whoever enrols the number: something was recorded
    assert _say(unit_of_work, "START", NOW - timedelta(days=1)) == NOT_ENROLLED_START
    # YES with no STOP before it is a confirmation, and there is nothing to confirm
    assert _say(unit_of_work, "yes", NOW) == NOT_ENROLLED
    assert _kinds(engine) == ["start", "yes"]


def _kinds(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(InboundReplyRow.kind)
                .where(InboundReplyRow.from_number == PHONE)
                .order_by(InboundReplyRow.received_at)
            )
        )
