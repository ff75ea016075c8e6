"""`dosewise db upgrade`: create or migrate the schema of DOSEWISE_DATABASE_URL."""

from __future__ import annotations

import argparse
from typing import Any

from dosewise.wiring import load_settings, store_errors_as_user_errors
from store.engine import url_for_humans
from store.migrate import upgrade


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("db", help="the database schema")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION")
    actions.required = True
    upgrade_parser = actions.add_parser(
        "upgrade", help="create or migrate the schema of DOSEWISE_DATABASE_URL"
    )
    upgrade_parser.set_defaults(handler=run_upgrade)


def run_upgrade(_arguments: argparse.Namespace) -> int:
    url = load_settings().database_url
    with store_errors_as_user_errors():
        revision = upgrade(url)
    print(f"database {url_for_humans(url)} is at schema revision {revision}")
    return 0
