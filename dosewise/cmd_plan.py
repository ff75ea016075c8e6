"""`dosewise plan FILE [--date D] [--format text|json]`: the day's dose plan, explained."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from dosewise.arguments import iso_date
from dosewise.errors import UserError
from dosewise.tables import render_plan
from planner.day import plan_day
from planner.plan import PlanRefused
from schemas.files import RegimenFileError, load_regimen


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("plan", help="the day's dose plan for a regimen file")
    parser.add_argument("file", help="regimen file (YAML or JSON)")
    parser.add_argument("--date", type=iso_date, default=None, help="YYYY-MM-DD (default: today)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    try:
        regimen = load_regimen(arguments.file)
    except RegimenFileError as error:
        raise UserError(str(error)) from None
    day = arguments.date or _today(regimen.person.timezone)
    try:
        plan = plan_day(regimen, day)
    except PlanRefused as refusal:
        raise UserError(f"{arguments.file}: plan refused: {refusal}") from None
    if arguments.format == "json":
        print(json.dumps(plan.as_json(), ensure_ascii=False, indent=2))
    else:
        print(render_plan(plan, regimen))
    return 0


def _today(timezone: str) -> date:
    # the outermost layer reads the clock; the planner is given the date
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone)).date()
