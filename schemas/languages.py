"""The languages a person may read, and the names of supplements shown in each.

The languages are the columns of `data/display_names.csv` after `canonical`: a new language
is a new column there and a new message catalogue (i18n), no code.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

DEFAULT_LANGUAGE = "en"
_DISPLAY_NAMES = Path(__file__).parent / "data" / "display_names.csv"


@cache
def _table() -> dict[str, dict[str, str]]:
    with _DISPLAY_NAMES.open(encoding="utf-8", newline="") as file:
        return {row["canonical"]: row for row in csv.DictReader(file)}


def _columns() -> tuple[str, ...]:
    with _DISPLAY_NAMES.open(encoding="utf-8", newline="") as file:
        header = next(csv.reader(file))
    return tuple(column for column in header if column != "canonical")


LANGUAGES: tuple[str, ...] = _columns()


def has_display_name(key: str) -> bool:
    """Whether `key` is a supplement the table names, as opposed to a custom item."""
    return key in _table()


def display_name(key: str, language: str) -> str:
    """How a supplement is written for a reader of `language` ("C-vitamin"); a key the table
    does not know (a custom item) is shown as it is, its underscores as spaces."""
    row = _table().get(key)
    if row is None:
        return key.replace("_", " ")
    return row.get(language) or row[DEFAULT_LANGUAGE]
