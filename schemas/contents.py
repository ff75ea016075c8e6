"""What meals contain, as people write it, mapped to the tags the timing rules speak of.

`data/meal_contents.csv` holds every word for a tag in each language ("mælk", "ost" and
"cheese" are dairy; "sort te" and "tea" black tea). Words are compared in
`schemas.words.match_key` form, so case, hyphens, Unicode composition and diacritics do not
matter. A content the table does not hold is kept as the person wrote it.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from schemas.words import match_key

_CONTENTS = Path(__file__).parent / "data" / "meal_contents.csv"


@dataclass(frozen=True)
class ContentRow:
    """One row of the meal contents table: a word, the tag it means, its language."""

    name: str
    tag: str
    language: str


@cache
def content_rows() -> tuple[ContentRow, ...]:
    with _CONTENTS.open(encoding="utf-8", newline="") as file:
        return tuple(
            ContentRow(row["name"], row["tag"], row["language"]) for row in csv.DictReader(file)
        )


@cache
def _tags() -> dict[str, str]:
    tags: dict[str, str] = {}
    for row in content_rows():
        for key in (match_key(row.name), match_key(row.tag)):
            if tags.setdefault(key, row.tag) != row.tag:
                raise ValueError(f"meal content {row.name!r} means both {tags[key]} and {row.tag}")
    return tags


def content_tag(written: str) -> str:
    """The tag a meal content means ("mælk" -> "dairy"), or the content as written (NFC, outer
    spaces dropped) when the table does not hold it; ValueError when it has no words."""
    key = match_key(written)
    if not key:
        raise ValueError(f"meal contents must be words like dairy or black tea, not {written!r}")
    return _tags().get(key) or unicodedata.normalize("NFC", written).strip()


def content_words(tag: str, language: str) -> tuple[str, ...]:
    """The words the table lists for `tag` in `language`."""
    return tuple(row.name for row in content_rows() if (row.tag, row.language) == (tag, language))
