"""Enrolling a person with a regimen, and listing who is enrolled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import phonenumbers
from babel.languages import get_official_languages

from planner.cold_course import course_policy_warnings
from planner.day import plan_day
from planner.plan import DayPlan, PlanRefused
from schemas.languages import LANGUAGES
from schemas.regimen import Regimen
from services.clock import require_aware
from services.ports import Event, PersonDetails, PersonSummary, UnitOfWork
from services.replies import OPT_OUT_SOURCE_SMS, opt_out

Outcome = Literal["enrolled", "new_version", "unchanged"]

# a regimen is enrolled only when the planner can plan each of the person's next days: one it
# refuses would get no reminders at all, with only the scheduler's log to say why
DAYS_PLANNED_BEFORE_ENROLMENT = 7


@dataclass(frozen=True)
class Enrolment:
    person_id: int
    version: int
    outcome: Outcome
    warnings: tuple[str, ...] = ()  # the plan's warnings for the person's first day
    # the file set no language, but the phone's country reads another one dosewise writes
    language_hint: LanguageHint | None = None


@dataclass(frozen=True)
class LanguageHint:
    """The person's phone is of `region` (ISO 3166, "DK"), where people read `language`
    ("da"), and the regimen file left their language at the default."""

    region: str
    language: str


class EnrolmentRefused(Exception):
    """The regimen was not enrolled, and nothing was written."""


class UnplannableRegimen(EnrolmentRefused):
    def __init__(self, day: date, refusal: PlanRefused) -> None:
        super().__init__(f"the plan for {day.isoformat()} is refused: {refusal}")
        self.day = day
        self.refusal = refusal


class PhoneEnrolledToAnother(EnrolmentRefused):
    """The file's phone number belongs to someone enrolled under another name."""

    def __init__(self, phone: str, enrolled_as: str, named_in_file: str) -> None:
        super().__init__(f"{phone} is enrolled as {enrolled_as!r}, not {named_in_file!r}")
        self.phone = phone
        self.enrolled_as = enrolled_as
        self.named_in_file = named_in_file


def enrol_person(
    uow: UnitOfWork, regimen: Regimen, now: datetime, *, rename: bool = False
) -> Enrolment:
    """Add the person (known by phone) or a new regimen version; the same regimen again is a no-op.

    Refused, writing nothing, when the planner refuses one of the person's next days
    (UnplannableRegimen), or when the phone is enrolled under another name and `rename` was
    not given (PhoneEnrolledToAnother): a mistyped number would otherwise take over someone
    else's reminders. A new version is announced with a RegimenChanged event in the same
    transaction, so the scheduler re-plans exactly when the change is committed.
    """
    require_aware(now)
    warnings = plan_warnings(regimen, now)
    hint = language_hint(regimen)
    details = PersonDetails.from_regimen(regimen)
    body = regimen.model_dump(mode="json")
    with uow:
        known = uow.people.by_phone(details.phone)
        if known is not None and known.details.name != details.name and not rename:
            raise PhoneEnrolledToAnother(details.phone, known.details.name, details.name)
        if known is None:
            person_id = uow.people.add(details, now)
            warnings += _honour_earlier_stop(uow, person_id, details.phone, now)
        else:
            person_id = known.id
            uow.people.update(person_id, details, now)
        current = uow.regimens.current(person_id)
        if current is not None and current.body == body:
            uow.commit()
            return Enrolment(person_id, current.version, "unchanged", warnings, hint)
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
    outcome: Outcome = "enrolled" if known is None else "new_version"
    return Enrolment(person_id, added.version, outcome, warnings, hint)


def _honour_earlier_stop(
    uow: UnitOfWork, person_id: int, phone: str, now: datetime
) -> tuple[str, ...]:
    """A number that said STOP before anyone enrolled it is enrolled opted out (carriers hold
    senders to a STOP, whoever it reached); START lifts it as usual."""
    stopped_at = uow.replies.stopped_while_unknown(phone)
    if stopped_at is None:
        return ()
    opted_out = opt_out(uow, person_id, OPT_OUT_SOURCE_SMS, now)
    if opted_out is not None:  # always, for a person added in this transaction
        uow.events.append(opted_out)
    return (
        f"{phone} replied STOP on {stopped_at.date().isoformat()}, before it was enrolled: "
        "enrolled opted out, so nothing is sent to it until it replies START",
    )


def language_hint(regimen: Regimen) -> LanguageHint | None:
    """A hint when the file did not write `person.language` and the phone number's country
    officially reads a language dosewise writes other than the default the person would get
    (+45: Denmark, Danish); None when the language was written, or the default is read there,
    or none of the country's languages is one dosewise writes."""
    person = regimen.person
    if "language" in person.model_fields_set:
        return None
    region = phonenumbers.region_code_for_number(phonenumbers.parse(person.phone, None))
    if not region or region == phonenumbers.UNKNOWN_REGION:
        return None
    spoken = get_official_languages(region, de_facto=True)
    if person.language in spoken:
        return None
    written = next((code for code in spoken if code in LANGUAGES), None)
    return None if written is None else LanguageHint(region, written)


def plan_warnings(regimen: Regimen, now: datetime) -> tuple[str, ...]:
    """The warnings of the plan for the person's day at `now`, once each of the next
    DAYS_PLANNED_BEFORE_ENROLMENT days has a plan; UnplannableRegimen otherwise."""
    today = now.astimezone(ZoneInfo(regimen.person.timezone)).date()
    days = [today + timedelta(days=offset) for offset in range(DAYS_PLANNED_BEFORE_ENROLMENT)]
    plans = [_plan(regimen, day) for day in days]  # every day must plan, not just the first
    return plans[0].warnings + tuple(course_policy_warnings(regimen))


def _plan(regimen: Regimen, day: date) -> DayPlan:
    try:
        return plan_day(regimen, day)
    except PlanRefused as refusal:
        raise UnplannableRegimen(day, refusal) from None


def list_people(uow: UnitOfWork) -> list[PersonSummary]:
    with uow:
        return uow.people.summaries()
