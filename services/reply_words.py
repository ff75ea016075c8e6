"""What a person's SMS reply means: the words of domain-rules.md as one table.

Case-insensitive; surrounding spaces and punctuation are ignored. Anything else is `unparsed`:
stored and answered with a hint, never guessed as a confirmation.
"""

from __future__ import annotations

import re
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
_EDGE_PUNCTUATION = " \t\r\n.,;:!?¡¿'\"()[]{}-_*~"
_SNOOZE_WITH_MINUTES = re.compile(r"^(LATER|SNOOZE|3)\s+(\d{1,4})\s*(M|MIN|MINS|MINUTES)?$")
MAX_SNOOZE_MINUTES = 12 * 60


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    minutes: int | None = None  # for LATER: the minutes asked for, if any


def read_reply(body: str) -> Reply:
    text = " ".join(body.strip(_EDGE_PUNCTUATION).upper().split())
    kind = _WORDS.get(text)
    if kind is not None:
        return Reply(kind)
    match = _SNOOZE_WITH_MINUTES.match(text)
    if match is not None:
        minutes = int(match.group(2))
        if 1 <= minutes <= MAX_SNOOZE_MINUTES:
            return Reply("later", minutes)
    return Reply("unparsed")


# one GSM-7 segment (160 characters), like the reminders
HELP_TEXT = (
    "dosewise: reply TAKEN when taken, SKIP to skip, LATER or LATER 20 for a reminder later, "
    "COLD when a cold starts, WELL when over, STOP to stop, START to resume."
)
HINT_TEXT = "Sorry, dosewise did not understand that. Reply TAKEN, SKIP, LATER, STOP or HELP."
