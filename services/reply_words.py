"""What a person's SMS reply means: the words of domain-rules.md as one table.

Case-insensitive; surrounding spaces and punctuation are ignored. Anything else is `unparsed`:
stored and answered with a hint, never guessed as a confirmation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

ReplyKind = Literal[
    "taken", "skip", "later", "cold", "well", "stop", "start", "help", "yes", "unparsed"
]

# "YES" means TAKEN, except right after STOP, where it means START: the use case decides.
_WORDS: dict[str, ReplyKind] = {
    **dict.fromkeys(("TAKEN", "DONE", "OK", "Y", "1"), "taken"),
    "YES": "yes",
    **dict.fromkeys(("SKIP", "NO", "N", "2"), "skip"),
    **dict.fromkeys(("LATER", "SNOOZE", "3"), "later"),
    **dict.fromkeys(("COLD", "SICK"), "cold"),
    **dict.fromkeys(("WELL", "BETTER"), "well"),
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "stop"),
    **dict.fromkeys(("START", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}
_SNOOZE_WITH_MINUTES = re.compile(r"^(LATER|SNOOZE|3)\s+(\d+)\s*(M|MIN|MINS|MINUTES)?$")
# the minutes LATER takes; others are read as LATER and answered with these bounds
MIN_SNOOZE_MINUTES, MAX_SNOOZE_MINUTES = 1, 12 * 60
_MINUTES_DIGITS = 6  # more digits than this are out of bounds however they read


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    # for LATER: the minutes asked for, if any, as written (see snooze_minutes_valid)
    minutes: int | None = None

    @property
    def snooze_minutes_valid(self) -> bool:
        return self.minutes is None or MIN_SNOOZE_MINUTES <= self.minutes <= MAX_SNOOZE_MINUTES


def read_reply(body: str) -> Reply:
    text = " ".join(strip_edges(body).upper().split())
    kind = _WORDS.get(text)
    if kind is not None:
        return Reply(kind)
    match = _SNOOZE_WITH_MINUTES.match(text)
    if match is not None:
        digits = match.group(2)
        minutes = int(digits) if len(digits) <= _MINUTES_DIGITS else 10**_MINUTES_DIGITS
        return Reply("later", minutes)
    return Reply("unparsed")


def strip_edges(body: str) -> str:
    """The body without what surrounds the words: spaces, punctuation and symbols (emoji with
    their skin tones, joiners and variation selectors), as domain-rules.md ignores them."""
    start, end = 0, len(body)
    while start < end and _ignored(body[start]):
        start += 1
    while end > start and _ignored(body[end - 1]):
        end -= 1
    return body[start:end]


def _ignored(character: str) -> bool:
    # P: punctuation; So, Sk: other symbols (emoji) and modifiers (skin tones); Z: separators;
    # Cc, Cf: controls and format characters (zero-width joiner, emoji tags); Me and the
    # variation selectors finish an emoji or a keycap ("1" + U+FE0F + U+20E3 reads as 1).
    # Not math or currency symbols, but "~": "+1" or "$1" is not read as 1
    category = unicodedata.category(character)
    return (
        category[0] in "PZ"
        or category in _IGNORED_CATEGORIES
        or character == "~"
        or _VARIATION_SELECTOR.match(character) is not None
    )


_IGNORED_CATEGORIES = frozenset({"So", "Sk", "Cc", "Cf", "Me"})
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")

# one GSM-7 segment (160 characters), like the reminders
HELP_TEXT = (
    "dosewise: reply TAKEN when taken, SKIP to skip, LATER or LATER 20 for a reminder later, "
    "COLD when a cold starts, WELL when over, STOP to stop, START to resume."
)
HINT_TEXT = "Sorry, dosewise did not understand that. Reply TAKEN, SKIP, LATER, STOP or HELP."
