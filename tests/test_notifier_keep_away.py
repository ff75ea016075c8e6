"""Iron's "Keep dairy away until HH:MM" counts from when the message goes out, in the person's
zone: a snooze, a follow-up or a retry is sent later than the dose was planned, and the dose
is taken when it arrives. Through the real worker, the fake Twilio and real SMTP."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy.engine import Engine

from notifier.email import SmtpEmailGateway
from notifier.worker import Worker
from services.texts import email_text, pack_email, sms_body
from tests.fakes.twilio_server import FakeTwilioServer, ScriptedAnswer
from tests.notifier_servers import smtp, twilio
from tests.notifier_support import add_message, add_person, message
from tests.test_notifier_worker import NOW, Factory, Mailbox, drive, steps

IRON = [{"supplement": "iron", "dose": "18 mg"}, {"supplement": "vitamin_c", "dose": "250 mg"}]
# the dose was planned for 10:00 UTC, 11:00 in Copenhagen
PLANNED = NOW

__all__ = ["smtp", "twilio"]


@pytest.mark.parametrize("purpose", ["snooze", "followup"])
def test_a_later_sms_counts_the_dairy_gap_from_its_sending(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer, purpose: str
) -> None:
    person = add_person(engine, NOW)
    body = sms_body(IRON, PLANNED, "Europe/Copenhagen", purpose, language="en")  # type: ignore[arg-type]
    assert "Keep dairy away until 14:00." in body  # as the scheduler queued it
    sent_at = PLANNED + timedelta(hours=2, minutes=4)  # 13:04 in Copenhagen
    add_message(
        engine,
        person,
        sent_at,
        body=body,
        purpose="snooze-1" if purpose == "snooze" else purpose,
        not_after=sent_at + timedelta(hours=1),
    )
    drive(unit_of_work, twilio, steps(sent_at))

    [sent] = twilio.messages
    assert "Keep dairy away until 16:04." in sent.body
    assert "14:00" not in sent.body
    assert sent.body.startswith("dosewise 11:00")  # the dose's own time is unchanged


def test_the_gap_is_counted_in_the_persons_zone_across_a_clock_change(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    # New York falls back at 06:00 UTC on 1 November 2026: 01:30 EDT + 3 h is 03:30 EST
    person = add_person(engine, NOW, timezone="America/New_York")
    planned = NOW.replace(month=11, day=1, hour=3, minute=0)
    body = sms_body(IRON, planned, "America/New_York", "snooze", language="en")
    sent_at = planned + timedelta(hours=2, minutes=30)  # 05:30 UTC, 01:30 EDT
    add_message(engine, person, sent_at, body=body, purpose="snooze-1")
    drive(unit_of_work, twilio, steps(sent_at))

    [sent] = twilio.messages
    assert "Keep dairy away until 03:30." in sent.body


def test_a_later_email_counts_the_dairy_gap_from_its_sending(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    text = email_text(
        IRON, PLANNED, "Europe/Copenhagen", "snooze", "https://x/confirm/t", language="en"
    )
    sent_at = PLANNED + timedelta(minutes=95)  # 12:35 in Copenhagen
    add_message(
        engine,
        person,
        sent_at,
        channel="email",
        recipient="ana@example.com",
        body=pack_email(text.plain, text.html),
        purpose="snooze-1",
    )
    drive(unit_of_work, twilio, steps(sent_at), email=email)

    [envelope] = mailbox.received
    received = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert plain is not None and html is not None
    assert "Keep dairy away until 15:35." in plain.get_content()
    assert "Keep dairy away until 15:35." in html.get_content()
    assert "14:00" not in plain.get_content()


def test_a_restamped_sms_that_twilio_accepted_is_found_by_the_sweeper_not_resent(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    body = sms_body(IRON, PLANNED, "Europe/Copenhagen", "snooze", language="en")
    sent_at = PLANNED + timedelta(minutes=40)
    message_id = add_message(engine, person, sent_at, body=body, purpose="snooze-1")
    twilio.script(ScriptedAnswer(drop_connection=True))  # accepted, then the line dropped

    async def scenario(worker: Worker) -> None:
        await worker.step(sent_at)
        held = message(engine, message_id)
        assert held.status == "sending"
        later = held.lease_until + timedelta(seconds=1)
        assert await worker.sweep(later) == 1
        await worker.step(later)

    drive(unit_of_work, twilio, scenario)
    [accepted] = twilio.messages  # sent once, although its text differs from the stored one
    assert accepted.body != body
    row = message(engine, message_id)
    assert (row.status, row.provider_id) == ("sent", accepted.sid)
