"""The e-mail sent when an SMS cannot go: a reminder e-mail with working confirm and skip
links, through the real worker, the fake Twilio and a real SMTP conversation (aiosmtpd)."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from notifier.email import SmtpEmailGateway
from services.replies import confirm_by_link
from store.models import ReminderRow
from tests.fakes.twilio_server import FakeTwilioServer
from tests.notifier_servers import smtp, twilio
from tests.notifier_support import add_message, add_person, messages, reminder_status
from tests.test_notifier_worker import NOW, Factory, Mailbox, drive, steps

TRACKER = "https://tracker.example/dw"
LINK = re.compile(re.escape(TRACKER) + r"/confirm/([A-Za-z0-9_-]+)")

__all__ = ["smtp", "twilio"]


def received_email(mailbox: Mailbox) -> tuple[EmailMessage, str, str]:
    [envelope] = mailbox.received
    received = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert plain is not None and html is not None
    return received, plain.get_content(), html.get_content()


@pytest.mark.parametrize("purpose", ["initial", "followup", "snooze-1"])
def test_a_failed_sms_comes_by_email_with_its_own_confirm_and_skip_links(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
    purpose: str,
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2), purpose=purpose)
    twilio.fail_next(400, 30006)  # a landline: this SMS can never go
    drive(unit_of_work, twilio, steps(NOW, NOW), email=email, public_url=TRACKER)

    sms, fallback = messages(engine)
    assert (sms.status, fallback.status, fallback.purpose) == ("failed", "sent", f"{purpose}-email")
    assert fallback.not_after == sms.not_after
    received, plain, html = received_email(mailbox)
    assert received["To"] == "ana@example.com"
    # the reminder as an e-mail reminder reads: 10:00 UTC is 11:00 in Copenhagen
    assert "dosewise 11:00: iron 18 mg" in received["Subject"]
    assert "by SMS" in plain
    assert "Time to take iron 18 mg (11:00)." in plain
    assert "Reply TAKEN" not in plain and "Reply TAKEN" not in html
    [taken] = re.findall(r"Taken: (\S+)", plain)
    [skipped] = re.findall(r"Skipped: (\S+)", plain)
    assert skipped == f"{taken}?action=skip"
    assert f'href="{taken}"' in html and f'href="{skipped}"' in html
    token = LINK.fullmatch(taken)
    assert token is not None

    # the link works as the e-mail channel's do: the tracker records the dose, once
    later = NOW + timedelta(minutes=5)
    outcome = confirm_by_link(unit_of_work(), token.group(1), "taken", later)
    assert outcome.status == "recorded"
    assert reminder_status(engine, sms.reminder_id) == "confirmed"
    again = confirm_by_link(unit_of_work(), token.group(1), "taken", later)
    assert again.status == "used"


def test_the_skip_link_of_a_fallback_records_a_skip(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    twilio.fail_next(400, 21614)
    drive(unit_of_work, twilio, steps(NOW, NOW), email=email, public_url=TRACKER)

    _, plain, _ = received_email(mailbox)
    match = LINK.search(plain)
    assert match is not None
    outcome = confirm_by_link(unit_of_work(), match.group(1), "skipped", NOW + timedelta(minutes=1))
    assert outcome.status == "recorded"
    [sms, _] = messages(engine)
    assert reminder_status(engine, sms.reminder_id) == "skipped"


def test_a_fallback_link_expires_with_the_reminder_window(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    add_message(engine, person, NOW, not_after=NOW + timedelta(hours=1))
    twilio.fail_next(400, 30006)
    drive(unit_of_work, twilio, steps(NOW, NOW), email=email, public_url=TRACKER)

    _, plain, _ = received_email(mailbox)
    match = LINK.search(plain)
    assert match is not None
    late = NOW + timedelta(hours=1, seconds=1)
    assert confirm_by_link(unit_of_work(), match.group(1), "taken", late).status == "expired"


def test_no_fallback_for_a_reminder_answered_meanwhile(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    reminder_id = messages(engine)[0].reminder_id
    # the person confirmed the dose from an earlier message before this follow-up failed
    with engine.begin() as connection:
        connection.execute(
            update(ReminderRow).where(ReminderRow.id == reminder_id).values(status="confirmed")
        )
    twilio.fail_next(400, 30006)
    drive(unit_of_work, twilio, steps(NOW, NOW), email=email, public_url=TRACKER)

    [sms] = messages(engine)
    assert (sms.id, sms.status) == (message_id, "failed")
    assert mailbox.received == []
