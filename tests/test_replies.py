"""Reading SMS replies: the words of domain-rules.md, and never a guess."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reply_words import Reply, read_reply, strip_edges


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


@given(st.text(max_size=200))
def test_garbage_is_never_read_as_a_confirmation(body: str) -> None:
    reply = read_reply(body)
    if reply.kind in {"taken", "yes"}:
        # what is left once symbols and punctuation around it go is one of the words
        word = strip_edges(body).upper()
        assert " ".join(word.split()) in {"TAKEN", "YES", "Y", "DONE", "OK", "1"}
        assert not any(character.isalnum() for character in body.replace(strip_edges(body), ""))


@pytest.mark.parametrize("minutes", [0, 721, 99999])
def test_minutes_out_of_bounds_are_flagged(minutes: int) -> None:
    assert not read_reply(f"LATER {minutes}").snooze_minutes_valid
    assert read_reply("LATER 720").snooze_minutes_valid and read_reply("LATER").snooze_minutes_valid
