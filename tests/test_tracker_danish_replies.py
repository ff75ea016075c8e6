"""A Danish person's replies through the real tracker: signed Twilio webhooks in, TwiML out, on
SQLite and PostgreSQL. Danish words are understood and answered in Danish, the STOP family wins
in both languages, words are understood from anyone and answered in the sender's language, and
a TAKEN after the window closed is taken late, from the scheduler's reminder to the report."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from i18n import translator
from notifier.console import ConsoleChannel, ConsoleEmailGateway, ConsoleSmsGateway
from notifier.segments import count_segments
from notifier.worker import Worker, WorkerConfig
from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.reply_words import help_text, hint_text
from services.scheduling import SchedulerConfig, tick
from store.models import ReminderRow
from store.reports import SqlAdherenceQueries
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    SELENIUM_ITEMS,
    add_reminder,
    cold_courses,
    confirmations,
    events,
    opted_out,
    person_regimen,
    reminder_status,
)
from tests.tracker_client import NOW, PHONE, Tracker, tracker

__all__ = ["tracker"]  # the fixture, imported for pytest

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
DANISH = translator("da")
OTHER_PHONE = "+4531313131"
# the last sentence of every SMS reminder (services.texts), in Danish
REPLY_HINT = DANISH.gettext("Reply TAKEN, SKIP or LATER")


def answer(response: httpx.Response) -> str | None:
    """The text of the TwiML <Message>, or None for an empty <Response/>."""
    assert response.status_code == 200, response.text
    message = ET.fromstring(response.text).find("Message")
    return None if message is None else message.text


def enrol_in(
    unit_of_work: UnitOfWorkFactory,
    language: str,
    phone: str = PHONE,
    *,
    supplements: list[dict[str, Any]] | None = None,
    now: datetime = NOW - timedelta(days=1),
) -> int:
    body = person_regimen(phone).model_dump(mode="json", by_alias=True)
    body["person"]["language"] = language
    if supplements is not None:
        body["supplements"] = supplements
    return enrol_person(unit_of_work(), Regimen.model_validate(body), now).person_id


@pytest.fixture
def mette(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    return enrol_in(unit_of_work, "da")


@pytest.fixture
def reminder(mette: int, unit_of_work: UnitOfWorkFactory, engine: Engine) -> int:
    """Iron and vitamin C sent at 11:30 Copenhagen time, still open at 11:42."""
    return add_reminder(unit_of_work, engine, mette, NOW - timedelta(minutes=12))


# -- Danish words, Danish answers ------------------------------------------------------------


def test_taget_confirms_and_is_answered_in_danish(tracker: Tracker, reminder: int) -> None:
    text = answer(tracker.sms("TAGET"))
    assert text == "Jern noteret kl. 11:42. Mejeriprodukter, calcium og medicin fra kl. 14:42."
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]


def test_taget_of_a_dose_without_iron_names_it_as_a_dane_writes_it(
    tracker: Tracker, mette: int, unit_of_work: UnitOfWorkFactory
) -> None:
    add_reminder(
        unit_of_work, tracker.engine, mette, NOW - timedelta(minutes=2), items=SELENIUM_ITEMS
    )
    # "µg" is not GSM-7: SMS answers write "mcg"; "selen" is the Danish name
    assert answer(tracker.sms("taget den 👍")) == "Noteret kl. 11:42: selen 100 mcg."


def test_spring_over_skips_in_danish(tracker: Tracker, reminder: int) -> None:
    text = answer(tracker.sms("SPRING OVER"))
    assert text == (
        "Sprunget over: jern 18 mg + C-vitamin 250 mg. Noteret, ingen flere påmindelser om "
        "denne dosis."
    )
    assert reminder_status(tracker.engine, reminder) == "skipped"


@pytest.mark.parametrize(
    ("body", "minutes", "said"),
    [
        ("SENERE", 30, "30 minutter"),
        ("SENERE 20", 20, "20 minutter"),
        ("senere 1 time", 60, "60 minutter"),
        ("senere 1 minut", 1, "1 minut"),
        ("LATER 1.5h", 90, "90 minutter"),
    ],
)
def test_senere_snoozes_with_the_plural_right(
    tracker: Tracker, reminder: int, body: str, minutes: int, said: str
) -> None:
    assert answer(tracker.sms(body)) == f"OK: dosewise minder dig igen om {said}."
    assert events(tracker.engine)[-1] == ("Snoozed", {"reminder_id": reminder, "minutes": minutes})


def test_senere_past_the_window_says_so_in_danish(tracker: Tracker, reminder: int) -> None:
    text = answer(tracker.sms("SENERE 2 timer"))
    assert text == (
        "Påmindelsen lukker kl. 13:30, før en ny om 120 minutter kan nå frem, så der kommer "
        "ikke flere om denne dosis. Svar TAGET eller SPRING OVER, når du kan."
    )
    assert count_segments(text).segments == 1


def test_forkolet_starts_a_course_and_rask_ends_it_in_danish(tracker: Tracker, mette: int) -> None:
    assert answer(tracker.sms("FORKØLET")) == (
        "God bedring. Zinkkuren er startet: første sugetablet på 14 mg kl. 11:42, 6 om dagen i "
        "5 dage. Svar RASK, når du har det bedre."
    )
    assert len(cold_courses(tracker.engine)) == 1
    tracker.now = NOW + timedelta(days=1)
    assert answer(tracker.sms("rask")) == "Godt, at du har det bedre: zinkkuren er afsluttet."
    assert cold_courses(tracker.engine)[0].ended_at == tracker.now


def test_hjaelp_lists_the_danish_words_in_one_segment(tracker: Tracker, mette: int) -> None:
    text = answer(tracker.sms("HJÆLP"))
    assert text == help_text(DANISH)
    assert count_segments(text).segments == 1 and count_segments(text).encoding == "GSM-7"


@pytest.mark.parametrize("body", ["hvad?", "måske", "ikke taget", "taget i går"])
def test_an_unclear_reply_gets_the_danish_hint_and_records_nothing(
    tracker: Tracker, reminder: int, body: str
) -> None:
    assert answer(tracker.sms(body)) == hint_text(DANISH)
    assert confirmations(tracker.engine) == []


def test_the_words_the_danish_reminder_asks_for_are_understood(
    tracker: Tracker, mette: int, unit_of_work: UnitOfWorkFactory
) -> None:
    # "Svar TAGET, SPRING OVER eller SENERE": each word the reminder names works
    hint = REPLY_HINT
    assert hint == "Svar TAGET, SPRING OVER eller SENERE"
    for word, status in (("TAGET", "confirmed"), ("SPRING OVER", "skipped"), ("SENERE", "sent")):
        assert word in hint
        reminder = add_reminder(
            unit_of_work, tracker.engine, mette, tracker.now - timedelta(minutes=1)
        )
        tracker.sms(word)
        assert reminder_status(tracker.engine, reminder) == status, word
        tracker.now += timedelta(hours=3)


# -- the STOP family wins in both languages --------------------------------------------------


@pytest.mark.parametrize("body", ["STOP", "stop tak", "Stop!!", "STOP TAGET", "stop?"])
def test_stop_from_a_danish_person_opts_out_in_danish(
    tracker: Tracker, mette: int, reminder: int, body: str
) -> None:
    text = answer(tracker.sms(body))
    assert text == "Du får ikke flere beskeder fra dosewise. Svar START for at begynde igen."
    assert opted_out(tracker.engine, mette)
    assert confirmations(tracker.engine) == []
    assert answer(tracker.sms("TAGET")) is None  # nothing at all until START
    assert confirmations(tracker.engine) == []


def test_ja_after_stop_opts_back_in_without_confirming(
    tracker: Tracker, mette: int, reminder: int
) -> None:
    tracker.sms("STOP")
    assert answer(tracker.sms("Ja")) == (
        "Velkommen tilbage: Påmindelserne fra dosewise fortsætter."
    )
    assert not opted_out(tracker.engine, mette)
    assert confirmations(tracker.engine) == []
    assert answer(tracker.sms("START")) == "Du får allerede påmindelser fra dosewise."


def test_dont_stop_neither_stops_nor_confirms(tracker: Tracker, mette: int, reminder: int) -> None:
    assert answer(tracker.sms("Don't stop")) == hint_text(DANISH)
    assert not opted_out(tracker.engine, mette)
    assert confirmations(tracker.engine) == []


# -- words from anyone, answers in the sender's language -------------------------------------


def test_english_words_from_a_danish_person_are_answered_in_danish(
    tracker: Tracker, reminder: int
) -> None:
    assert answer(tracker.sms("took it")) == (
        "Jern noteret kl. 11:42. Mejeriprodukter, calcium og medicin fra kl. 14:42."
    )


def test_danish_words_from_an_english_person_are_answered_in_english(
    tracker: Tracker, unit_of_work: UnitOfWorkFactory
) -> None:
    ana = enrol_in(unit_of_work, "en")
    reminder = add_reminder(unit_of_work, tracker.engine, ana, NOW - timedelta(minutes=12))
    assert answer(tracker.sms("TAGET")) == (
        "Iron logged at 11:42. Dairy, calcium and medicines from 14:42."
    )
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("HJÆLP", help_text(DANISH)),
        ("TAGET", "Dette nummer er ikke tilmeldt dosewise, så intet er noteret."),
        ("TAKEN", "This number is not enrolled with dosewise, so nothing was recorded."),
        ("OK", "This number is not enrolled with dosewise, so nothing was recorded."),
        ("STOP", None),
    ],
)
def test_a_number_no_one_enrolled_is_answered_in_the_language_of_its_words(
    tracker: Tracker, body: str, said: str | None
) -> None:
    assert answer(tracker.sms(body, from_number=OTHER_PHONE)) == said


# -- a late TAKEN, from the scheduler's reminder to the report -------------------------------

DAY = date(2026, 11, 23)
EVENING = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 21:00 in Copenhagen


def test_a_late_taget_is_taken_late_from_reminder_to_report(
    tracker: Tracker, unit_of_work: UnitOfWorkFactory
) -> None:
    morning = EVENING - timedelta(hours=14)
    person = enrol_in(
        unit_of_work,
        "da",
        supplements=[{"name": "magnesium", "dose": "300 mg", "at": "21:00"}],
        now=morning,
    )
    config = SchedulerConfig()
    tick(unit_of_work, morning, config)  # the scheduler plans the day
    tick(unit_of_work, EVENING, config)  # and hands the 21:00 reminder to the notifier
    channel = ConsoleChannel(stream=io.StringIO(), now=lambda: EVENING)
    worker = Worker(
        unit_of_work,
        ConsoleSmsGateway(channel),
        ConsoleEmailGateway(channel),
        WorkerConfig(worker_id="test"),
    )
    assert asyncio.run(worker.step(EVENING)) == 1
    [sms] = channel.sent()
    assert sms.to == PHONE and sms.body.endswith(REPLY_HINT)
    with tracker.engine.connect() as connection:
        [(reminder, status)] = connection.execute(
            select(ReminderRow.id, ReminderRow.status).where(
                ReminderRow.person_id == person, ReminderRow.due_at == EVENING
            )
        ).all()
    assert status == "sent"

    tick(unit_of_work, EVENING + timedelta(hours=1), config)  # 22:00: the window closes
    assert reminder_status(tracker.engine, reminder) == "missed"
    tracker.now = EVENING + timedelta(minutes=69)  # 22:09
    assert answer(tracker.sms("Taget ✅")) == (
        "Noteret: magnesium 300 mg taget sent, kl. 22:09 (påmindelsen kl. 21:00)."
    )
    assert reminder_status(tracker.engine, reminder) == "confirmed"

    report = SqlAdherenceQueries(tracker.engine).report(DAY, DAY, tracker.now).as_dict()
    [line] = report["people"]
    assert (line["sent"], line["on_time"], line["late"], line["missed"]) == (1, 0, 1, 0)
    # the scheduler's next run leaves it taken
    tick(unit_of_work, tracker.now + timedelta(minutes=5), config)
    assert reminder_status(tracker.engine, reminder) == "confirmed"


def test_a_late_taken_is_not_guessed_once_the_next_dose_came_due(
    tracker: Tracker, mette: int, unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    first = add_reminder(unit_of_work, engine, mette, NOW - timedelta(hours=6))
    with engine.begin() as connection:  # the scheduler closed it unanswered
        connection.execute(
            update(ReminderRow).where(ReminderRow.id == first).values(status="missed")
        )
    add_reminder(unit_of_work, engine, mette, NOW - timedelta(hours=3), status="skipped")
    assert answer(tracker.sms("TAGET")) == (
        "Ingen påmindelse venter på svar lige nu, så intet er noteret."
    )
    assert reminder_status(engine, first) == "missed"
