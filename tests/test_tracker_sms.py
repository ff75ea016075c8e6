"""POST /twilio/sms: signed replies become confirmations, once, with their events."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from i18n import translator
from notifier.twilio_webhooks import compute_signature
from planner.cold_course import plan_cold_course
from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.replies import InboundSms, SmsAnswer, receive_sms
from services.reply_words import help_text, hint_text
from services.scheduling import SchedulerConfig, consume_events
from store.models import ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    SELENIUM_ITEMS,
    add_reminder,
    cold_courses,
    confirmations,
    count_replies,
    enrol,
    event_types,
    events,
    opted_out,
    person_regimen,
    reminder_status,
    stored_reply,
)
from tests.tracker_client import (
    AUTH_TOKEN,
    NOW,
    PHONE,
    PUBLIC_URL,
    Tracker,
    make_tracker,
    new_sid,
    tracker,
)

__all__ = ["tracker"]  # the fixture, imported for pytest

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
HELP_TEXT = help_text(translator("en"))
HINT_TEXT = hint_text(translator("en"))


def answer(response: httpx.Response) -> str | None:
    """The text of the TwiML <Message>, or None for an empty <Response/>."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    message = ET.fromstring(response.text).find("Message")
    return None if message is None else message.text


@pytest.fixture
def person(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    return enrol(unit_of_work, PHONE, NOW - timedelta(days=1))


@pytest.fixture
def reminder(person: int, unit_of_work: UnitOfWorkFactory, engine: Engine) -> int:
    """An iron reminder sent at 11:30 Copenhagen time, still open at 11:42."""
    return add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12))


# -- signatures ------------------------------------------------------------------------------


def test_a_forged_signature_is_refused(tracker: Tracker, reminder: int) -> None:
    form = {"MessageSid": new_sid(), "From": PHONE, "Body": "TAKEN"}
    response = tracker.post_signed("/twilio/sms", form, token="not-the-auth-token")
    assert response.status_code == 403
    assert confirmations(tracker.engine) == [] and count_replies(tracker.engine) == 0


def test_a_missing_signature_is_refused(tracker: Tracker, reminder: int) -> None:
    response = tracker.post_form("/twilio/sms", {"MessageSid": new_sid(), "From": PHONE})
    assert response.status_code == 403
    assert count_replies(tracker.engine) == 0


def test_a_signature_for_another_body_is_refused(tracker: Tracker, reminder: int) -> None:
    signed = {"MessageSid": new_sid(), "From": PHONE, "Body": "SKIP"}
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + "/twilio/sms", signed)
    replayed = {**signed, "Body": "TAKEN"}
    response = tracker.post_form("/twilio/sms", replayed, {"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert confirmations(tracker.engine) == []


def test_a_signature_for_another_url_is_refused(tracker: Tracker, reminder: int) -> None:
    form = {"MessageSid": new_sid(), "From": PHONE, "Body": "TAKEN"}
    for url in ("http://testserver/twilio/sms", PUBLIC_URL + "/twilio/status"):
        assert tracker.post_signed("/twilio/sms", form, signed_url=url).status_code == 403
    assert confirmations(tracker.engine) == []


def test_the_query_string_is_part_of_what_is_signed(tracker: Tracker, person: int) -> None:
    form = {"MessageSid": new_sid(), "From": PHONE, "Body": "HELP"}
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + "/twilio/sms?x=1", form)
    headers = {"X-Twilio-Signature": signature}
    assert tracker.post_form("/twilio/sms?x=1", form, headers).status_code == 200
    assert tracker.post_form("/twilio/sms?x=2", form, headers).status_code == 403


def test_without_an_auth_token_every_webhook_is_refused(
    database_url: str, engine: Engine, unit_of_work: UnitOfWorkFactory
) -> None:
    enrol(unit_of_work, PHONE, NOW)
    for unconfigured in make_tracker(database_url, engine, twilio_auth_token=None):
        response = unconfigured.sms("HELP")
        assert response.status_code == 403
        unsigned = unconfigured.post_form("/twilio/sms", {"MessageSid": new_sid(), "Body": "x"})
        assert unsigned.status_code == 403
    assert count_replies(engine) == 0


# -- idempotency -----------------------------------------------------------------------------


def test_the_same_message_sid_twice_confirms_once_and_answers_the_same(
    tracker: Tracker, reminder: int, unit_of_work: UnitOfWorkFactory
) -> None:
    later_reminder = add_reminder(
        unit_of_work,
        tracker.engine,
        reminder_person(tracker),
        NOW - timedelta(minutes=5),
        items=SELENIUM_ITEMS,
    )
    sid = new_sid()
    first = tracker.sms("TAKEN", sid=sid)
    tracker.now = NOW + timedelta(minutes=1)  # Twilio retries a little later
    second = tracker.sms("TAKEN", sid=sid)
    assert answer(first) == answer(second)
    assert first.content == second.content
    assert confirmations(tracker.engine) == [(later_reminder, "taken", "sms")]
    assert event_types(tracker.engine).count("DoseConfirmed") == 1
    assert count_replies(tracker.engine) == 1


def reminder_person(tracker: Tracker) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from store.models import PersonRow

    with Session(tracker.engine) as session:
        return session.scalars(select(PersonRow.id).where(PersonRow.phone == PHONE)).one()


# -- the reply words -------------------------------------------------------------------------


def test_taken_confirms_iron_and_says_when_dairy_is_fine_again(
    tracker: Tracker, reminder: int
) -> None:
    text = answer(tracker.sms("taken!"))
    assert text == "Iron logged at 11:42. Dairy, calcium and medicines from 14:42."
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]
    assert reminder_status(tracker.engine, reminder) == "confirmed"
    assert events(tracker.engine)[-2:] == [
        ("ReplyReceived", {"reply_id": stored_id(tracker), "kind": "taken"}),
        ("DoseConfirmed", {"reminder_id": reminder, "at": NOW.isoformat()}),
    ]


def stored_id(tracker: Tracker) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from store.models import InboundReplyRow

    with Session(tracker.engine) as session:
        return session.scalar(select(func.max(InboundReplyRow.id))) or 0


def test_taken_without_iron_names_what_was_logged(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    add_reminder(
        unit_of_work, tracker.engine, person, NOW - timedelta(minutes=2), items=SELENIUM_ITEMS
    )
    # in GSM-7, as the reminder was: a "µ" would make it a UCS-2 message of 70 characters a part
    assert answer(tracker.sms("1")) == "Logged at 11:42: selenium 100 mcg."


def test_yes_means_taken(tracker: Tracker, reminder: int) -> None:
    tracker.sms("Yes")
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]


def test_skip_records_a_skipped_dose(tracker: Tracker, reminder: int) -> None:
    text = answer(tracker.sms("SKIP"))
    assert text is not None and text.startswith("Skipped: iron 18 mg + vitamin C 250 mg")
    assert confirmations(tracker.engine) == [(reminder, "skipped", "sms")]
    assert reminder_status(tracker.engine, reminder) == "skipped"
    assert events(tracker.engine)[-1] == ("DoseSkipped", {"reminder_id": reminder})


@pytest.mark.parametrize(
    ("body", "minutes", "said"),
    [
        ("LATER", 30, "30 minutes"),
        ("later 20", 20, "20 minutes"),
        ("3", 30, "30 minutes"),
        ("LATER 1", 1, "1 minute"),
    ],
)
def test_later_snoozes_the_reminder(
    tracker: Tracker, reminder: int, body: str, minutes: int, said: str
) -> None:
    assert answer(tracker.sms(body)) == f"OK: dosewise will remind you again in {said}."
    assert events(tracker.engine)[-1] == ("Snoozed", {"reminder_id": reminder, "minutes": minutes})
    assert confirmations(tracker.engine) == []
    assert reminder_status(tracker.engine, reminder) == "sent"


def test_later_past_the_doses_window_promises_nothing(tracker: Tracker, reminder: int) -> None:
    # the 11:30 reminder takes answers until 13:30; 120 minutes from 11:42 is 13:42
    assert answer(tracker.sms("LATER 120")) == (
        "This dose's reminder closes at 13:30, before a reminder in 120 minutes could go: no "
        "reminder will come again for it. Reply TAKEN or SKIP when you can."
    )
    assert [kind for kind, _ in events(tracker.engine)][-1] == "ReplyReceived"
    assert "Snoozed" not in [kind for kind, _ in events(tracker.engine)]
    assert reminder_status(tracker.engine, reminder) == "sent"


def test_later_past_the_waking_day_promises_nothing(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    add_reminder(
        unit_of_work,
        tracker.engine,
        person,
        NOW - timedelta(minutes=12),
        window=timedelta(hours=14),
    )
    text = answer(tracker.sms("later 660"))  # 22:42; the person is awake 07:00-22:00
    assert text is not None and text.startswith("22:42 is outside your waking hours: no reminder ")
    assert "Snoozed" not in [kind for kind, _ in events(tracker.engine)]
    assert answer(tracker.sms("later 600")) == (
        "OK: dosewise will remind you again in 600 minutes."  # 21:42, still awake
    )


def test_cold_starts_a_course_and_says_when_the_first_lozenge_is(
    tracker: Tracker, person: int
) -> None:
    text = answer(tracker.sms("cold"))
    course = plan_cold_course(person_regimen(PHONE), NOW)
    first = course.doses[0].at
    assert f"{first.astimezone(course.onset.tzinfo):%H:%M}" == "11:42"  # at onset, by the rules
    assert text == (
        "Get well soon. Zinc cold course started: first 14 mg lozenge at 11:42, "
        "6 a day for 5 days. Reply WELL when you feel better."
    )
    [row] = cold_courses(tracker.engine)
    assert (row.person_id, row.onset_at, row.ended_at) == (person, NOW, None)
    assert row.ends_at == NOW + timedelta(days=5)
    assert events(tracker.engine)[-1] == (
        "ColdOnset",
        {"cold_course_id": row.id, "onset_at": NOW.isoformat()},
    )


def test_cold_says_so_when_fewer_lozenges_fit_each_day_than_the_policy_asks(
    tracker: Tracker, unit_of_work: UnitOfWorkFactory
) -> None:
    body = person_regimen(PHONE).model_dump(mode="json", by_alias=True)
    # a short waking day, iron fixed in its middle: two hours either side are no lozenge's
    body["person"]["waking"] = {"from": "11:00", "to": "21:00"}
    body["supplements"] = [
        {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True, "at": "16:00"},
        {"name": "vitamin C", "dose": "250 mg", "at": "16:00"},
    ]
    enrol_person(unit_of_work(), Regimen.model_validate(body), NOW - timedelta(days=1))
    text = answer(tracker.sms("COLD"))
    assert text is not None and text.startswith("Get well soon. Zinc cold course started")
    assert (
        " a day fit around your other doses (" in text
        and "mg of zinc a day; the studies used 80-92 mg). Reply WELL" in text
    ), text


def test_cold_says_how_many_lozenges_were_planned_when_quiet_hours_leave_fewer(
    tracker: Tracker, unit_of_work: UnitOfWorkFactory
) -> None:
    body = person_regimen(PHONE).model_dump(mode="json", by_alias=True)
    body["person"]["quiet"] = [{"from": "19:00", "to": "20:30"}]
    person_id = enrol_person(
        unit_of_work(), Regimen.model_validate(body), NOW - timedelta(days=1)
    ).person_id
    text = answer(tracker.sms("COLD"))
    assert text == (
        "Get well soon. Zinc cold course started: first 14 mg lozenge at 11:42, 5 today, then "
        "up to 6 a day: 30 in all over 5 days. Reply WELL when you feel better."
    )
    # what the scheduler plans from the course: five lozenges on Monday
    consume_events(unit_of_work(), NOW, SchedulerConfig())
    with tracker.engine.connect() as connection:
        today = connection.scalars(
            select(ReminderRow.due_at).where(
                ReminderRow.person_id == person_id,
                ReminderRow.kind == "lozenge",
                ReminderRow.slot_key.like("2026-11-23#%"),
            )
        ).all()
    assert len(today) == 5


def test_cold_at_night_names_the_first_lozenge_in_the_morning(
    tracker: Tracker, person: int
) -> None:
    tracker.now = NOW.replace(hour=22, minute=30)  # 23:30 in Copenhagen
    text = answer(tracker.sms("SICK"))
    # the planner places it: at waking, or the course's gap after the morning iron
    first = plan_cold_course(person_regimen(PHONE), tracker.now).doses[0].at
    assert text is not None and f"lozenge at {first:%H:%M} on Tuesday 24 November," in text


def test_cold_twice_keeps_one_course(tracker: Tracker, person: int) -> None:
    tracker.sms("COLD")
    text = answer(tracker.sms("COLD"))
    assert text is not None and text.startswith("Your zinc cold course is already running")
    assert len(cold_courses(tracker.engine)) == 1


def test_well_ends_a_running_course(tracker: Tracker, person: int) -> None:
    tracker.sms("COLD")
    tracker.now = NOW + timedelta(days=2)
    assert answer(tracker.sms("better")) == "Glad you are better: the zinc cold course has ended."
    [row] = cold_courses(tracker.engine)
    assert row.ended_at == tracker.now
    assert events(tracker.engine)[-1] == (
        "ColdEnded",
        {"cold_course_id": row.id, "ended_at": tracker.now.isoformat()},
    )
    assert (
        answer(tracker.sms("WELL"))
        == "No zinc cold course is running, so there was nothing to end."
    )


def test_stop_opts_out_and_then_taken_does_nothing_until_start(
    tracker: Tracker, person: int, reminder: int
) -> None:
    assert answer(tracker.sms("STOP")) == (
        "You will get no more messages from dosewise. Reply START to resume."
    )
    assert opted_out(tracker.engine, person)
    assert events(tracker.engine)[-1] == ("OptedOut", {"source": "sms"})
    before = event_types(tracker.engine)
    assert answer(tracker.sms("TAKEN")) is None  # not even an answer: no messages of any kind
    assert confirmations(tracker.engine) == []
    assert event_types(tracker.engine) == [*before, "ReplyReceived"]
    assert answer(tracker.sms("START")) == "Welcome back: dosewise reminders resume."
    assert not opted_out(tracker.engine, person)
    assert events(tracker.engine)[-1] == ("OptedIn", {})
    tracker.sms("TAKEN")
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]


def test_yes_after_stop_opts_back_in_without_confirming(
    tracker: Tracker, person: int, reminder: int
) -> None:
    tracker.sms("unsubscribe")
    assert answer(tracker.sms("YES")) == "Welcome back: dosewise reminders resume."
    assert not opted_out(tracker.engine, person)
    assert confirmations(tracker.engine) == []


def test_help_answers_the_help_text(tracker: Tracker, person: int) -> None:
    assert answer(tracker.sms("help")) == HELP_TEXT
    assert event_types(tracker.engine)[-1] == "ReplyReceived"
    assert len(HELP_TEXT) <= 160 and HELP_TEXT.isascii()  # one GSM-7 segment


def test_help_is_answered_for_a_number_not_enrolled(tracker: Tracker) -> None:
    assert answer(tracker.sms("HELP", from_number="+4799999999")) == HELP_TEXT


def test_a_redelivered_reply_after_stop_gets_no_message(tracker: Tracker, reminder: int) -> None:
    sid = new_sid()
    assert answer(tracker.sms("TAKEN", sid=sid)) is not None
    tracker.sms("STOP")
    assert answer(tracker.sms("TAKEN", sid=sid)) is None  # Twilio's retry, after the STOP
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]
    help_sid = new_sid()
    assert answer(tracker.sms("HELP", sid=help_sid)) == HELP_TEXT
    assert answer(tracker.sms("HELP", sid=help_sid)) == HELP_TEXT


def test_a_second_stop_gets_no_message(tracker: Tracker, person: int) -> None:
    tracker.sms("STOP")
    for word in ("STOP", "cancel", "Quit"):
        assert answer(tracker.sms(word)) is None
    assert event_types(tracker.engine).count("OptedOut") == 1


def test_anything_else_is_stored_and_hinted_never_confirmed(
    tracker: Tracker, reminder: int
) -> None:
    sid = new_sid()
    assert answer(tracker.sms("I took it I think 😊", sid=sid)) == HINT_TEXT
    assert confirmations(tracker.engine) == []
    row = stored_reply(tracker.engine, sid)
    assert (row.kind, row.body, row.answer) == ("unparsed", "I took it I think 😊", HINT_TEXT)


def test_no_open_reminder_gets_a_polite_answer(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    # one planned (not yet sent), one whose window closed, one not yet due
    add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=5), status="planned")
    add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(hours=3))
    add_reminder(unit_of_work, tracker.engine, person, NOW + timedelta(hours=1))
    text = answer(tracker.sms("TAKEN"))
    assert text == "There is no reminder waiting for an answer right now, so nothing was recorded."
    assert confirmations(tracker.engine) == []


def test_the_most_recent_open_reminder_is_the_one_answered(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    older = add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=50))
    newer = add_reminder(
        unit_of_work, tracker.engine, person, NOW - timedelta(minutes=10), status="queued"
    )
    tracker.sms("TAKEN")
    tracker.sms("TAKEN")
    tracker.sms("TAKEN")
    assert sorted(confirmations(tracker.engine)) == [
        (older, "taken", "sms"),
        (newer, "taken", "sms"),
    ]
    assert confirmations(tracker.engine)[0][0] == newer  # the newest first


def test_an_unknown_number_gets_a_polite_answer_and_is_stored(tracker: Tracker) -> None:
    sid = new_sid()
    text = answer(tracker.sms("TAKEN", sid=sid, from_number="+4511112222"))
    assert text == "This number is not enrolled with dosewise, so nothing was recorded."
    row = stored_reply(tracker.engine, sid)
    assert (row.person_id, row.kind, row.from_number) == (None, "taken", "+4511112222")
    assert event_types(tracker.engine) == ["ReplyReceived"]


# -- races -----------------------------------------------------------------------------------


def _at_once(*calls: Callable[[], SmsAnswer]) -> list[SmsAnswer]:
    """Run the calls in threads released together; their answers in call order."""
    start = threading.Barrier(len(calls))
    answers: list[SmsAnswer | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait(timeout=10)
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_simultaneous_replies_answer_one_open_reminder_each(
    tracker: Tracker, person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    older = add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=50))
    newer = add_reminder(unit_of_work, tracker.engine, person, NOW - timedelta(minutes=10))
    _at_once(
        *(
            lambda: receive_sms(unit_of_work(), InboundSms(new_sid(), PHONE, "TAKEN"), NOW)
            for _ in range(3)
        )
    )
    # the reminder one reply locked is answered; the other finds the next open one, or none
    assert sorted(confirmations(tracker.engine)) == [
        (older, "taken", "sms"),
        (newer, "taken", "sms"),
    ]
    assert event_types(tracker.engine).count("DoseConfirmed") == 2


def test_simultaneous_deliveries_of_one_sid_confirm_once_with_one_answer(
    tracker: Tracker, reminder: int, unit_of_work: UnitOfWorkFactory
) -> None:
    sms = InboundSms(new_sid(), PHONE, "TAKEN")
    answers = _at_once(*(lambda: receive_sms(unit_of_work(), sms, NOW) for _ in range(3)))
    assert len({each.text for each in answers}) == 1
    assert sorted(each.duplicate for each in answers) == [False, True, True]
    assert confirmations(tracker.engine) == [(reminder, "taken", "sms")]
    assert count_replies(tracker.engine) == 1
