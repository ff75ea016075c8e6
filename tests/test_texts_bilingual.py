"""Every text of a reminder in the person's language: SMS heads, iron's note, the reply hint,
the e-mail's subject, text and HTML, the fallback note and the confirm pages, with supplement
names and doses written the reader's way; iron's note counted again at sending in either
language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from i18n import translator
from services.sending import fallback_note
from services.texts import (
    doses,
    email_text,
    keep_away_from_sending,
    same_text,
    sms_body,
)
from tracker.pages import link_page, reader_language, unavailable_page, unknown_link_page

# 10:30 UTC is 11:30 in Copenhagen; iron keeps dairy away 3 h: until 14:30
DUE = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
ZONE = "Europe/Copenhagen"
IRON_AND_C = [
    {"supplement": "iron", "dose": "18 mg", "name": "Jern"},
    {"supplement": "vitamin_c", "dose": "250 mg", "name": "vitamin C"},
]
URL = "https://dosewise.example/confirm/abc"


def test_a_danish_sms_is_danish_from_head_to_reply_hint() -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, "initial", language="da")
    assert body == (
        "dosewise 11:30: jern 18 mg + C-vitamin 250 mg. Ingen mælkeprodukter før 14:30. "
        "Svar TAGET, SPRING OVER eller SENERE"
    )


def test_an_english_sms_reads_as_before_with_the_tables_names() -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, "initial", language="en")
    assert body == (
        "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Keep dairy away until 14:30. "
        "Reply TAKEN, SKIP or LATER"
    )


@pytest.mark.parametrize(
    ("language", "purpose", "head"),
    [
        ("en", "followup", "dosewise 11:30, not answered yet: "),
        ("en", "snooze", "dosewise 11:30 again: "),
        ("da", "followup", "dosewise 11:30, ikke besvaret: "),
        ("da", "snooze", "dosewise 11:30 igen: "),
    ],
)
def test_follow_up_and_snooze_heads_are_in_the_persons_language(
    language: str, purpose: str, head: str
) -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, purpose, language=language)  # type: ignore[arg-type]
    assert body.startswith(head)


def test_a_custom_item_keeps_the_name_the_person_wrote_in_both_languages() -> None:
    items = [{"supplement": "ashwagandha_ksm_66", "dose": "300 mg", "name": "Ashwagandha KSM-66"}]
    for language in ("en", "da"):
        assert doses(items, language) == "Ashwagandha KSM-66 300 mg"


def test_a_known_supplement_is_shown_by_the_readers_name_whatever_the_file_wrote() -> None:
    items = [
        {"supplement": "vitamin_b12", "dose": "500 µg", "name": "methylcobalamin"},
        {"supplement": "iodine", "dose": "150 µg", "name": "iodine"},
    ]
    assert doses(items, "da") == "B12-vitamin 500 µg + jod 150 µg"
    assert doses(items, "en") == "vitamin B12 500 µg + iodine 150 µg"


def test_a_zinc_lozenge_is_named_as_a_lozenge_in_each_language() -> None:
    items = [{"supplement": "zinc", "dose": "14 mg", "name": "zinc lozenge"}]
    assert sms_body(items, DUE, ZONE, "initial", language="da").startswith(
        "dosewise 11:30: zinksugetablet 14 mg."
    )
    assert sms_body(items, DUE, ZONE, "initial", language="en").startswith(
        "dosewise 11:30: zinc lozenge 14 mg."
    )


def test_danish_writes_a_decimal_comma_and_ie_for_international_units() -> None:
    items = [
        {"supplement": "copper", "dose": "0.5 mg", "name": "kobber"},
        {"supplement": "vitamin_d", "dose": "1000 IU", "name": "D-vitamin"},
    ]
    assert doses(items, "da") == "kobber 0,5 mg + D-vitamin 1000 IE"
    assert doses(items, "en") == "copper 0.5 mg + vitamin D 1000 IU"
    sms = sms_body(items, DUE, ZONE, "initial", language="da")
    mail = email_text(items, DUE, ZONE, "initial", URL, language="da")
    for text in (sms, mail.subject, mail.plain, mail.html):
        assert "0,5 mg" in text and "1000 IE" in text
        assert "0.5" not in text and "IU" not in text


def test_an_sms_spells_micrograms_mcg_and_an_email_keeps_the_micro_sign() -> None:
    items = [{"supplement": "selenium", "dose": "100 µg", "name": "Selen"}]
    for language, name in (("en", "selenium"), ("da", "selen")):
        assert f"{name} 100 mcg." in sms_body(items, DUE, ZONE, "initial", language=language)
        mail = email_text(items, DUE, ZONE, "initial", URL, language=language)
        assert f"{name} 100 µg" in mail.plain


def test_a_danish_email_is_danish_in_subject_text_and_html() -> None:
    mail = email_text(IRON_AND_C, DUE, ZONE, "initial", URL, language="da")
    assert mail.subject == "dosewise kl. 11:30: jern 18 mg + C-vitamin 250 mg"
    assert mail.plain.splitlines() == [
        "Tid til at tage jern 18 mg + C-vitamin 250 mg (kl. 11:30).",
        "Ingen mælkeprodukter før 14:30.",
        "",
        f"Taget: {URL}",
        f"Sprunget over: {URL}?action=skip",
        "",
        "dosewise",
    ]
    assert mail.html.startswith('<html lang="da">')
    assert f'<a href="{URL}">Jeg har taget den</a>' in mail.html
    assert f'<a href="{URL}?action=skip">Spring denne over</a>' in mail.html
    assert "<p>Ingen mælkeprodukter før 14:30.</p>" in mail.html


def test_an_english_email_says_its_language_too() -> None:
    mail = email_text(IRON_AND_C, DUE, ZONE, "snooze", URL, language="en")
    assert mail.subject == "Again: dosewise 11:30: iron 18 mg + vitamin C 250 mg"
    assert mail.html.startswith('<html lang="en">')
    assert "I took it</a>" in mail.html and "Skip this one</a>" in mail.html


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("en", "Not answered yet: dosewise 11:30: iron 18 mg + vitamin C 250 mg"),
        ("da", "Endnu ikke besvaret: dosewise kl. 11:30: jern 18 mg + C-vitamin 250 mg"),
    ],
)
def test_a_follow_up_emails_subject_says_it_was_not_answered(language: str, subject: str) -> None:
    assert email_text(IRON_AND_C, DUE, ZONE, "followup", URL, language=language).subject == subject


def test_a_custom_name_is_escaped_in_the_html_of_either_language() -> None:
    items = [{"supplement": "tea_oil", "dose": "2 mg", "name": "<b>tea & oil</b>"}]
    mail = email_text(items, DUE, ZONE, "initial", URL, language="da")
    assert "&lt;b&gt;tea &amp; oil&lt;/b&gt; 2 mg" in mail.html
    assert "<b>" not in mail.html


def test_the_fallback_note_is_the_first_line_in_the_persons_language() -> None:
    note = fallback_note("da")
    assert note == (
        "Vi kunne ikke sende denne påmindelse til din telefon som sms, så her kommer den på e-mail."
    )
    mail = email_text(IRON_AND_C, DUE, ZONE, "initial", URL, language="da", note=note)
    assert mail.plain.splitlines()[0] == note
    assert fallback_note("en").startswith("We could not send this reminder to your phone by SMS")


def test_a_language_dosewise_does_not_write_reads_in_english() -> None:
    assert sms_body(IRON_AND_C, DUE, ZONE, "initial", language="fr") == sms_body(
        IRON_AND_C, DUE, ZONE, "initial", language="en"
    )


def test_a_language_is_read_from_its_catalogue_once() -> None:
    assert translator("da") is translator("da")
    assert translator("en") is not translator("da")


# -- iron's note at sending ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "queued", "sent"),
    [
        ("en", "Keep dairy away until 14:30.", "Keep dairy away until 15:34."),
        ("da", "Ingen mælkeprodukter før 14:30.", "Ingen mælkeprodukter før 15:34."),
    ],
)
def test_the_note_is_counted_again_from_the_sending_in_the_bodys_language(
    language: str, queued: str, sent: str
) -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, "snooze", language=language)
    assert queued in body
    resent = keep_away_from_sending(body, DUE + timedelta(hours=1, minutes=4), ZONE)
    assert sent in resent and queued not in resent
    assert resent.startswith("dosewise 11:30")  # the dose's own time is unchanged
    assert same_text(resent, body)


def test_a_danish_email_note_is_counted_again_in_its_text_and_html() -> None:
    mail = email_text(IRON_AND_C, DUE, ZONE, "snooze", URL, language="da")
    packed = f"{mail.plain}\n{mail.html}"
    resent = keep_away_from_sending(packed, DUE + timedelta(minutes=95), ZONE)
    assert resent.count("Ingen mælkeprodukter før 16:05.") == 2
    assert "14:30" not in resent


def test_the_note_is_counted_in_the_persons_zone_across_a_clock_change() -> None:
    # New York falls back at 06:00 UTC on 1 November 2026: 01:30 EDT + 3 h is 03:30 EST
    planned = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    body = sms_body(IRON_AND_C, planned, "America/New_York", "snooze", language="da")
    resent = keep_away_from_sending(
        body, planned + timedelta(hours=2, minutes=30), "America/New_York"
    )
    assert "Ingen mælkeprodukter før 03:30." in resent


def test_a_body_without_iron_is_sent_as_it_was_queued() -> None:
    items = [{"supplement": "magnesium", "dose": "300 mg", "name": "magnesium"}]
    for language in ("en", "da"):
        body = sms_body(items, DUE, ZONE, "snooze", language=language)
        assert keep_away_from_sending(body, DUE + timedelta(hours=2), ZONE) is body


def test_an_unknown_zone_keeps_the_queued_time() -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, "snooze", language="da")
    assert keep_away_from_sending(body, DUE + timedelta(hours=2), "Mars/Olympus") == body


@pytest.mark.parametrize("language", ["en", "da"])
def test_same_text_tells_a_different_message_apart(language: str) -> None:
    body = sms_body(IRON_AND_C, DUE, ZONE, "snooze", language=language)
    other = sms_body(IRON_AND_C, DUE + timedelta(minutes=30), ZONE, "snooze", language=language)
    assert not same_text(other, body)  # the dose's own time differs, not only the note's
    english = sms_body(IRON_AND_C, DUE, ZONE, "snooze", language="en")
    danish = sms_body(IRON_AND_C, DUE, ZONE, "snooze", language="da")
    assert not same_text(english, danish)


# -- confirm pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "title"),
    [
        ("recorded", "Registreret"),
        ("used", "Linket er allerede brugt"),
        ("expired", "Linket er udløbet"),
        ("closed", "Allerede besvaret"),
    ],
)
def test_a_confirm_page_for_a_danish_person_is_danish(status: str, title: str) -> None:
    page = link_page(status, "Jern registreret kl. 11:42.", "da")
    assert '<html lang="da">' in page
    assert f"<title>dosewise: {title}</title>" in page
    assert f"<h1>{title}</h1>" in page


def test_a_confirm_page_without_a_language_is_english() -> None:
    page = link_page("recorded", "Iron logged at 11:42.", None)
    assert '<html lang="en">' in page and "<h1>Recorded</h1>" in page


def test_the_pages_for_an_unknown_link_and_an_outage_are_in_the_readers_language() -> None:
    assert "<h1>Ukendt link</h1><p>Dette link er ikke sendt af dosewise.</p>" in (
        unknown_link_page("da")
    )
    assert "<h1>Unknown link</h1><p>This link is not one dosewise sent.</p>" in (
        unknown_link_page("en")
    )
    down = unavailable_page("da")
    assert '<html lang="da">' in down and "Åbn venligst linket igen senere." in down


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("da-DK,da;q=0.9,en-US;q=0.8,en;q=0.7", "da"),
        ("en-GB,en;q=0.9,da;q=0.8", "en"),
        ("de-DE,de;q=0.9,da;q=0.5", "da"),
        ("fr-FR, de", "en"),
        ("en;q=0.2, da;q=0.8", "da"),
        ("da;q=0, en;q=0.1", "en"),
        ("da;q=abc", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_a_browser_is_answered_in_the_language_it_asks_for(
    header: str | None, language: str
) -> None:
    assert reader_language(header) == language
