"""A Danish person and an English one, enrolled through the real use cases in the same run,
each get their reminders in their own language: SMS through the real notifier and the twilio
client against the Twilio-compatible server, e-mail (text and HTML parts) through a real SMTP
conversation; the follow-up, a snooze asked for by SMS, a failed SMS's e-mail and the confirm
page the e-mail's link opens too; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from notifier.email import SmtpEmailGateway
from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.scheduling import (
    SchedulerConfig,
    consume_events,
    hand_off,
    materialise,
    send_followups,
)
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.fakes.twilio_server import FakeTwilioServer
from tests.notifier_servers import smtp, twilio
from tests.test_notifier_worker import Mailbox, drive, steps
from tests.tracker_client import PUBLIC_URL, Tracker, tracker

__all__ = ["smtp", "tracker", "twilio"]

Factory = Callable[[], SqlUnitOfWork]
ZONE = ZoneInfo("Europe/Copenhagen")
# Monday 23 November 2026, 07:00 in Copenhagen
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=ZONE)
CONFIG = SchedulerConfig(public_url=PUBLIC_URL)
LINK = re.compile(r"^(?:Taget|Taken): (\S+)$", re.MULTILINE)

DANISH_SMS = ("+4520123451", None)
ENGLISH_SMS = ("+4520123452", None)
DANISH_MAIL = ("+4520123453", "mette@example.com")
ENGLISH_MAIL = ("+4520123454", "ana@example.com")


def _regimen(phone: str, email: str | None, language: str, channel: str) -> Regimen:
    return Regimen.model_validate(
        {
            "person": {
                "name": f"Person {phone[-1]}",
                "phone": phone,
                "email": email,
                "channel": channel,
                "timezone": "Europe/Copenhagen",
                "language": language,
                "waking": {"from": "07:00", "to": "22:00"},
            },
            "meals": [{"name": "breakfast", "at": "07:30", "contains": ["dairy"]}],
            "supplements": [
                {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True},
                {"name": "vitamin C", "dose": "250 mg"},
            ],
        }
    )


def _enrol(unit_of_work: Factory, person: tuple[str, str | None], language: str) -> None:
    phone, email = person
    channel = "sms" if email is None else "email"
    enrol_person(unit_of_work(), _regimen(phone, email, language, channel), NOW)


def _first_reminder(engine: Engine) -> tuple[datetime, datetime]:
    """(due, follow-up due) of the day's first reminder: everyone's plan is the same."""
    with engine.connect() as connection:
        row = connection.execute(
            select(ReminderRow.due_at, ReminderRow.followup_due_at).order_by(ReminderRow.due_at)
        ).first()
    assert row is not None and row.followup_due_at is not None
    return _aware(row.due_at), _aware(row.followup_due_at)


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)  # SQLite: naive UTC


def _clock(instant: datetime, hours: int = 0) -> str:
    return (instant + timedelta(hours=hours)).astimezone(ZONE).strftime("%H:%M")


def _emails(mailbox: Mailbox) -> dict[str, tuple[EmailMessage, str, str]]:
    """Each received e-mail by recipient: (message, plain text, HTML)."""
    found = {}
    for envelope in mailbox.received:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        plain, html = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None and html is not None
        text, page = (part.get_content().replace("\r\n", "\n") for part in (plain, html))
        found[str(message["To"])] = (message, text, page)
    return found


def _subject(message: EmailMessage) -> str:
    # a long subject may be folded onto the line after "Subject:"; unfolded, it is the same
    return str(message["Subject"]).strip()


def _sms(twilio: FakeTwilioServer) -> dict[str, str]:
    return {message.to: message.body for message in twilio.messages}


@pytest.fixture
def everyone(unit_of_work: Factory) -> None:
    _enrol(unit_of_work, DANISH_SMS, "da")
    _enrol(unit_of_work, ENGLISH_SMS, "en")
    _enrol(unit_of_work, DANISH_MAIL, "da")
    _enrol(unit_of_work, ENGLISH_MAIL, "en")


def test_each_person_gets_sms_and_email_in_their_own_language(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
    tracker: Tracker,
    everyone: None,
) -> None:
    mailbox, email = smtp
    materialise(unit_of_work(), NOW, CONFIG)
    due, followup = _first_reminder(engine)
    assert hand_off(unit_of_work(), due, CONFIG) == 4
    drive(unit_of_work, twilio, steps(due), email=email)

    at, dairy = _clock(due), _clock(due, hours=3)
    assert _sms(twilio) == {
        DANISH_SMS[0]: (
            f"dosewise {at}: jern 18 mg + C-vitamin 250 mg. Ingen mælkeprodukter før {dairy}. "
            "Svar TAGET, SPRING OVER eller SENERE"
        ),
        ENGLISH_SMS[0]: (
            f"dosewise {at}: iron 18 mg + vitamin C 250 mg. Keep dairy away until {dairy}. "
            "Reply TAKEN, SKIP or LATER"
        ),
    }
    mails = _emails(mailbox)
    assert set(mails) == {DANISH_MAIL[1], ENGLISH_MAIL[1]}
    danish, danish_plain, danish_html = mails["mette@example.com"]
    assert _subject(danish) == f"dosewise kl. {at}: jern 18 mg + C-vitamin 250 mg"
    assert danish["Content-Language"] == "da"
    assert danish_plain.startswith(
        f"Tid til at tage jern 18 mg + C-vitamin 250 mg (kl. {at}).\n"
        f"Ingen mælkeprodukter før {dairy}.\n\nTaget: {PUBLIC_URL}/confirm/"
    )
    assert "Sprunget over: " in danish_plain
    assert danish_html.startswith('<html lang="da">')
    assert ">Jeg har taget den</a>" in danish_html and ">Spring denne over</a>" in danish_html
    english, english_plain, english_html = mails["ana@example.com"]
    assert _subject(english) == f"dosewise {at}: iron 18 mg + vitamin C 250 mg"
    assert english["Content-Language"] == "en"
    assert english_plain.startswith(f"Time to take iron 18 mg + vitamin C 250 mg ({at}).")
    assert english_html.startswith('<html lang="en">') and ">I took it</a>" in english_html

    # unanswered: the follow-ups come in each language, the dairy note counted from their sending
    twilio.messages.clear()
    mailbox.received.clear()
    assert send_followups(unit_of_work(), followup, CONFIG) == 4
    drive(unit_of_work, twilio, steps(followup), email=email)
    later = _clock(followup, hours=3)
    nudges = _sms(twilio)
    assert nudges[DANISH_SMS[0]].startswith(f"dosewise {at}, ikke besvaret: jern 18 mg")
    assert f"Ingen mælkeprodukter før {later}." in nudges[DANISH_SMS[0]]
    assert nudges[ENGLISH_SMS[0]].startswith(f"dosewise {at}, not answered yet: iron 18 mg")
    assert f"Keep dairy away until {later}." in nudges[ENGLISH_SMS[0]]
    mails = _emails(mailbox)
    assert _subject(mails["mette@example.com"][0]).startswith("Endnu ikke besvaret: dosewise")
    assert _subject(mails["ana@example.com"][0]).startswith("Not answered yet: dosewise")

    # the Danish e-mail's link opens a Danish page, the English one an English page, and
    # their buttons answer in the same language
    tracker.now = followup + timedelta(minutes=1)
    pages, answers = {}, {}
    for address, (_message, plain, _html) in mails.items():
        link = LINK.search(plain)
        assert link is not None
        path = link.group(1).removeprefix(PUBLIC_URL)
        page = tracker.client.get(path)
        assert page.status_code == 200
        pages[address] = page.text
        answer = tracker.client.post(path, data={"action": "taken"})
        assert answer.status_code == 200
        answers[address] = answer.text
    assert '<html lang="da">' in pages["mette@example.com"]
    assert "<h1>Din dosis</h1>" in pages["mette@example.com"]
    assert ">Jeg har taget den</button>" in pages["mette@example.com"]
    assert '<html lang="en">' in pages["ana@example.com"]
    assert "<h1>Your dose</h1>" in pages["ana@example.com"]
    assert ">I took it</button>" in pages["ana@example.com"]
    assert "<h1>Registreret</h1>" in answers["mette@example.com"]
    assert "<h1>Recorded</h1>" in answers["ana@example.com"]


def test_a_danish_sms_that_cannot_go_comes_by_danish_email(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    enrol_person(unit_of_work(), _regimen("+4520123455", "lars@example.com", "da", "sms"), NOW)
    materialise(unit_of_work(), NOW, CONFIG)
    due, _followup = _first_reminder(engine)
    hand_off(unit_of_work(), due, CONFIG)
    twilio.fail_next(400, 30006)  # a landline: this SMS can never go
    drive(unit_of_work, twilio, steps(due, due), email=email, public_url=PUBLIC_URL)

    assert _statuses(engine) == [("sms", "failed"), ("email", "sent")]
    [(message, plain, html)] = _emails(mailbox).values()
    assert message["To"] == "lars@example.com"
    assert _subject(message) == f"dosewise kl. {_clock(due)}: jern 18 mg + C-vitamin 250 mg"
    assert plain.splitlines()[:2] == [
        "Vi kunne ikke sende denne påmindelse til din telefon som sms, "
        "så her kommer den på e-mail.",
        f"Tid til at tage jern 18 mg + C-vitamin 250 mg (kl. {_clock(due)}).",
    ]
    assert html.startswith('<html lang="da">') and "Vi kunne ikke sende" in html


def test_a_danish_snooze_asked_by_sms_comes_back_in_danish(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer, tracker: Tracker
) -> None:
    _enrol(unit_of_work, DANISH_SMS, "da")
    materialise(unit_of_work(), NOW, CONFIG)
    due, _followup = _first_reminder(engine)
    hand_off(unit_of_work(), due, CONFIG)
    drive(unit_of_work, twilio, steps(due))
    twilio.messages.clear()

    tracker.now = due + timedelta(minutes=2)
    assert tracker.sms("LATER 20", from_number=DANISH_SMS[0]).status_code == 200
    consume_events(unit_of_work(), tracker.now + timedelta(seconds=1), CONFIG)
    again = tracker.now + timedelta(minutes=20)
    drive(unit_of_work, twilio, steps(again))

    assert _sms(twilio) == {
        DANISH_SMS[0]: (
            f"dosewise {_clock(due)} igen: jern 18 mg + C-vitamin 250 mg. "
            f"Ingen mælkeprodukter før {_clock(again, hours=3)}. "
            "Svar TAGET, SPRING OVER eller SENERE"
        )
    }


def _statuses(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(OutgoingMessageRow.channel, OutgoingMessageRow.status).order_by(
                OutgoingMessageRow.id
            )
        )
        return [tuple(row) for row in rows]
