"""Reading SMS replies: the words of domain-rules.md, and never a guess."""

from __future__ import annotations

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
        ("later 0", Reply("unparsed")),
        ("later 99999", Reply("unparsed")),
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
        word = body.strip(" \t\r\n.,;:!?¡¿'\"()[]{}-_*~").upper()
        assert " ".join(word.split()) in {"TAKEN", "YES", "Y", "DONE", "OK", "1"}
