"""What a person's SMS reply means: the reply words of domain-rules.md, English and Danish,
as one table, understood from anyone whatever their language.

How a reply is read, each rule in one sentence:

1. The text is normalised (Unicode NFC, case folded) and cut into words: runs of letters or
   digits, with an apostrophe inside a word ("don't") and a decimal point, comma or colon
   between digits ("1.5h", "20:30"); what lies between words must be spaces, punctuation or
   emoji, so a sign before a number ("+1", "$1", "-5") makes the reply unparsed.
2. A reply whose first word is one of the carriers' STOP family (STOP, STOPALL, UNSUBSCRIBE,
   CANCEL, END, QUIT) is STOP whatever follows ("stop tak", "Stop!!"); START or UNSTOP first
   is START likewise; "Don't stop" does not start with a STOP word, so it is not STOP.
3. A question (a "?" anywhere) is read only as HELP ("help?", or "?" alone); "taken?" is
   unparsed.
4. An emoji that means yes (✅ 👍 ✔ ☑ ✓ 👌) alone, or several of them, is TAKEN.
5. Otherwise the words must be, in order: one phrase of _PHRASES (the longest that fits:
   "spring over" before "spring"); for LATER, a duration if any; for TAKEN and YES, the time
   it was taken if any; then only courtesy words (thanks, tak, please, ...). Any other word
   makes the reply unparsed: "not taken", "no idea", "taken yesterday" record nothing.
6. An emoji that means no (❌ 👎 ✖ 🚫 ⛔ ...) anywhere makes a TAKEN or YES unparsed.

Durations (after LATER, SNOOZE, 3 or SENERE, optionally after "in" / "om"): a whole number of
minutes ("20"), or a number and a unit, written together or apart: minutes as m, min, mins,
minute(s), minut, minutter; hours as h, hr(s), hour(s), t, time, timer, where hours may have
a decimal part ("1.5h", "1,5 timer"); an hour part may be followed by a minute part ("1h 30",
"1 time 30 min"). A duration is rounded to whole minutes; one outside MIN_SNOOZE_MINUTES to
MAX_SNOOZE_MINUTES is still read as LATER and answered with the bounds.

The time a dose was taken: "at" / "kl" / "klokken" and an hour, H:MM or H.MM ("taken at 8",
"taget kl 20.30"), with am/pm if written; an H:MM or H.MM alone needs no "at". Which
instant it names (today or yesterday, morning or evening) is the use case's to decide.

Anything unparsed is stored and answered with a hint listing the words; never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from i18n import Translator

ReplyKind = Literal[
    "taken", "skip", "later", "cold", "well", "stop", "start", "help", "yes", "unparsed"
]

# (the words, what they mean, their language: "" for words of every language). "YES" means
# TAKEN, except right after STOP, where it means START: the use case decides.
_PHRASES: tuple[tuple[str, ReplyKind, str], ...] = (
    ("taken", "taken", "en"),
    ("taken it", "taken", "en"),
    ("taken them", "taken", "en"),
    ("took it", "taken", "en"),
    ("took them", "taken", "en"),
    ("took", "taken", "en"),
    ("i took it", "taken", "en"),
    ("i took them", "taken", "en"),
    ("done", "taken", "en"),
    ("ok", "taken", ""),
    ("okay", "taken", ""),
    ("y", "taken", "en"),
    ("1", "taken", ""),
    ("taget", "taken", "da"),
    ("taget den", "taken", "da"),
    ("taget dem", "taken", "da"),
    ("har taget den", "taken", "da"),
    ("har taget dem", "taken", "da"),
    ("yes", "yes", "en"),
    ("ja", "yes", "da"),
    ("skip", "skip", "en"),
    ("skip it", "skip", "en"),
    ("skipped", "skip", "en"),
    ("no", "skip", "en"),
    ("n", "skip", "en"),
    ("2", "skip", ""),
    ("spring over", "skip", "da"),
    ("spring den over", "skip", "da"),
    ("spring", "skip", "da"),
    ("sprunget over", "skip", "da"),
    ("nej", "skip", "da"),
    ("later", "later", "en"),
    ("snooze", "later", "en"),
    ("3", "later", ""),
    ("senere", "later", "da"),
    ("cold", "cold", "en"),
    ("sick", "cold", "en"),
    ("forkølet", "cold", "da"),
    ("forkoelet", "cold", "da"),
    ("syg", "cold", "da"),
    ("well", "well", "en"),
    ("better", "well", "en"),
    ("feeling better", "well", "en"),
    ("rask", "well", "da"),
    ("bedre", "well", "da"),
    ("help", "help", "en"),
    ("info", "help", ""),
    ("hjælp", "help", "da"),
    ("hjaelp", "help", "da"),
)
# honoured first, in every language, whatever follows the first word
_FIRST_WORDS: dict[str, ReplyKind] = {
    **dict.fromkeys(("stop", "stopall", "unsubscribe", "cancel", "end", "quit"), "stop"),
    **dict.fromkeys(("start", "unstop"), "start"),
}
# words that may follow a reply without changing it ("taken thanks", "SENERE 20 tak")
_COURTESY = frozenset(
    {"thanks", "thank", "you", "thx", "ty", "tks", "please", "pls", "plz", "cheers"}
    | {"tak", "mange", "tusind", "venligst"}
)
_YES_EMOJI = frozenset("\u2705\U0001f44d\u2714\u2611\u2713\U0001f44c")
_NO_EMOJI = frozenset("\u274c\u274e\U0001f44e\u2716\U0001f6ab\u26d4\u2717\u2718")
_HOUR_UNITS = frozenset(["h", "hr", "hrs", "hour", "hours", "t", "time", "timer"])
_MINUTE_UNITS = frozenset(["m", "min", "mins", "minute", "minutes", "minut", "minutter"])
_UNITS = _HOUR_UNITS | _MINUTE_UNITS
_DURATION_LEAD = frozenset(("in", "om"))
_TIME_LEAD = frozenset(("at", "kl", "klokken"))
_MERIDIEM = frozenset(("am", "pm"))

# the minutes LATER takes; others are read as LATER and answered with these bounds
MIN_SNOOZE_MINUTES, MAX_SNOOZE_MINUTES = 1, 12 * 60
_MINUTES_DIGITS = 6  # more digits than this are out of bounds however they read
_OUT_OF_BOUNDS = 10**_MINUTES_DIGITS

_WORD = re.compile(r"\d+(?:[.,:]\d+)?[^\W\d_]*|[^\W\d_]+(?:['’][^\W\d_]+)*")
_NUMBER_AND_UNIT = re.compile(r"(\d+(?:[.,]\d+)?)([^\W\d_]*)")
_CLOCK = re.compile(r"(\d{1,2})(?:[.:](\d{2}))?(am|pm)?")
_SIGNS = frozenset("-\u2212")  # a minus before a number: "-5" is not 5


@dataclass(frozen=True)
class SaidTime:
    """The time of day a reply says a dose was taken, as written: 8, 8:30, 8pm."""

    hour: int
    minute: int = 0
    meridiem: Literal["am", "pm"] | None = None

    def hours_of_day(self) -> tuple[int, ...]:
        """The hours (0-23) it may mean: "8" is 08:00 or 20:00, "8pm" is 20:00."""
        if self.meridiem is not None:
            return ((self.hour % 12) + (12 if self.meridiem == "pm" else 0),)
        if 1 <= self.hour <= 12:
            return (self.hour % 12, self.hour % 12 + 12)
        return (self.hour,)


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    # for LATER: the minutes asked for, if any, as written (see snooze_minutes_valid)
    minutes: int | None = None
    # for TAKEN and YES: the time of day the reply says the dose was taken, if it says one
    said: SaidTime | None = None
    # the language of the words ("da", "en"), None for words of every language
    language: str | None = field(default=None, compare=False)

    @property
    def snooze_minutes_valid(self) -> bool:
        return self.minutes is None or MIN_SNOOZE_MINUTES <= self.minutes <= MAX_SNOOZE_MINUTES


UNPARSED = Reply("unparsed")
_TABLE: dict[tuple[str, ...], tuple[ReplyKind, str]] = {
    tuple(words.split()): (kind, language) for words, kind, language in _PHRASES
}
_LONGEST = max(len(words) for words in _TABLE)


@lru_cache(maxsize=4096)  # the same few words arrive again and again; a Reply is immutable
def read_reply(body: str) -> Reply:
    """What `body` means, by the rules of the module's docstring."""
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", body).casefold())
    words = _words(text)
    if words is None:
        return UNPARSED
    if words and words[0] in _FIRST_WORDS:
        return Reply(_FIRST_WORDS[words[0]])
    if "?" in text:
        return Reply("help") if _is_help(words) else UNPARSED
    if not words:
        marks = {character for character in text if _is_emoji_mark(character)}
        yes = marks and marks <= _YES_EMOJI
        return Reply("taken") if yes else UNPARSED
    reply = _phrase_reply(words)
    if reply.kind in ("taken", "yes") and any(character in _NO_EMOJI for character in text):
        return UNPARSED
    return reply


def _words(text: str) -> list[str] | None:
    """The words of `text`, or None when something between them is not space, punctuation or
    an emoji (a sign, a currency symbol)."""
    words: list[str] = []
    position = 0
    for found in _WORD.finditer(text):
        gap = text[position : found.start()]
        if not all(_ignored(character) for character in gap):
            return None
        if gap and gap[-1] in _SIGNS and found.group()[0].isdigit():
            return None
        words.append(found.group())
        position = found.end()
    if not all(_ignored(character) for character in text[position:]):
        return None
    return words


def _is_help(words: list[str]) -> bool:
    if not words:
        return True  # "?" alone
    reply = _phrase_reply(words)
    return reply.kind == "help"


def _phrase_reply(words: list[str]) -> Reply:
    for length in range(min(_LONGEST, len(words)), 0, -1):
        meaning = _TABLE.get(tuple(words[:length]))
        if meaning is None:
            continue
        kind, language = meaning
        rest = words[length:]
        minutes: int | None = None
        said: SaidTime | None = None
        if kind == "later":
            minutes, rest = _duration(rest)
        elif kind in ("taken", "yes"):
            said, rest = _said_time(rest)
        if not all(word in _COURTESY for word in rest):
            return UNPARSED
        return Reply(kind, minutes, said, language or None)
    return UNPARSED


def _duration(words: list[str]) -> tuple[int | None, list[str]]:
    """(minutes, the words after the duration) from the words after LATER; (None, words) when
    they do not start with a duration."""
    start = 1 if words and words[0] in _DURATION_LEAD else 0
    first, index = _duration_part(words, start)
    if first is None:
        return None, words
    number, unit = first
    if len(number.replace(",", ".").split(".")[0]) > _MINUTES_DIGITS:
        return _OUT_OF_BOUNDS, words[index:]
    if unit in _HOUR_UNITS:
        minutes = round(float(number.replace(",", ".")) * 60)
        second, after = _duration_part(words, index)
        if second is not None and second[1] not in _HOUR_UNITS:
            extra = _whole(second[0])
            if extra is not None:  # "1h 30", "1 time 30 min"
                minutes, index = minutes + min(extra, _OUT_OF_BOUNDS), after
        return minutes, words[index:]
    whole = _whole(number)  # minutes: "LATER 1.5" could be minutes or hours, so neither
    return (None, words) if whole is None else (whole, words[index:])


def _duration_part(words: list[str], index: int) -> tuple[tuple[str, str] | None, int]:
    """(number, unit) at words[index], the unit written with it or as the next word, and the
    index after it; (None, index) when there is none."""
    found = _NUMBER_AND_UNIT.fullmatch(words[index]) if index < len(words) else None
    if found is None:
        return None, index
    number, unit = found.groups()
    after = index + 1
    if not unit and after < len(words) and words[after] in _UNITS:
        unit, after = words[after], after + 1
    if unit and unit not in _UNITS:
        return None, index
    return (number, unit), after


def _whole(number: str) -> int | None:
    """A whole number of minutes as written, clamped past _MINUTES_DIGITS; None for "1.5"."""
    if not number.isdigit():
        return None
    return _OUT_OF_BOUNDS if len(number) > _MINUTES_DIGITS else int(number)


def _said_time(words: list[str]) -> tuple[SaidTime | None, list[str]]:
    """(the time of day, the words after it) from the words after TAKEN; (None, words)."""
    lead = 1 if words and words[0] in _TIME_LEAD else 0
    if len(words) <= lead:
        return None, words
    found = _CLOCK.fullmatch(words[lead])
    if found is None:
        return None, words
    hour, minute, meridiem = int(found[1]), int(found[2] or 0), found[3]
    rest = words[lead + 1 :]
    if meridiem is None and rest and rest[0] in _MERIDIEM:
        meridiem, rest = rest[0], rest[1:]
    if not lead and found[2] is None:
        return None, words  # a bare number is no time: "taken 8"
    if minute > 59 or hour > 23 or (meridiem is not None and not 1 <= hour <= 12):
        return None, words
    said = SaidTime(hour, minute, "pm" if meridiem == "pm" else "am" if meridiem else None)
    return said, rest


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


def _is_emoji_mark(character: str) -> bool:
    """A symbol that carries meaning, as opposed to what finishes one (skin tones, joiners,
    variation selectors) or punctuation and spaces."""
    return unicodedata.category(character) == "So"


_IGNORED_CATEGORIES = frozenset({"So", "Sk", "Cc", "Cf", "Me"})
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def help_text(words: Translator) -> str:
    """The answer to HELP: the reply words in the reader's language, in one GSM-7 segment."""
    return words.gettext(
        "dosewise: reply TAKEN when taken, SKIP to skip, LATER or LATER 20 for a reminder "
        "later, COLD when a cold starts, WELL when over, STOP to stop, START to resume."
    )


def hint_text(words: Translator) -> str:
    """The answer to a reply that was not understood: the words it could have been."""
    return words.gettext(
        "Sorry, dosewise did not understand that. Reply TAKEN, SKIP, LATER 20, COLD, WELL, "
        "STOP or HELP."
    )
