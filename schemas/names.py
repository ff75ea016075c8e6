"""Canonical supplement names and their chemical forms.

"magnesium citrate" is magnesium in citrate form; "vitamin C" and "ascorbic acid" are
`vitamin_c`. A name we do not know is kept as a custom item (no rules apply to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# canonical name -> the words people write for it (lower case, single spaces)
_ALIASES: dict[str, tuple[str, ...]] = {
    "iron": ("iron", "ferrous", "ferric", "fe"),
    "vitamin_c": ("vitamin c", "vit c", "ascorbic acid", "ascorbate", "c vitamin"),
    "zinc": ("zinc", "zn"),
    "selenium": ("selenium", "se", "selenomethionine", "sodium selenite", "selenite"),
    "magnesium": ("magnesium", "mg"),
    "copper": ("copper", "cu", "cupric"),
    "calcium": ("calcium", "ca"),
    "vitamin_d": ("vitamin d", "vitamin d3", "vitamin d2", "vit d", "d3", "cholecalciferol"),
    "vitamin_b12": ("vitamin b12", "b12", "cobalamin", "methylcobalamin", "cyanocobalamin"),
    "folate": ("folate", "folic acid", "vitamin b9", "methylfolate"),
    "vitamin_a": ("vitamin a", "retinol"),
    "vitamin_e": ("vitamin e", "tocopherol"),
    "vitamin_k": ("vitamin k", "vitamin k2", "vitamin k1", "k2", "menaquinone", "phylloquinone"),
    "iodine": ("iodine", "iodide", "potassium iodide"),
    "omega_3": ("omega 3", "omega3", "fish oil", "epa", "dha"),
    "potassium": ("potassium",),
}

# forms we recognise per supplement; any other trailing word is still kept as the form
KNOWN_FORMS: dict[str, frozenset[str]] = {
    "iron": frozenset(
        {"sulfate", "sulphate", "fumarate", "gluconate", "bisglycinate", "polysaccharide"}
    ),
    "magnesium": frozenset(
        {"oxide", "citrate", "glycinate", "bisglycinate", "malate", "threonate", "chloride"}
    ),
    "zinc": frozenset({"gluconate", "acetate", "picolinate", "citrate", "sulfate", "lozenge"}),
    "calcium": frozenset({"carbonate", "citrate"}),
    "copper": frozenset({"gluconate", "bisglycinate", "sulfate"}),
    "selenium": frozenset({"selenomethionine", "selenite", "yeast"}),
}

_CANONICAL_OF: dict[str, str] = {
    alias: canonical for canonical, aliases in _ALIASES.items() for alias in aliases
}
_FORM_OF_ALIAS = {"ferrous": None, "ferric": None, "selenomethionine": "selenomethionine"}


@dataclass(frozen=True)
class SupplementName:
    """What a written name means: a canonical name (or None if unknown) and a form."""

    written: str
    canonical: str | None
    form: str | None
    key: str = ""  # the name used in plans: canonical, or the written name made identifier-like

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.canonical or _slug(self.written))


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-zµ]+", " ", text.lower()).split())


def _slug(text: str) -> str:
    return _words(text).replace(" ", "_") or "custom"


class CombinedNameError(ValueError):
    """A name that names several known supplements: each needs its own entry and dose."""


def identify(written: str) -> SupplementName:
    """Read a supplement name as people write it.

    A name that names two known supplements ("Iron with vitamin C", "Calcium + vitamin D3") is
    refused, not read as one of them: the rules keep some of them apart and pair others, so
    guessing which one is meant would plan the other wrongly. A supplement the name says is
    absent ("iron-free multivitamin", "without iron") is not named by it.
    """
    words = _words(written)
    if words.replace(" ", "_") in _ALIASES:
        return SupplementName(written, words.replace(" ", "_"), None)
    parts = words.split()
    mentions = _mentions(parts)
    named = list(dict.fromkeys(canonical for canonical, _, _ in mentions))
    if len(named) > 1:
        raise CombinedNameError(
            f"{written!r} names more than one supplement ({', '.join(named)}): list each as "
            "its own entry, with its own dose"
        )
    if not named:
        return SupplementName(written, None, None)
    # the words outside the supplement's names are its form: "magnesium citrate", "chelated
    # magnesium", "Iron (ferrous bisglycinate)", "slow release iron tablets"
    named_words = {index for _, first, end in mentions for index in range(first, end)}
    form = " ".join(word for index, word in enumerate(parts) if index not in named_words)
    phrases = (" ".join(parts[first:end]) for _, first, end in mentions)
    return SupplementName(
        written,
        named[0],
        form
        or next((_FORM_OF_ALIAS[phrase] for phrase in phrases if _FORM_OF_ALIAS.get(phrase)), None),
    )


# words that say a supplement is not in the product: "iron-free", "without iron", "no iron"
_ABSENT_BEFORE = ("without", "no", "non", "free of", "sans")
_LONGEST_ALIAS = max(len(alias.split()) for alias in _CANONICAL_OF)
_NUMBER = re.compile(r"^\d+$")
# an alias that is also a unit: "zinc 15 mg" names zinc, not magnesium
_UNIT_ALIASES = frozenset({"mg"})


def _mentions(parts: list[str]) -> list[tuple[str, int, int]]:
    """The known supplements the words name, as (canonical, first word, end), in order; at each
    word the longest known phrase ("potassium iodide" is iodine, not potassium)."""
    found: list[tuple[str, int, int]] = []
    start = 0
    while start < len(parts):
        for size in range(min(_LONGEST_ALIAS, len(parts) - start), 0, -1):
            phrase = " ".join(parts[start : start + size])
            canonical = _CANONICAL_OF.get(phrase)
            if canonical is not None:
                break
        else:
            start += 1
            continue
        end = start + size
        before = " ".join(parts[max(0, start - 2) : start])
        after = parts[end : end + 2]
        absent = (after[:1] == ["free"] and after[1:] != ["of"]) or any(
            before == word or before.endswith(" " + word) for word in _ABSENT_BEFORE
        )
        unit = phrase in _UNIT_ALIASES and start > 0 and bool(_NUMBER.match(parts[start - 1]))
        if not absent and not unit:
            found.append((canonical, start, end))
        start = end
    return found


def canonical_names() -> tuple[str, ...]:
    return tuple(_ALIASES)
