"""`dosewise report adherence [--from D] [--to D] [--person P] [--format ...]` and
`dosewise report refresh` (bring the report's rollup up to date now)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dosewise.arguments import iso_date
from dosewise.errors import UserError
from dosewise.settings import Settings
from dosewise.wiring import database, load_settings, store_errors_as_user_errors
from i18n import translator
from reports.adherence import check_window_length
from reports.lookup import UnknownPerson, adherence_for
from reports.ports import AdherenceQueries
from reports.render import render_csv, render_html, render_json, render_table
from store.engine import create_engine
from store.migrate import require_current
from store.report_rollup import SqlReportRollup

DEFAULT_DAYS = 30
RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json, "html": render_html}


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("report", help="reports on what people took")
    kinds = parser.add_subparsers(dest="report_command", metavar="REPORT")
    kinds.required = True
    adherence = kinds.add_parser("adherence", help="doses planned, sent, taken, missed")
    adherence.add_argument(
        "--from", dest="start", type=iso_date, help="first local date YYYY-MM-DD"
    )
    adherence.add_argument(
        "--to", dest="end", type=iso_date, help="last local date (default today)"
    )
    adherence.add_argument("--person", help="one person, by id or phone number")
    adherence.add_argument("--format", choices=tuple(RENDERERS), default="table")
    adherence.set_defaults(handler=run_adherence)
    refresh = kinds.add_parser(
        "refresh",
        help="rebuild the report's rollup for every changed day now (the scheduler does it "
        "every 15 s)",
    )
    refresh.add_argument(
        "--all",
        dest="rebuild_all",
        action="store_true",
        help="rebuild the whole rollup with full scans (after a bulk load or a restore)",
    )
    refresh.set_defaults(handler=run_refresh)


def window(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The last 30 days to today unless told otherwise, at most MAX_WINDOW_DAYS long."""
    last = end or today
    first = start or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise UserError(f"--to {last} is before --from {first}")
    try:
        check_window_length(first, last)
    except ValueError as error:
        raise UserError(f"--from/--to: {error}") from None
    return first, last


@contextmanager
def adherence_queries(settings: Settings) -> Iterator[AdherenceQueries]:
    with database(settings) as store:
        yield store.adherence


def run_adherence(arguments: argparse.Namespace) -> int:
    # the outermost layer reads the clock
    now = datetime.now(UTC)
    start, end = window(arguments.start, arguments.end, now.astimezone().date())
    settings = load_settings()
    with adherence_queries(settings) as queries:
        try:
            report = adherence_for(queries, start, end, now, arguments.person)
        except UnknownPerson as unknown:
            raise UserError(str(unknown)) from None
    # the table and HTML in the admin's language; CSV and JSON add its display names
    sys.stdout.write(RENDERERS[arguments.format](report, settings.language))
    return 0


def run_refresh(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    with store_errors_as_user_errors():
        engine = create_engine(settings.database_url)
        try:
            require_current(engine)
            rollup = SqlReportRollup(engine)
            days = rollup.rebuild_all() if arguments.rebuild_all else rollup.refresh_all()
        finally:
            engine.dispose()
    rebuilt = translator(settings.language).ngettext(
        "report rollup: {n} person-day rebuilt", "report rollup: {n} person-days rebuilt", days
    )
    sys.stdout.write(rebuilt + "\n")
    return 0
