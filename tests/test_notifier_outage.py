"""Provider outages through the real worker: the real twilio client against the fake Twilio,
and a real SMTP conversation (aiosmtpd) for the e-mails, on both databases.

A clock is driven as the worker's loop would see it, jumping to each moment a message waits
for (its next attempt, the end of its lease), so an outage of hours takes milliseconds.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from notifier.email import SmtpConfig, SmtpEmailGateway
from notifier.worker import Worker
from tests.conftest import free_port
from tests.fakes.twilio_server import FakeTwilioServer, ScriptedAnswer
from tests.notifier_servers import smtp, twilio
from tests.notifier_support import add_message, add_person, events, message, messages
from tests.test_notifier_worker import NOW, PHONE, Factory, Mailbox, drive

PENDING = ("due", "sending")

__all__ = ["smtp", "twilio"]


def until_settled(
    engine: Engine,
    start: datetime,
    give_up: datetime,
    seen: list[datetime],
    before_round: Callable[[int], None] = lambda _: None,
) -> Callable[[Worker], Awaitable[None]]:
    """A scenario: sweep and step at each moment a pending message waits for, until none is
    pending (or `give_up`); the instants used are appended to `seen`. `before_round` is
    called with each round's number first."""

    async def scenario(worker: Worker) -> None:
        now = start
        for round_number in range(500):
            before_round(round_number)
            seen.append(now)
            await worker.sweep(now)
            await worker.step(now)
            waits = []
            for row in messages(engine):
                if row.status == "due":
                    waits.append(row.next_attempt_at)
                elif row.status == "sending":
                    waits.append(row.lease_until + timedelta(seconds=1))
            if not waits:
                return
            now = max(min(waits), now + timedelta(milliseconds=1))
            if now > give_up:
                return
        raise AssertionError("the messages never settled")

    return scenario


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 503)])
def test_an_outage_shorter_than_the_window_delivers_once(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer, status: int, code: int
) -> None:
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    # 12 refusals in a row: more than the six attempts that used to fail a reminder for good
    twilio.script(*[ScriptedAnswer(status=status, code=code)] * 12)
    seen: list[datetime] = []
    drive(unit_of_work, twilio, until_settled(engine, NOW, NOW + timedelta(hours=3), seen))

    [sent] = twilio.messages
    row = message(engine, message_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", sent.sid, 13)
    assert row.sent_at < NOW + timedelta(hours=2)
    assert len(messages(engine)) == 1  # no e-mail fallback
    assert events(engine) == []
    assert twilio.pending_script() == 0
    # capped exponential backoff: never two tries closer than a second, none 5 min apart
    tries = sorted(set(seen))
    assert all(b - a <= timedelta(minutes=5, seconds=2) for a, b in itertools.pairwise(tries))


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500)])
def test_an_outage_past_the_window_fails_and_falls_back_to_email(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
    status: int,
    code: int,
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    not_after = NOW + timedelta(minutes=30)
    message_id = add_message(engine, person, NOW, not_after=not_after)
    twilio.script(*[ScriptedAnswer(status=status, code=code)] * 1000)
    seen: list[datetime] = []
    drive(
        unit_of_work,
        twilio,
        until_settled(engine, NOW, NOW + timedelta(hours=1), seen),
        email=email,
    )

    assert twilio.messages == []
    sms, fallback = messages(engine)
    assert (sms.id, sms.status) == (message_id, "failed")
    assert sms.attempts > 6  # retried all through the window, not six times
    # it gave up with time left for the e-mail, which went at once
    assert NOW + timedelta(minutes=20) < sms.updated_at < not_after
    assert (fallback.channel, fallback.status, fallback.recipient) == (
        "email",
        "sent",
        "ana@example.com",
    )
    assert fallback.sent_at < not_after
    [envelope] = mailbox.received
    assert envelope.rcpt_tos == ["ana@example.com"]
    assert [kind for kind, _ in events(engine)] == ["DeliveryFailed"]


def test_a_last_try_that_twilio_accepted_is_settled_not_failed_and_emailed(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    # five refusals, then the sixth try is accepted but the answer never arrives
    twilio.script(
        *[ScriptedAnswer(status=429, code=20429)] * 5, ScriptedAnswer(drop_connection=True)
    )
    seen: list[datetime] = []
    drive(
        unit_of_work,
        twilio,
        until_settled(engine, NOW, NOW + timedelta(hours=3), seen),
        email=email,
    )

    [accepted] = twilio.messages
    row = message(engine, message_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", accepted.sid, 6)
    assert len(messages(engine)) == 1
    assert mailbox.received == []  # the person gets it once, by SMS
    assert events(engine) == []


def test_a_try_with_no_time_left_that_may_have_gone_asks_twilio_first(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
) -> None:
    mailbox, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    # one second of window left: no room for another try
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(seconds=1))
    twilio.script(ScriptedAnswer(drop_connection=True))
    seen: list[datetime] = []
    drive(
        unit_of_work,
        twilio,
        until_settled(engine, NOW, NOW + timedelta(hours=1), seen),
        email=email,
    )

    [accepted] = twilio.messages
    row = message(engine, message_id)
    assert (row.status, row.provider_id) == ("sent", accepted.sid)
    assert mailbox.received == []


def test_a_permanent_failure_fails_at_once_and_is_logged(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    twilio.fail_next(400, 21211, f"The 'To' number {PHONE} is not a valid phone number.")
    seen: list[datetime] = []
    with caplog.at_level(logging.INFO, logger="dosewise.notifier"):
        drive(unit_of_work, twilio, until_settled(engine, NOW, NOW + timedelta(hours=1), seen))

    row = message(engine, message_id)
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, "21211")
    [line] = [r for r in caplog.records if r.name == "dosewise.notifier"]
    assert line.levelno == logging.WARNING
    text = line.getMessage()
    assert f"message {message_id}" in text
    assert "failed for good" in text
    assert "21211" in text
    assert "+45****3456" in text
    assert PHONE not in text  # neither as the recipient nor inside Twilio's own words


def test_retries_fallbacks_and_opt_outs_are_logged_with_phones_masked(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, SmtpEmailGateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, email = smtp
    person = add_person(engine, NOW, email="ana@example.com")
    retried = add_message(engine, person, NOW, not_after=NOW + timedelta(seconds=3))
    other = add_person(engine, NOW, "+4520999888")
    opted_out = add_message(engine, other, NOW, recipient="+4520999888", slot_key="slot-2")
    twilio.opted_out.add("+4520999888")
    twilio.script(*[ScriptedAnswer(status=429, code=20429)] * 10)
    seen: list[datetime] = []
    with caplog.at_level(logging.INFO, logger="dosewise.notifier"):
        drive(
            unit_of_work,
            twilio,
            until_settled(engine, NOW, NOW + timedelta(hours=1), seen),
            email=email,
        )

    lines = [r.getMessage() for r in caplog.records if r.name == "dosewise.notifier"]
    text = "\n".join(lines)
    assert any(f"message {retried} " in line and "retry at" in line for line in lines), text
    assert any(f"message {retried} " in line and "no time is left" in line for line in lines)
    assert any(
        f"message {retried}:" in line and "by e-mail to a***@example.com" in line for line in lines
    ), text
    assert any(f"message {opted_out} " in line and "opted out" in line for line in lines), text
    assert PHONE not in text and "+4520999888" not in text and "ana@example.com" not in text
    assert "+45****9888" in text


def test_retry_after_is_honoured(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    twilio.script(ScriptedAnswer(status=429, code=20429, retry_after="90"))
    seen: list[datetime] = []
    drive(unit_of_work, twilio, until_settled(engine, NOW, NOW + timedelta(hours=1), seen))

    [sent] = twilio.messages
    row = message(engine, message_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", sent.sid, 2)
    # not after the 1-2 s of the first backoff, but when Twilio said
    assert seen[1] >= NOW + timedelta(seconds=90)


def test_a_retry_after_past_the_window_fails_at_once(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(minutes=10))
    twilio.script(ScriptedAnswer(status=429, code=20429, retry_after="3600"))
    seen: list[datetime] = []
    drive(unit_of_work, twilio, until_settled(engine, NOW, NOW + timedelta(hours=1), seen))

    row = message(engine, message_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert twilio.messages == []


def test_an_smtp_outage_shorter_than_the_window_delivers_the_email_once(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    mailbox = Mailbox()
    port = free_port()
    email = SmtpEmailGateway(
        SmtpConfig("127.0.0.1", port, starttls=False, sender="dosewise@dosewise.example")
    )
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(
        engine,
        person,
        NOW,
        channel="email",
        recipient="ana@example.com",
        body="Time to take iron 18 mg (11:00).",
        not_after=NOW + timedelta(hours=2),
    )
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)

    def server_back_after_ten_refusals(round_number: int) -> None:
        if round_number == 10:
            controller.start()

    seen: list[datetime] = []
    try:
        drive(
            unit_of_work,
            twilio,
            until_settled(
                engine, NOW, NOW + timedelta(hours=3), seen, server_back_after_ten_refusals
            ),
            email=email,
        )
    finally:
        controller.stop()

    row = message(engine, message_id)
    assert (row.status, row.attempts) == ("sent", 11)
    [envelope] = mailbox.received
    assert envelope.rcpt_tos == ["ana@example.com"]
    assert len(messages(engine)) == 1
    assert events(engine) == []


def test_a_sweeper_that_cannot_ask_twilio_logs_it_masked_and_asks_again(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    twilio.script(
        ScriptedAnswer(drop_connection=True),
        ScriptedAnswer(status=500, code=20500, message=f"no listing for {PHONE}", method="GET"),
    )

    async def scenario(worker: Worker) -> None:
        await worker.step(NOW)
        later = message(engine, message_id).lease_until + timedelta(seconds=1)
        with caplog.at_level(logging.INFO, logger="dosewise.notifier"):
            assert await worker.sweep(later) == 1
        assert message(engine, message_id).status == "sending"  # not sent again blindly
        await worker.sweep(later + timedelta(minutes=2))

    drive(unit_of_work, twilio, scenario)
    [line] = [r.getMessage() for r in caplog.records if "cannot settle" in r.getMessage()]
    assert f"message {message_id} (sms to +45****3456)" in line
    assert PHONE not in line
    [accepted] = twilio.messages
    assert message(engine, message_id).provider_id == accepted.sid
