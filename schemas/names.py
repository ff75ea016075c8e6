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
    "vitamin_k": ("vitamin k", "vitamin k2", "vitamin k1"),
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


def identify(written: str) -> SupplementName:
    """Read a supplement name as people write it."""
    words = _words(written)
    if words.replace(" ", "_") in _ALIASES:
        return SupplementName(written, words.replace(" ", "_"), None)
    parts = words.split()
    for size in range(len(parts), 0, -1):  # the longest known phrase first
        canonical = _CANONICAL_OF.get(" ".join(parts[:size]))
        if canonical is not None:
            phrase = " ".join(parts[:size])
            form = " ".join(parts[size:]) or _FORM_OF_ALIAS.get(phrase)
            return SupplementName(written, canonical, form)
        suffix = " ".join(parts[-size:])
        canonical = _CANONICAL_OF.get(suffix) if size < len(parts) and len(suffix) > 2 else None
        if canonical is not None:
            # "ferrous bisglycinate iron", "chelated magnesium": the first words are the form
            return SupplementName(written, canonical, " ".join(parts[:-size]))
    return SupplementName(written, None, None)


def canonical_names() -> tuple[str, ...]:
    return tuple(_ALIASES)
