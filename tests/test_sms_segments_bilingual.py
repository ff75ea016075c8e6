"""SMS reminders stay in GSM-7 and in one segment in both languages: every combination of
one to four known supplements at realistic (long) doses, every head (initial, follow-up,
snooze), with and without iron's note, measured with notifier.segments; custom names as
people write them, generated."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

import i18n
import schemas.languages
from notifier.segments import GSM7_BASIC, count_segments, is_gsm7
from scheduler.reminders import LOZENGE_NAME
from schemas.languages import LANGUAGES
from services.texts import Purpose, sms_body, sms_safe

# 11:30 in Copenhagen; iron's note says 14:30
DUE = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
ZONE = "Europe/Copenhagen"
PURPOSES: tuple[Purpose, ...] = ("initial", "followup", "snooze")
# the largest dose commonly taken of each supplement, written as long as a dose gets
LONG_DOSES = {
    "iron": "65 mg",
    "vitamin_c": "1000 mg",
    "zinc": "25 mg",
    "selenium": "200 µg",
    "magnesium": "375 mg",
    "copper": "2.5 mg",
    "calcium": "500 mg",
    "vitamin_d": "1000 IU",
    "vitamin_b12": "1000 µg",
    "folate": "400 µg",
    "vitamin_a": "800 µg",
    "vitamin_e": "15 mg",
    "vitamin_k": "100 µg",
    "iodine": "150 µg",
    "omega_3": "1000 mg",
    "potassium": "99 mg",
}


def _item(key: str) -> dict[str, Any]:
    return {"supplement": key, "dose": LONG_DOSES[key], "name": key}


def _reminders(sizes: range) -> Iterator[tuple[list[dict[str, Any]], Purpose]]:
    for size in sizes:
        for keys in combinations(LONG_DOSES, size):
            for purpose in PURPOSES:
                yield [_item(key) for key in keys], purpose


def test_every_known_supplement_has_a_long_dose_to_measure() -> None:
    table = Path(schemas.languages.__file__).parent / "data" / "display_names.csv"
    with table.open(encoding="utf-8", newline="") as file:
        known = {row["canonical"] for row in csv.DictReader(file)}
    assert known == set(LONG_DOSES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reminder_of_one_to_three_known_supplements_is_one_gsm7_segment(
    language: str,
) -> None:
    for items, purpose in _reminders(range(1, 4)):
        body = sms_body(items, DUE, ZONE, purpose, language=language)
        counted = count_segments(body)
        assert (counted.encoding, counted.segments) == ("GSM-7", 1), body


@pytest.mark.parametrize("language", LANGUAGES)
def test_four_supplements_are_one_segment_and_two_at_most_with_irons_note(language: str) -> None:
    for items, purpose in _reminders(range(4, 5)):
        body = sms_body(items, DUE, ZONE, purpose, language=language)
        counted = count_segments(body)
        with_iron = any(item["supplement"] == "iron" for item in items)
        assert counted.encoding == "GSM-7", body
        assert counted.segments <= (2 if with_iron else 1), body


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_zinc_lozenge_reminder_is_one_segment(language: str) -> None:
    items = [{"supplement": "zinc", "dose": "14 mg", "name": LOZENGE_NAME}]
    for purpose in PURPOSES:
        counted = count_segments(sms_body(items, DUE, ZONE, purpose, language=language))
        assert (counted.encoding, counted.segments) == ("GSM-7", 1)


def test_danish_letters_keep_a_reminder_in_gsm7() -> None:
    body = sms_body([_item("iron")], DUE, ZONE, "initial", language="da")
    assert set("æø") <= set(body)  # "mælkeprodukter før": Danish letters, still GSM-7
    assert count_segments(body).encoding == "GSM-7"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_name_a_reminder_can_show_is_gsm7(language: str) -> None:
    for key in LONG_DOSES:
        items = [_item(key)]
        assert is_gsm7(sms_body(items, DUE, ZONE, "initial", language=language)), key


# a custom item is named as the person wrote it: letters of their language, digits, hyphens
_CUSTOM_LETTERS = "abcdefghijklmnopqrstuvwxyzæøåABCDEFGHIJKLMNOPQRSTUVWXYZÆØÅ0123456789- "
custom_names = st.text(alphabet=_CUSTOM_LETTERS, min_size=1, max_size=24).map(str.strip)


@settings(max_examples=300, deadline=None)
@given(
    language=st.sampled_from(LANGUAGES),
    purpose=st.sampled_from(PURPOSES),
    custom=custom_names.filter(bool),
    known=st.sampled_from(sorted(LONG_DOSES)),
)
def test_a_custom_item_with_a_known_one_is_one_segment(
    language: str, purpose: Purpose, custom: str, known: str
) -> None:
    items = [{"supplement": "custom", "dose": "1000 mg", "name": custom}, _item(known)]
    body = sms_body(items, DUE, ZONE, purpose, language=language)
    counted = count_segments(body)
    assert (counted.encoding, counted.segments) == ("GSM-7", 1), body


def test_a_micro_sign_in_a_custom_name_is_spelled_mcg_for_the_sms() -> None:
    items = [{"supplement": "k2_mk7", "dose": "100 µg", "name": "K2 MK-7 100µg"}]
    body = sms_body(items, DUE, ZONE, "initial", language="da")
    assert "µ" not in body and is_gsm7(body)
    assert sms_safe("100 μg") == "100 mcg"  # the Greek mu is typed too


@pytest.mark.parametrize("language", [code for code in i18n.LANGUAGES if code != "en"])
def test_a_translation_brings_no_character_outside_gsm7_its_english_lacks(language: str) -> None:
    """Any catalogue text may reach an SMS (the answers to replies too): a translation keeps
    to GSM-7 wherever the English text does, so it never turns an SMS into UCS-2."""
    path = i18n.LOCALES / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as po:
        catalogue = read_po(po, locale=language)
    added = {}
    for message in catalogue:
        if not message.id:
            continue  # the header
        english = "".join(message.id) if isinstance(message.id, tuple) else message.id
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        outside = {ch for form in forms for ch in form or "" if not is_gsm7(ch)}
        if outside - {ch for ch in english if not is_gsm7(ch)}:
            added[english] = sorted(outside)
    assert not added, added


def test_the_gsm7_alphabet_has_the_danish_letters() -> None:
    assert set("æøåÆØÅ") <= GSM7_BASIC
