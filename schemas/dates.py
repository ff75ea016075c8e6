"""Calendar dates people type (command line, admin API): YYYY-MM-DD within the years we plan."""

from __future__ import annotations

import re
from datetime import date

# the years a typed date may name: the planner, the scheduler and the report turn dates into
# instants with margins on both sides, which Python's dates cannot hold near year 1 or year
# 9999; no regimen, history or report is meant to reach beyond these
FIRST_YEAR = 1900
LAST_YEAR = 2200
# the one spelling: date.fromisoformat would also take 20261201 and 2026-W49-1
_WRITTEN = re.compile(r"\d{4}-\d{2}-\d{2}")


def checked_date(raw: str) -> date:
    """A YYYY-MM-DD date in FIRST_YEAR..LAST_YEAR; ValueError with the one-line reason."""
    if not _WRITTEN.fullmatch(raw):
        raise ValueError(f"a date is written YYYY-MM-DD, not {raw!r}")
    try:
        day = date.fromisoformat(raw)
    except ValueError:  # written right, but no such day (2026-02-30, 2026-13-01)
        raise ValueError(f"{raw} is not a date: there is no such day") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(
            f"{raw} is out of range: a date must be between {FIRST_YEAR} and {LAST_YEAR}"
        )
    return day
