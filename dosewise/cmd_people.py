"""`dosewise people add FILE` and `dosewise people list`, in the admin's language
(DOSEWISE_LANGUAGE)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from babel import Locale

from dosewise.errors import UserError
from dosewise.wiring import database, load_settings
from i18n import Translator, translator
from schemas.files import RegimenFileError, load_regimen
from schemas.regimen import Regimen
from services.enrolment import (
    Enrolment,
    EnrolmentRefused,
    LanguageHint,
    PhoneEnrolledToAnother,
    enrol_person,
    list_people,
)
from services.ports import PersonSummary


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("people", help="enrol people and list them")
    actions = parser.add_subparsers(dest="people_command", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="enrol a person with a regimen file (YAML or JSON)")
    add.add_argument("file", help="regimen file")
    add.add_argument(
        "--rename",
        action="store_true",
        help="the phone is enrolled under another name: give that person the file's name",
    )
    add.set_defaults(handler=run_add)
    listing = actions.add_parser("list", help="list the people enrolled")
    listing.set_defaults(handler=run_list)


def run_add(arguments: argparse.Namespace) -> int:
    # the file is checked before the database is touched: a bad file writes nothing
    try:
        regimen = load_regimen(arguments.file)
    except RegimenFileError as error:
        raise UserError(str(error)) from None
    settings = load_settings()
    t = translator(settings.language)
    with database(settings) as store:
        # the outermost layer reads the clock; the use case is given the instant
        try:
            enrolment = enrol_person(
                store.unit_of_work(), regimen, datetime.now(UTC), rename=arguments.rename
            )
        except PhoneEnrolledToAnother as taken:
            raise UserError(
                t.gettext(
                    "{file}: {problem}; nothing was enrolled. Check the phone number, or run "
                    "again with --rename to give that person the file's name",
                    file=arguments.file,
                    problem=taken,
                )
            ) from None
        except EnrolmentRefused as refused:
            raise UserError(
                t.gettext(
                    "{file}: {problem}; nothing was enrolled", file=arguments.file, problem=refused
                )
            ) from None
    print(_outcome(enrolment, f"{regimen.person.name} ({regimen.person.phone})", t))
    for warning in enrolment.warnings:
        print(t.gettext("warning: {warning}", warning=warning))
    if enrolment.language_hint is not None:
        print(_language_warning(enrolment.language_hint, regimen, arguments.file, t))
    return 0


def run_list(_arguments: argparse.Namespace) -> int:
    settings = load_settings()
    t = translator(settings.language)
    with database(settings) as store:
        people = list_people(store.unit_of_work())
    if not people:
        print(t.gettext("nobody is enrolled yet: add someone with `dosewise people add FILE`"))
        return 0
    print(
        _columns(
            t.gettext("id"),
            t.gettext("name"),
            t.gettext("phone"),
            t.gettext("channel"),
            t.gettext("time zone"),
            t.gettext("regimen"),
            t.gettext("state"),
        )
    )
    for summary in people:
        print(_line(summary, t))
    return 0


def _outcome(enrolment: Enrolment, who: str, t: Translator) -> str:
    version = enrolment.version
    if enrolment.outcome == "enrolled":
        return t.gettext("enrolled {who} with regimen version {version}", who=who, version=version)
    if enrolment.outcome == "new_version":
        return t.gettext("{who} now has regimen version {version}", who=who, version=version)
    return t.gettext(
        "{who} already has this regimen (version {version}): nothing changed",
        who=who,
        version=version,
    )


def _language_warning(hint: LanguageHint, regimen: Regimen, file: str, t: Translator) -> str:
    """One line: the person will read the default language, though their number's country
    reads another one dosewise writes; how to set it. Country and languages are named in the
    admin's language."""
    names = Locale.parse(t.language)
    return t.gettext(
        "warning: {phone} is a number in {country} and {file} sets no person.language: "
        "{name} will get texts in {default}; write `language: {code}` under person if they "
        "read {language}",
        phone=regimen.person.phone,
        country=names.territories.get(hint.region, hint.region),
        file=file,
        name=regimen.person.name,
        default=names.languages.get(regimen.person.language, regimen.person.language),
        code=hint.language,
        language=names.languages.get(hint.language, hint.language),
    )


def _line(summary: PersonSummary, t: Translator) -> str:
    person = summary.person
    details = person.details
    if person.opted_out:
        state = t.gettext("opted out")
    else:
        state = t.gettext("active") if person.active else t.gettext("inactive")
    version = "-" if summary.regimen_version is None else f"v{summary.regimen_version}"
    return _columns(
        str(person.id),
        details.name,
        details.phone,
        details.channel,
        details.timezone,
        version,
        state,
    )


def _columns(*cells: str) -> str:
    # the id is right-aligned, the rest left-aligned; the last column runs to the line's end
    identifier, *rest = cells
    widths = (24, 16, 7, 22, 7, 0)
    padded = (cell.ljust(width) for cell, width in zip(rest, widths, strict=True))
    return " ".join([identifier.rjust(4), *padded]).rstrip()
