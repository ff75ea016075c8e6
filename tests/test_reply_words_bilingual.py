"""Reply words in English and Danish, read from anyone: the grammar of services.reply_words.

Each group below is one rule of the module's docstring; what must never happen (a guess read
as a confirmation) is tested beside what must.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from i18n import LANGUAGES, Translator, translator
from notifier.segments import count_segments
from services.reply_words import (
    MAX_SNOOZE_MINUTES,
    Reply,
    SaidTime,
    help_text,
    hint_text,
    read_reply,
)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("TAGET", "taken"),
        ("Taget den", "taken"),
        ("taget dem!", "taken"),
        ("har taget den", "taken"),
        ("JA", "yes"),
        ("ja tak", "yes"),
        ("SPRING OVER", "skip"),
        ("spring", "skip"),
        ("Spring den over", "skip"),
        ("NEJ", "skip"),
        ("SENERE", "later"),
        ("FORKØLET", "cold"),
        ("FORKOELET", "cold"),
        ("forkølet.", "cold"),
        ("SYG", "cold"),
        ("RASK", "well"),
        ("bedre", "well"),
        ("HJÆLP", "help"),
        ("hjaelp", "help"),
        ("spring\u00a0over", "skip"),  # a no-break space between the words
    ],
)
def test_danish_words_are_understood(body: str, kind: str) -> None:
    reply = read_reply(body)
    assert reply.kind == kind
    assert reply.language == "da"


@pytest.mark.parametrize(
    "body",
    ["took it", "Took them", "I took it", "done ✅", "taken thanks", "TAGET tak", "taken it 👍"],
)
def test_common_ways_of_saying_taken_are_taken(body: str) -> None:
    assert read_reply(body).kind == "taken"


@pytest.mark.parametrize("body", ["✅", "👍", "👍🏽", "✔️", "☑️", "✅✅", "👍 ✅"])
def test_an_emoji_that_means_yes_alone_is_taken(body: str) -> None:
    assert read_reply(body) == Reply("taken")


@pytest.mark.parametrize("body", ["👎", "❌", "✅❌", "taken ❌", "done 👎", "🙂", "🤷"])
def test_other_emoji_alone_or_an_emoji_that_means_no_is_never_taken(body: str) -> None:
    assert read_reply(body).kind == "unparsed"


@pytest.mark.parametrize(
    ("body", "minutes"),
    [
        ("LATER 20", 20),
        ("LATER 20 min", 20),
        ("later 20 mins", 20),
        ("Later 20 minutes", 20),
        ("later 20min", 20),
        ("LATER 2h", 120),
        ("LATER 2 h", 120),
        ("later 2 hours", 120),
        ("later 1 hour", 60),
        ("LATER 1.5h", 90),
        ("later 1,5 t", 90),
        ("LATER 90 min", 90),
        ("later 1h 30", 90),
        ("later in 45 minutes", 45),
        ("snooze 10", 10),
        ("3 15", 15),
        ("SENERE 20", 20),
        ("SENERE 1 time", 60),
        ("senere 2 timer", 120),
        ("senere 30 min", 30),
        ("senere 20 minutter", 20),
        ("senere 1 minut", 1),
        ("senere om 10 min", 10),
        ("senere 1 time 30 min", 90),
        ("SENERE 20 tak", 20),
        ("later 20 please ⏰", 20),
    ],
)
def test_durations_in_minutes_or_hours_in_both_languages(body: str, minutes: int) -> None:
    reply = read_reply(body)
    assert (reply.kind, reply.minutes) == ("later", minutes)
    assert reply.snooze_minutes_valid


@pytest.mark.parametrize(
    "body", ["later 1.5", "later 20 20", "later 20 sek", "later 20x", "later -5", "later soon"]
)
def test_a_duration_that_could_mean_two_things_is_unparsed(body: str) -> None:
    assert read_reply(body) == Reply("unparsed")


@pytest.mark.parametrize(("body", "minutes"), [("LATER 13h", 780), ("SENERE 0 min", 0)])
def test_a_duration_out_of_bounds_is_later_answered_with_the_bounds(
    body: str, minutes: int
) -> None:
    reply = read_reply(body)
    assert (reply.kind, reply.minutes, reply.snooze_minutes_valid) == ("later", minutes, False)
    assert read_reply(f"later {MAX_SNOOZE_MINUTES // 60}h").snooze_minutes_valid


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        "Stop!!",
        "STOP please",
        "stop ✋",
        "stop tak",
        "STOP TAGET",  # STOP wins over anything after it
        "cancel that",
        "End.",
        "quit",
        "STOPALL",
        "unsubscribe me",
    ],
)
def test_a_stop_family_word_first_is_stop_whatever_follows(body: str) -> None:
    assert read_reply(body).kind == "stop"


@pytest.mark.parametrize("body", ["START", "unstop", "Start igen"])
def test_start_first_is_start(body: str) -> None:
    assert read_reply(body).kind == "start"


@pytest.mark.parametrize(
    "body",
    [
        "Don't stop",  # not a STOP word first: not STOP, and certainly not TAKEN
        "don’t stop",
        "not taken",
        "ikke taget",
        "no idea",
        "nej tak ikke endnu",
        "taken?",
        "TAGET?",
        "did I take it?",
        "taken yesterday",
        "taken 8",  # a bare number is no time
        "yes but later",
        "I think I took it",
        "+1",
        "thanks",
    ],
)
def test_unclear_replies_are_never_read_as_anything(body: str) -> None:
    assert read_reply(body) == Reply("unparsed")


@pytest.mark.parametrize("body", ["?", "help?", "HJÆLP?", "info ?"])
def test_a_question_is_read_only_as_help(body: str) -> None:
    assert read_reply(body).kind == "help"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("taken at 8", SaidTime(8)),
        ("taget kl 8", SaidTime(8)),
        ("taget kl. 20.30", SaidTime(20, 30)),
        ("taget klokken 7", SaidTime(7)),
        ("taken at 8pm", SaidTime(8, 0, "pm")),
        ("taken at 8:15 am", SaidTime(8, 15, "am")),
        ("done 21:40 thanks", SaidTime(21, 40)),
    ],
)
def test_the_time_a_dose_was_taken_is_read(body: str, said: SaidTime) -> None:
    reply = read_reply(body)
    assert (reply.kind, reply.said) == ("taken", said)


@pytest.mark.parametrize("body", ["taken at 25", "taken at 8:75", "taken at 13pm"])
def test_a_time_that_is_no_time_is_unparsed(body: str) -> None:
    assert read_reply(body) == Reply("unparsed")


def test_a_time_without_am_or_pm_may_be_morning_or_evening() -> None:
    assert SaidTime(8).hours_of_day() == (8, 20)
    assert SaidTime(12).hours_of_day() == (0, 12)
    assert SaidTime(20).hours_of_day() == (20,)
    assert SaidTime(8, 0, "pm").hours_of_day() == (20,)
    assert SaidTime(12, 0, "am").hours_of_day() == (0,)


def test_words_of_every_language_have_no_language() -> None:
    for body in ("OK", "1", "👍", "STOP"):
        assert read_reply(body).language is None, body
    assert read_reply("TAKEN").language == "en"


@given(st.sampled_from(["not", "ikke", "no", "nej", "don't"]), st.sampled_from(["taken", "taget"]))
def test_a_negation_before_taken_is_never_taken(negation: str, word: str) -> None:
    assert read_reply(f"{negation} {word}").kind not in {"taken", "yes"}


# -- the answers that list the words ---------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("text", [help_text, hint_text])
def test_help_and_hint_are_one_gsm7_segment_in_every_language(
    text: Callable[[Translator], str], language: str
) -> None:
    written = text(translator(language))
    assert count_segments(written).encoding == "GSM-7"
    assert count_segments(written).segments == 1, (language, len(written))


def test_danish_help_and_hint_list_the_danish_words_which_are_understood() -> None:
    danish = translator("da")
    for text in (help_text(danish), hint_text(danish)):
        for word in ("TAGET", "SPRING OVER", "SENERE", "FORKØLET", "RASK", "STOP"):
            assert word in text, (word, text)
        assert "TAKEN" not in text and "SKIP" not in text
    assert read_reply("SENERE 20").minutes == 20  # the example the help gives
    assert "HJÆLP" in hint_text(danish)


def test_english_help_lists_the_english_words() -> None:
    english = help_text(translator("en"))
    for word in ("TAKEN", "SKIP", "LATER 20", "COLD", "WELL", "STOP", "START"):
        assert word in english
