"""How written names are compared: the same name however it was typed.

`normal_words` is what a person's text says, word by word: Unicode NFC, case folded, every run
of punctuation, hyphens and spaces a word break ("C-vitamin" and "c vitamin" are the same two
words). `fold` is the form two names are matched in: Danish letters spelled out as Danes do
without them (æ -> ae, ø -> oe, å -> aa) and accents dropped ("crème" -> "creme"). No letter is
deleted: a word in any script keeps its letters.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# a word: letters and digits of any script, with any combining marks they carry
_MARKS = r"\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_WORD = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
_SPELLED_OUT = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa"})
_GREEK_MU = "\u03bc"  # what casefold makes of the micro sign
_MICRO = "\u00b5"


@lru_cache(maxsize=8192)
def normal_words(text: str) -> tuple[str, ...]:
    """The words of `text`, NFC and case folded, punctuation and spacing dropped between them."""
    folded = unicodedata.normalize("NFC", text).casefold().replace(_GREEK_MU, _MICRO)
    return tuple(unicodedata.normalize("NFC", word) for word in _WORD.findall(folded))


@lru_cache(maxsize=8192)
def fold(word: str) -> str:
    """A normal word with Danish letters spelled out and accents dropped, for matching only."""
    spelled = word.translate(_SPELLED_OUT)
    return "".join(
        character
        for character in unicodedata.normalize("NFKD", spelled)
        if not unicodedata.combining(character)
    )


def match_key(text: str) -> str:
    """The form in which two names are compared: folded words, single spaces."""
    return " ".join(fold(word) for word in normal_words(text))
