"""The regimen file of the contract: a person, their meals and medicines, their supplements."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from schemas.amounts import Amount, DoseAmount
from schemas.contents import content_tag
from schemas.languages import DEFAULT_LANGUAGE, LANGUAGES
from schemas.names import SupplementName, check_name

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(raw: Any) -> time:
    """Read a wall-clock time written "HH:MM"."""
    if isinstance(raw, time):
        return raw.replace(second=0, microsecond=0, tzinfo=None)
    match = _CLOCK.match(str(raw).strip()) if isinstance(raw, str) else None
    if match is None:
        shown = raw.isoformat() if isinstance(raw, date) else repr(raw)  # YAML reads dates
        raise ValueError(f'a time of day is written "HH:MM" (like "07:30"), not {shown}')
    return time(int(match.group(1)), int(match.group(2)))


def _clock_text(value: time) -> str:
    return value.strftime("%H:%M")


Clock = Annotated[
    time,
    BeforeValidator(parse_clock),
    PlainSerializer(_clock_text, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$", "examples": ["07:30"]}
    ),
]


# The IANA zones, read once. A name is checked against them before it is loaded: ZoneInfo
# would also open "Europe" (a folder: IsADirectoryError), "localtime" (whatever zone the
# machine is set to) or "posixrules", none of which is a place a person lives; "Factory" is in
# the list but is a placeholder with no offset of any place.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
IANA_ZONES = frozenset(available_timezones()) - _NOT_PLACES
_ZONE_OF_LOWER = {zone.lower(): zone for zone in IANA_ZONES}


def check_timezone(name: str) -> str:
    """An IANA time zone name, like Europe/Copenhagen; ValueError with the one-line reason."""
    problem = f"unknown time zone {name!r}: use an IANA name like Europe/Copenhagen"
    if name not in IANA_ZONES:
        spelled = _ZONE_OF_LOWER.get(name.strip().lower())
        raise ValueError(f"{problem} (did you mean {spelled}?)" if spelled else problem)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"{problem} (its zone data cannot be read: {error})") from None
    return name


def check_phone(raw: str) -> str:
    """Keep the number in E.164 form ("+4520123456")."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"phone {raw!r} is not in E.164 form, like +4520123456") from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# control and format characters (a newline, a tab, an ANSI escape, a right-to-left override),
# line and paragraph separators, and halves of a character (a JSON "\ud83d" alone): in a name
# they would forge lines or colours in a table, a message or a log, or fail to be written
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def check_plain_text(text: str) -> str:
    """Text a person reads on one line: a name of a person, meal, medicine or supplement."""
    for position, character in enumerate(text, start=1):
        if unicodedata.category(character) in _NOT_TEXT:
            raise ValueError(
                f"contains a control character ({character!r} at position {position}): write "
                "it as plain text on one line"
            )
    if not text.strip():
        raise ValueError("must not be blank")
    return text


def check_language(code: str) -> str:
    """A language dosewise writes in: every text the person sees is in it."""
    if code not in LANGUAGES:
        raise ValueError(
            f"language {code!r} is not one dosewise writes: use {' or '.join(LANGUAGES)}"
        )
    return code


PlainText = Annotated[str, AfterValidator(check_plain_text)]
Language = Annotated[
    str, AfterValidator(check_language), WithJsonSchema({"type": "string", "enum": list(LANGUAGES)})
]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
PhoneNumber = Annotated[str, AfterValidator(check_phone)]

ContentTag = Annotated[str, AfterValidator(content_tag)]


# How many entries a regimen may list, refused before any entry is read: no one takes more than
# a few dozen supplements, eats more than a handful of meals or has a medicine more than once an
# hour; a list far longer is a mistake in the file, and the planner's work grows with its length
# (300 supplements took it a second, 1000 its recursion limit).
MAX_SUPPLEMENTS = 100
MAX_MEDICATIONS = 50
MAX_MEALS = 24
MAX_TIMES_A_DAY = 24  # a medicine's times, the quiet windows, a meal's contents


def _at_most(limit: int, what: str) -> BeforeValidator:
    def check(raw: Any) -> Any:
        if isinstance(raw, list | tuple) and len(raw) > limit:
            raise ValueError(f"{len(raw)} {what} are more than a regimen may list ({limit})")
        return raw

    return BeforeValidator(check)


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


MIDNIGHT = time(0, 0)


class TimeWindow(_Strict):
    """A stretch of the local day, from one wall-clock time to another."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")

    def crosses_midnight(self) -> bool:
        return self.end <= self.start


class Person(_Strict):
    name: PlainText = Field(min_length=1, max_length=200)
    phone: PhoneNumber
    email: EmailStr | None = None
    channel: Literal["sms", "email"] = "sms"
    timezone: TimeZoneName
    language: Language = DEFAULT_LANGUAGE
    waking: TimeWindow = TimeWindow(start=time(7, 0), end=time(22, 0))
    quiet: Annotated[list[TimeWindow], _at_most(MAX_TIMES_A_DAY, "quiet windows")] = Field(
        default_factory=list, max_length=MAX_TIMES_A_DAY
    )

    @model_validator(mode="after")
    def _check(self) -> Person:
        if self.channel == "email" and self.email is None:
            raise ValueError("channel: email needs an email address")
        if self.waking.crosses_midnight() and self.waking.end != MIDNIGHT:
            raise ValueError(
                "the waking window must end later on the same day than it starts, or at "
                '"00:00" (until midnight); one that runs past midnight is not supported'
            )
        return self


class Meal(_Strict):
    name: PlainText = Field(min_length=1, max_length=200)
    at: Clock
    contains: Annotated[list[ContentTag], _at_most(MAX_TIMES_A_DAY, "contents")] = Field(
        default_factory=list, max_length=MAX_TIMES_A_DAY
    )


def _as_list(raw: Any) -> Any:
    raw = [raw] if isinstance(raw, str | time) else raw
    if isinstance(raw, list) and len(raw) > MAX_TIMES_A_DAY:
        raise ValueError(f"{len(raw)} times are more than a regimen may list ({MAX_TIMES_A_DAY})")
    return raw


class Medication(_Strict):
    name: PlainText = Field(min_length=1, max_length=200)
    at: Annotated[list[Clock], BeforeValidator(_as_list)] = Field(
        min_length=1, max_length=MAX_TIMES_A_DAY
    )


class SupplementEntry(_Strict):
    name: PlainText = Field(min_length=1, max_length=100)
    dose: DoseAmount
    at: Clock | None = None
    deficiency_confirmed: bool = False
    custom: bool = Field(
        default=False,
        description=(
            "the name is a supplement of its own, not a misspelling of one dosewise knows: "
            "it is planned as a custom item, with no timing rules"
        ),
    )

    @cached_property
    def identity(self) -> SupplementName:
        return check_name(self.name, custom=self.custom)

    @model_validator(mode="after")
    def _identify(self) -> SupplementEntry:
        # reading the name is part of reading the file, not of each plan made from it
        _ = self.identity
        return self

    @property
    def key(self) -> str:
        return self.identity.key


def _mass(amount: Amount) -> Amount:
    if amount.milligrams is None:
        raise ValueError(f"a lozenge's zinc is a mass, in mg or µg, not {amount}")
    return amount


# A gap may be set to 0 (the person keeps nothing apart) but no lower; a repeat gap or a
# lozenge interval below an hour is no schedule ("repeat_gap_hours: 0" planned zinc at 07:00
# and 07:01); an infinite number is no limit.
class Policy(_Strict):
    """Derived defaults (see domain-rules.md) that a regimen file may change."""

    model_config = ConfigDict(allow_inf_nan=False)

    black_tea_gap_hours: float = Field(default=3.0, ge=0, le=12)
    repeat_gap_hours: float = Field(default=4.0, ge=1, le=12)
    cold_course_days: int = Field(default=5, ge=1)
    lozenges_per_day: int = Field(default=6, ge=1, le=12)
    lozenge_dose: Annotated[DoseAmount, AfterValidator(_mass)] = Amount(
        value=Decimal(14), unit="mg"
    )
    lozenge_min_interval_hours: float = Field(default=2.0, ge=1, le=12)
    lozenge_max_interval_hours: float = Field(default=3.0, ge=1, le=12)
    course_zinc_gap_hours: float = Field(default=2.0, ge=0, le=12)
    iron_daily_warn_mg: float = Field(default=18.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if self.lozenge_max_interval_hours < self.lozenge_min_interval_hours:
            raise ValueError("lozenge_max_interval_hours must not be below the minimum")
        return self


class Regimen(_Strict):
    person: Person
    meals: Annotated[list[Meal], _at_most(MAX_MEALS, "meals")] = Field(
        default_factory=list, max_length=MAX_MEALS
    )
    medications: Annotated[list[Medication], _at_most(MAX_MEDICATIONS, "medications")] = Field(
        default_factory=list, max_length=MAX_MEDICATIONS
    )
    supplements: Annotated[list[SupplementEntry], _at_most(MAX_SUPPLEMENTS, "supplements")] = Field(
        min_length=1, max_length=MAX_SUPPLEMENTS
    )
    policy: Policy = Field(default_factory=Policy)
