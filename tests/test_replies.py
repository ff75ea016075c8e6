"""Reading SMS replies: the words of domain-rules.md, and never a guess."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reply_words import Reply, read_reply


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("TAKEN", Reply("taken")),
        ("  taken. ", Reply("taken")),
        ("Done!", Reply("taken")),
        ("ok", Reply("taken")),
        ("y", Reply("taken")),
        ("1", Reply("taken")),
        ("yes", Reply("yes")),
        ("skip", Reply("skip")),
        ("No.", Reply("skip")),
        ("2", Reply("skip")),
        ("LATER", Reply("later")),
        ("snooze", Reply("later")),
        ("later 20", Reply("later", 20)),
        ("LATER 45 min", Reply("later", 45)),
        ("3 15", Reply("later", 15)),
        ("Cold", Reply("cold")),
        ("sick!!", Reply("cold")),
        ("better", Reply("well")),
        ("WELL", Reply("well")),
        ("STOP", Reply("stop")),
        ("stopall", Reply("stop")),
        ("Unsubscribe", Reply("stop")),
        ("cancel", Reply("stop")),
        ("end", Reply("stop")),
        ("quit", Reply("stop")),
        ("START", Reply("start")),
        ("unstop", Reply("start")),
        ("help", Reply("help")),
        ("INFO?", Reply("help")),
        ("taken it yesterday maybe", Reply("unparsed")),
        # out of bounds: read as LATER, and answered with the bounds (services.replies)
        ("later 0", Reply("later", 0)),
        ("later 721", Reply("later", 721)),
        ("LATER 99999", Reply("later", 99999)),
        ("later " + "9" * 5000, Reply("later", 1_000_000)),
        ("later -5", Reply("unparsed")),
        # emoji around the words are ignored like punctuation
        ("Taken 👍", Reply("taken")),
        ("👍🏽 done", Reply("taken")),
        ("✅ TAKEN ✅", Reply("taken")),
        ("skip 🙏\u200d", Reply("skip")),
        ("1\ufe0f\u20e3", Reply("taken")),
        ("later 20 ⏰", Reply("later", 20)),
        ("taken 👍 yesterday", Reply("unparsed")),
        ("~ok~", Reply("taken")),
        ("+1", Reply("unparsed")),
        ("$1", Reply("unparsed")),
        ("", Reply("unparsed")),
        ("🙂", Reply("unparsed")),
        ("I did not take it", Reply("unparsed")),
    ],
)
def test_reply_words(body: str, expected: Reply) -> None:
    assert read_reply(body) == expected


# every word a confirmation can be read from: the TAKEN and YES phrases, the time it was taken
# and courtesy words; anything else in a reply makes it something else, or unparsed
_CONFIRMING = (
    "taken took it them i done ok okay y 1 taget den dem har yes ja at kl klokken am pm "
    "thanks thank you thx ty tks please pls plz cheers tak mange tusind venligst"
)
CONFIRMING_WORDS = frozenset(_CONFIRMING.split())
TIME = re.compile(r"\d{1,2}(?:[.:]\d\d)?(?:am|pm)?")


def _confirming(word: str) -> bool:
    return word in CONFIRMING_WORDS or TIME.fullmatch(word) is not None


@given(st.text(max_size=200))
def test_garbage_is_never_read_as_a_confirmation(body: str) -> None:
    reply = read_reply(body)
    if reply.kind in {"taken", "yes"}:
        text = unicodedata.normalize("NFC", body).casefold()
        assert "?" not in text
        words = re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text)
        assert all(_confirming(word) for word in words), words


@given(
    st.lists(
        st.sampled_from(
            [*sorted(CONFIRMING_WORDS), "not", "no", "ikke", "idea", "yesterday", "maybe"]
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([" ", ", ", "! ", " 👍 ", "... "]),
)
def test_a_word_outside_the_confirming_ones_is_never_a_confirmation(
    words: list[str], separator: str
) -> None:
    reply = read_reply(separator.join(words))
    if not all(_confirming(word) for word in words):
        assert reply.kind not in {"taken", "yes"}


@pytest.mark.parametrize("minutes", [0, 721, 99999])
def test_minutes_out_of_bounds_are_flagged(minutes: int) -> None:
    assert not read_reply(f"LATER {minutes}").snooze_minutes_valid
    assert read_reply("LATER 720").snooze_minutes_valid and read_reply("LATER").snooze_minutes_valid
