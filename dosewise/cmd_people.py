"""`dosewise people add FILE` and `dosewise people list`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dosewise.errors import UserError
from dosewise.wiring import database, load_settings
from schemas.files import RegimenFileError, load_regimen
from services.enrolment import (
    Enrolment,
    EnrolmentRefused,
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
    with database(load_settings()) as store:
        # the outermost layer reads the clock; the use case is given the instant
        try:
            enrolment = enrol_person(
                store.unit_of_work(), regimen, datetime.now(UTC), rename=arguments.rename
            )
        except PhoneEnrolledToAnother as taken:
            raise UserError(
                f"{arguments.file}: {taken}; nothing was enrolled. Check the phone number, or "
                "run again with --rename to give that person the file's name"
            ) from None
        except EnrolmentRefused as refused:
            raise UserError(f"{arguments.file}: {refused}; nothing was enrolled") from None
    print(_outcome(enrolment, f"{regimen.person.name} ({regimen.person.phone})"))
    for warning in enrolment.warnings:
        print(f"warning: {warning}")
    return 0


def run_list(_arguments: argparse.Namespace) -> int:
    with database(load_settings()) as store:
        people = list_people(store.unit_of_work())
    if not people:
        print("nobody is enrolled yet: add someone with `dosewise people add FILE`")
        return 0
    print(_columns("id", "name", "phone", "channel", "time zone", "regimen", "state"))
    for summary in people:
        print(_line(summary))
    return 0


def _outcome(enrolment: Enrolment, who: str) -> str:
    if enrolment.outcome == "enrolled":
        return f"enrolled {who} with regimen version {enrolment.version}"
    if enrolment.outcome == "new_version":
        return f"{who} now has regimen version {enrolment.version}"
    return f"{who} already has this regimen (version {enrolment.version}): nothing changed"


def _line(summary: PersonSummary) -> str:
    person = summary.person
    details = person.details
    state = "opted out" if person.opted_out else ("active" if person.active else "inactive")
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
