"""Supplement names as people write them, in every language of the names table.

`data/supplement_names.csv` holds every name people write for a canonical supplement, the form
the name implies ("jernsulfat": iron, sulfate) and its language; `data/supplement_forms.csv`
the form words ("citrat", "oxid") and the form key the rules use ("citrate", "oxide");
`data/absence_words.csv` the words that say a supplement is not in a product ("uden jern",
"iron-free"). A new language is new rows there, no code.

Names are compared in `schemas.words.match_key` form. A compound word made of a known name
and a form word ("zinkpicolinat", "kobbersulfat") is read as the two, listed or not. A name that
is nothing dosewise knows but close to a known one ("iorn") carries a suggestion, and the
regimen refuses it unless the entry says `custom: true`; otherwise an unknown name is a custom
item, planned with no rules.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

from schemas.languages import DEFAULT_LANGUAGE, display_name
from schemas.words import fold, match_key, normal_words

_DATA = Path(__file__).parent / "data"

# forms we recognise per supplement; any other trailing word is still kept as the form
KNOWN_FORMS: dict[str, frozenset[str]] = {
    "iron": frozenset(
        {"sulfate", "fumarate", "gluconate", "bisglycinate", "polysaccharide", "lactate"}
    ),
    "magnesium": frozenset(
        {"oxide", "citrate", "glycinate", "bisglycinate", "malate", "threonate", "chloride"}
    ),
    "zinc": frozenset({"gluconate", "acetate", "picolinate", "citrate", "sulfate", "lozenge"}),
    "calcium": frozenset({"carbonate", "citrate", "lactate"}),
    "copper": frozenset({"gluconate", "bisglycinate", "sulfate"}),
    "selenium": frozenset({"selenomethionine", "selenite", "yeast"}),
}

# a name shorter than this is never a suggestion, nor checked for being close to one ("Se",
# "DHA" and "jod" are a letter from too many other words)
_SHORTEST_CLOSE = 4
# an alias that is also a unit: "zinc 15 mg" names zinc, not magnesium
_UNIT_ALIASES = frozenset({"mg"})


@dataclass(frozen=True)
class SupplementName:
    """What a written name means: a canonical name (or None if unknown) and a form.

    `close_to` is, for an unknown name, the known supplement it is probably a misspelling of,
    as that supplement is written in the language the name looks like ("iron" for "iorn",
    "jern" for "jren").
    """

    written: str
    canonical: str | None
    form: str | None
    key: str = ""  # the name used in plans: canonical, or the written name made identifier-like
    close_to: str | None = None
    language: str | None = None  # the language of the known name it was read by

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.canonical or _slug(self.written))


def _slug(text: str) -> str:
    return "_".join(normal_words(text)) or "custom"


class CombinedNameError(ValueError):
    """A name that names several known supplements: each needs its own entry and dose."""


class UnknownNameError(ValueError):
    """A name that is no supplement dosewise knows but close to one: probably a misspelling."""


class CustomKnownNameError(ValueError):
    """`custom: true` on a name dosewise knows: its rules would be switched off by a flag."""


@dataclass(frozen=True)
class NameRow:
    """One row of the names table."""

    name: str
    canonical: str
    form: str | None
    language: str


@dataclass
class _Known:
    """A name as the table knows it: its supplement, implied form and languages."""

    canonical: str
    form: str | None
    name: str
    languages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Table:
    rows: tuple[NameRow, ...]
    names: dict[str, _Known]  # match key -> what it names
    forms: dict[str, str]  # match key of a form word -> form key
    form_rows: tuple[tuple[str, str, str], ...]  # (word, form, language)
    absent_before: tuple[str, ...]  # match keys, one or more words
    absent_after: frozenset[str]
    longest: int  # words in the longest name
    close: dict[tuple[str, ...], list[str]]  # a name's marks -> the names a misspelling may be


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


@cache
def _table() -> _Table:
    rows = tuple(
        NameRow(row["name"], row["canonical"], row["form"] or None, row["language"])
        for row in _read(_DATA / "supplement_names.csv")
    )
    names: dict[str, _Known] = {}
    for row in rows:
        _add(names, match_key(row.name), row)
    for canonical in dict.fromkeys(row.canonical for row in rows):
        # the canonical key itself ("vitamin_d") is a name of the supplement in no language
        names.setdefault(match_key(canonical), _Known(canonical, None, canonical))
    form_rows = tuple(
        (row["word"], row["form"], row["language"]) for row in _read(_DATA / "supplement_forms.csv")
    )
    forms: dict[str, str] = {}
    for word, form, _ in form_rows:
        key = match_key(word)
        if forms.setdefault(key, form) != form:
            raise ValueError(f"form word {word!r} means both {forms[key]} and {form}")
    absence = _read(_DATA / "absence_words.csv")
    close: dict[tuple[str, ...], list[str]] = {}
    for key in names:
        if len(key) >= _SHORTEST_CLOSE:
            close.setdefault(_marks(key), []).append(key)
    return _Table(
        rows=rows,
        names=names,
        forms=forms,
        form_rows=form_rows,
        absent_before=tuple(
            match_key(row["words"]) for row in absence if row["position"] == "before"
        ),
        absent_after=frozenset(
            match_key(row["words"]) for row in absence if row["position"] == "after"
        ),
        longest=max(len(key.split()) for key in names),
        close=close,
    )


def _add(names: dict[str, _Known], key: str, row: NameRow) -> None:
    known = names.setdefault(key, _Known(row.canonical, row.form, row.name))
    if (known.canonical, known.form) != (row.canonical, row.form):
        raise ValueError(
            f"the names table reads {row.name!r} as {row.canonical} ({row.form}) and "
            f"{known.name!r} as {known.canonical} ({known.form}): one spelling, two meanings"
        )
    if row.language not in known.languages:
        known.languages.append(row.language)


def _marks(key: str) -> tuple[str, ...]:
    """The words of a name that a single letter changes the meaning of: numbers and short
    words ("omega 7" is not "omega 3", "B-vitamin" not "C-vitamin"). A misspelling keeps them."""
    return tuple(word for word in key.split() if len(word) <= 2 or not word.isalpha())


@lru_cache(maxsize=4096)
def identify(written: str) -> SupplementName:
    """Read a supplement name as people write it.

    A name that names two known supplements ("Iron with vitamin C", "Jern + C-vitamin") is
    refused, not read as one of them: the rules keep some of them apart and pair others, so
    guessing which one is meant would plan the other wrongly. A supplement the name says is
    absent ("iron-free multivitamin", "uden jern", "jernfri") is not named by it.
    """
    table = _table()
    words = normal_words(written)
    keys = [fold(word) for word in words]
    whole = table.names.get(" ".join(keys))
    if whole is not None:
        return SupplementName(written, whole.canonical, whole.form, language=_language(whole))
    mentions, absent = _mentions(keys, table)
    named = list(dict.fromkeys(mention.known.canonical for mention in mentions))
    if len(named) > 1:
        shown = dict.fromkeys(_shown(mention.known) for mention in mentions)
        raise CombinedNameError(
            f"{written!r} names more than one supplement ({', '.join(shown)}): list each as "
            "its own entry, with its own dose"
        )
    if not named:
        close = None if absent else _close_to(keys, table)
        return SupplementName(written, None, None, close_to=close)
    # the words outside the supplement's names are its form ("magnesium citrate", "chelated
    # magnesium", "Iron (ferrous bisglycinate)"), the form a name implies first ("jernsulfat")
    named_words = {index for mention in mentions for index in range(mention.first, mention.end)}
    implied = [mention.form for mention in mentions if mention.form]
    rest = [
        table.forms.get(key, word)
        for index, (word, key) in enumerate(zip(words, keys, strict=True))
        if index not in named_words
    ]
    form = " ".join(dict.fromkeys([*implied, *rest])) or None
    return SupplementName(written, named[0], form, language=_language(mentions[0].known))


def check_name(written: str, *, custom: bool = False) -> SupplementName:
    """The name of a regimen entry, or ValueError with the one-line reason.

    A name close to a known one is refused with the suggestion unless the entry says it is a
    supplement of its own (`custom: true`); `custom: true` on a name dosewise knows is refused
    too, since it would plan that supplement with none of its rules.
    """
    name = identify(written)
    if custom and name.canonical is not None:
        shown = display_name(name.canonical, name.language or DEFAULT_LANGUAGE)
        raise CustomKnownNameError(
            f"{written!r} names {shown}, a supplement dosewise knows: remove custom: true so "
            "that its rules apply"
        )
    if name.close_to is not None and not custom:
        raise UnknownNameError(
            f"{written!r} is not a supplement dosewise knows; did you mean {name.close_to}? "
            "(if it is another supplement, give the entry custom: true)"
        )
    return name


@dataclass(frozen=True)
class _Mention:
    known: _Known
    first: int
    end: int
    form: str | None


def _mentions(keys: list[str], table: _Table) -> tuple[list[_Mention], bool]:
    """The known supplements the words name, in order, and whether some name was said to be
    absent; at each word the longest known phrase ("potassium iodide" is iodine, not
    potassium), else a compound of a known name and a form or absence word ("jernsulfat",
    "jernfri")."""
    found: list[_Mention] = []
    absent = False
    start = 0
    while start < len(keys):
        mention, said_absent = _mention_at(keys, start, table)
        if mention is None:
            absent = absent or said_absent
            start += 1
            continue
        before = " ".join(keys[max(0, start - 2) : start])
        follows = keys[mention.end : mention.end + 2]
        after = follows[:1] and follows[0] in table.absent_after
        if after and " ".join(follows) in table.absent_before:
            after = False  # "zinc free of sugar": the product is free of the sugar
        if (
            after
            or said_absent
            or any(before == words or before.endswith(" " + words) for words in table.absent_before)
        ):
            absent = True
        elif not (
            mention.end - start == 1
            and keys[start] in _UNIT_ALIASES
            and start > 0
            and keys[start - 1].isdigit()
        ):
            found.append(mention)
        start = mention.end
    return found, absent


def _mention_at(keys: list[str], start: int, table: _Table) -> tuple[_Mention | None, bool]:
    for size in range(min(table.longest, len(keys) - start), 0, -1):
        known = table.names.get(" ".join(keys[start : start + size]))
        if known is not None:
            return _Mention(known, start, start + size, known.form), False
    word = keys[start]
    for cut in range(len(word) - 1, 2, -1):
        known = table.names.get(word[:cut])
        rest = word[cut:]
        if known is None:
            continue
        if rest in table.absent_after:
            return _Mention(known, start, start + 1, None), True
        form = table.forms.get(rest)
        if form is not None:
            return _Mention(known, start, start + 1, form), False
    return None, False


def _close_to(keys: list[str], table: _Table) -> str | None:
    """The known supplement an unknown name is probably a misspelling of, as it is written in
    the language of the name it is close to; None when it is close to none.

    Tried: the whole name; the name less its form words ("iorn bisglycinate"); a compound's
    start before a form word ("jrensulfat"). Close is at most one letter changed, added,
    dropped or two swapped (two in a name of 9 letters or more), the numbers and one-letter
    words the same."""
    queries = [" ".join(keys)]
    unformed = [key for key in keys if key not in table.forms]
    if unformed and len(unformed) < len(keys):
        queries.append(" ".join(unformed))
    for key in keys:
        queries += [key[:cut] for cut in range(len(key) - 1, 2, -1) if key[cut:] in table.forms]
    for query in queries:
        known = _closest(query, table)
        if known is not None:
            return _shown(known)
    return None


def _closest(query: str, table: _Table) -> _Known | None:
    if len(query) < _SHORTEST_CLOSE:
        return None
    choices = table.close.get(_marks(query))
    if not choices:
        return None
    limit = 1 if len(query) < 9 else 2
    best = process.extractOne(query, choices, scorer=OSA.distance, score_cutoff=limit)
    return None if best is None else table.names[best[0]]


def _shown(known: _Known) -> str:
    """How a reader of the name's own language writes the supplement: "jern" for "jren",
    "iron" for "iorn"; for a name of several languages, the one whose display it is."""
    languages = known.languages or [DEFAULT_LANGUAGE]
    key = match_key(known.name)
    for language in languages:
        if match_key(display_name(known.canonical, language)) == key:
            return display_name(known.canonical, language)
    language = DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in languages else languages[0]
    return display_name(known.canonical, language)


def _language(known: _Known) -> str | None:
    return known.languages[0] if known.languages else None


def canonical_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(row.canonical for row in _table().rows))


def name_rows() -> tuple[NameRow, ...]:
    """The names table, row by row."""
    return _table().rows


def spellings(canonical: str, language: str, form: str | None = None) -> tuple[str, ...]:
    """The names the table lists for `canonical` in `language` that imply `form`."""
    return tuple(
        row.name
        for row in _table().rows
        if (row.canonical, row.language, row.form) == (canonical, language, form)
    )


def form_words(form: str, language: str) -> tuple[str, ...]:
    """The words that write `form` in `language` ("citrat" for citrate in Danish)."""
    return tuple(word for word, key, lang in _table().form_rows if (key, lang) == (form, language))
