"""The notifier's worker on both databases, through the real twilio client and a fake Twilio."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.engine import Engine

from notifier.console import ConsoleChannel, ConsoleEmailGateway, ConsoleSmsGateway
from notifier.email import SmtpConfig, SmtpEmailGateway
from notifier.ports import EmailGateway
from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig
from notifier.worker import Worker, WorkerConfig
from services.sending import RetryPolicy
from services.texts import pack_email
from store.models import OptOutRow, PersonRow
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import free_port
from tests.fakes.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilioServer,
    ScriptedAnswer,
)
from tests.notifier_support import (
    BODY,
    add_message,
    add_person,
    events,
    message,
    messages,
    reminder_status,
)

# 10:00 UTC is 11:00 in Copenhagen
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PHONE = "+4520123456"
CALLBACK = "http://127.0.0.1:8000/twilio/status"
Factory = Callable[[], SqlUnitOfWork]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


def twilio_config(server: FakeTwilioServer) -> TwilioConfig:
    return TwilioConfig(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number="+15005550006",
        api_base_url=server.base_url,
        timeout_s=1.0,
    )


def worker_config(**changes: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "worker_id": "test-worker",
        "status_callback": CALLBACK,
        "lease": timedelta(seconds=30),
        "retry": RetryPolicy(base_s=2.0, cap_s=60.0),
    }
    values.update(changes)
    return WorkerConfig(**values)


def drive(
    unit_of_work: Factory,
    server: FakeTwilioServer,
    scenario: Callable[[Worker], Awaitable[None]],
    *,
    email: EmailGateway | None = None,
    **config: Any,
) -> None:
    """Run `scenario` with a worker on the async Twilio gateway, in one event loop."""

    async def run() -> None:
        sms = AsyncTwilioSmsGateway(twilio_config(server))
        mail = email or ConsoleEmailGateway(ConsoleChannel(stream=io.StringIO()))
        worker = Worker(unit_of_work, sms, mail, worker_config(**config), random.Random(7))
        try:
            await scenario(worker)
        finally:
            await sms.aclose()

    asyncio.run(run())


def steps(*instants: datetime) -> Callable[[Worker], Awaitable[None]]:
    async def scenario(worker: Worker) -> None:
        for instant in instants:
            await worker.step(instant)

    return scenario


def test_success_records_sid_segments_and_marks_the_reminder_sent(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(minutes=90))
    drive(unit_of_work, twilio, steps(NOW))

    [sent] = twilio.messages
    assert (sent.to, sent.body) == (PHONE, BODY)
    assert sent.status_callback == CALLBACK
    assert sent.validity_period == 90 * 60
    row = message(engine, message_id)
    assert (row.status, row.channel, row.provider_id) == ("sent", "sms", sent.sid)
    assert row.segments == 1
    assert row.sent_at == NOW
    assert row.attempts == 1
    assert row.lease_until is None
    assert reminder_status(engine, row.reminder_id) == "sent"


def test_a_message_not_yet_due_waits(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW + timedelta(minutes=1))
    drive(unit_of_work, twilio, steps(NOW))
    assert twilio.messages == []
    assert message(engine, message_id).status == "due"


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, 20429), (503, 503), (400, 30001), (400, 30003), (400, 30008)],
)
def test_retryable_errors_back_off_then_succeed(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer, status: int, code: int
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    twilio.fail_next(status, code)
    drive(unit_of_work, twilio, steps(NOW))

    row = message(engine, message_id)
    # a 5xx may have been queued by Twilio before it failed: held for the sweeper to ask
    held = status >= 500
    assert (row.status, row.attempts, row.error_code) == (
        "sending" if held else "due",
        1,
        str(code),
    )
    # half to all of the 2 s base: jittered, never at once
    wait_until = row.lease_until if held else row.next_attempt_at
    assert NOW + timedelta(seconds=1) <= wait_until <= NOW + timedelta(seconds=2)

    later = NOW + timedelta(seconds=3)

    async def scenario(worker: Worker) -> None:
        await worker.sweep(later)
        await worker.step(later)

    drive(unit_of_work, twilio, scenario)
    row = message(engine, message_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", twilio.messages[0].sid, 2)
    assert len(twilio.messages) == 1


def test_retries_stop_when_the_window_has_no_room_for_another(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(seconds=20))
    twilio.script(*[ScriptedAnswer(status=429, code=20429)] * 10)
    # waits of at most 2, 4, 8 s: the 4th failure (at 14 s at the latest) leaves no room
    # for the next try and the 16 s after it
    later = [NOW + timedelta(seconds=seconds) for seconds in (0, 2, 6, 14, 30)]
    drive(unit_of_work, twilio, steps(*later))
    row = message(engine, message_id)
    assert (row.status, row.attempts) == ("failed", 4)
    assert [kind for kind, _ in events(engine)] == ["DeliveryFailed"]


@pytest.mark.parametrize("code", [21211, 21614, 30005, 30006, 30007])
def test_permanent_errors_fail_with_an_event(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer, code: int
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    twilio.fail_next(400, code)
    drive(unit_of_work, twilio, steps(NOW, NOW + timedelta(hours=1)))

    row = message(engine, message_id)
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, str(code))
    assert events(engine) == [
        (
            "DeliveryFailed",
            {"message_id": message_id, "reminder_id": row.reminder_id, "error_code": str(code)},
        )
    ]
    assert len(messages(engine)) == 1  # no e-mail address: no fallback
    assert twilio.messages == []


def test_21610_marks_the_person_opted_out(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(engine, person, NOW)
    twilio.opted_out.add(PHONE)
    drive(unit_of_work, twilio, steps(NOW))

    row = message(engine, message_id)
    assert (row.status, row.error_code) == ("failed", "21610")
    with engine.connect() as connection:
        assert connection.scalar(select(PersonRow.opted_out).where(PersonRow.id == person))
        [opt_out] = connection.execute(select(OptOutRow)).all()
    assert (opt_out.person_id, opt_out.source, opt_out.opted_out_at) == (person, "carrier", NOW)
    assert ("OptedOut", {"source": "carrier"}) in events(engine)
    assert len(messages(engine)) == 1  # a STOP is not answered by e-mail


def test_past_not_after_is_expired_not_sent(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW - timedelta(hours=3), not_after=NOW)
    drive(unit_of_work, twilio, steps(NOW))
    row = message(engine, message_id)
    assert row.status == "expired"
    assert reminder_status(engine, row.reminder_id) == "expired"
    assert twilio.messages == []


def test_opt_out_is_checked_at_send_time(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW, opted_out=True)
    message_id = add_message(engine, person, NOW)
    drive(unit_of_work, twilio, steps(NOW))
    assert message(engine, message_id).status == "cancelled"
    assert twilio.messages == []


def test_quiet_hours_are_checked_at_send_time(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    # 11:00 in Copenhagen falls in the person's 10:30-11:15 quiet window
    person = add_person(engine, NOW, quiet=[{"from": "10:30", "to": "11:15"}])
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=2))
    drive(unit_of_work, twilio, steps(NOW))
    row = message(engine, message_id)
    assert (row.status, row.attempts) == ("due", 0)
    assert row.next_attempt_at == NOW + timedelta(minutes=15)
    assert twilio.messages == []

    drive(unit_of_work, twilio, steps(NOW + timedelta(minutes=15)))
    assert message(engine, message_id).status == "sent"


def test_quiet_hours_past_not_after_expire(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW, quiet=[{"from": "22:00", "to": "12:00"}])
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(minutes=30))
    drive(unit_of_work, twilio, steps(NOW))
    assert message(engine, message_id).status == "expired"


@dataclass
class Mailbox:
    received: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_sms_that_fails_for_good_falls_back_to_email(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp
    email = SmtpEmailGateway(
        SmtpConfig("127.0.0.1", port, starttls=False, sender="dosewise@dosewise.example")
    )
    person = add_person(engine, NOW, email="ana@example.com")
    message_id = add_message(engine, person, NOW, not_after=NOW + timedelta(hours=1))
    twilio.fail_next(400, 30006)
    drive(unit_of_work, twilio, steps(NOW, NOW), email=email)

    sms, fallback = messages(engine)
    assert (sms.id, sms.status) == (message_id, "failed")
    assert (fallback.channel, fallback.purpose, fallback.recipient) == (
        "email",
        "initial-email",
        "ana@example.com",
    )
    assert fallback.status == "sent"
    assert fallback.provider_id.startswith("<")
    [envelope] = mailbox.received
    assert envelope.rcpt_tos == ["ana@example.com"]
    assert "Reply TAKEN" not in envelope.content.decode()  # more in test_notifier_fallback.py


def test_an_email_reminder_arrives_as_plain_text_and_html(
    engine: Engine,
    unit_of_work: Factory,
    twilio: FakeTwilioServer,
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp
    email = SmtpEmailGateway(
        SmtpConfig("127.0.0.1", port, starttls=False, sender="dosewise@dosewise.example")
    )
    person = add_person(engine, NOW, email="ana@example.com")
    body = pack_email("Take iron 18 mg now.", "<p>Take <b>iron 18 mg</b> now.</p>")
    add_message(engine, person, NOW, recipient="ana@example.com", channel="email", body=body)
    drive(unit_of_work, twilio, steps(NOW), email=email)

    [envelope] = mailbox.received
    received = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    plain = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == "Take iron 18 mg now."
    assert "<b>iron 18 mg</b>" in html.get_content()
    assert "dosewise:html" not in envelope.content.decode()


def test_console_channel_without_credentials(engine: Engine, unit_of_work: Factory) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    screen = io.StringIO()
    channel = ConsoleChannel(stream=screen)

    async def run() -> None:
        worker = Worker(
            unit_of_work, ConsoleSmsGateway(channel), ConsoleEmailGateway(channel), worker_config()
        )
        await worker.step(NOW)

    asyncio.run(run())
    row = message(engine, message_id)
    assert (row.status, row.channel, row.segments) == ("sent", "console", 1)
    assert row.provider_id.startswith("console-")
    assert f"SMS to {PHONE}" in screen.getvalue()
    assert "iron 18 mg + vitamin C 250 mg" in screen.getvalue()
    assert reminder_status(engine, row.reminder_id) == "sent"


def claim_and_vanish(unit_of_work: Factory, at: datetime) -> None:
    """A notifier that claimed a batch and died before recording anything."""
    from services.sending import claim_due

    claim_due(unit_of_work(), at, "crashed", 100, timedelta(seconds=30))


def test_sweeper_settles_an_expired_lease_the_provider_has(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    claim_and_vanish(unit_of_work, NOW)
    # it had reached Twilio before the crash
    from notifier.sms import TwilioSmsGateway

    direct = TwilioSmsGateway(twilio_config(twilio))
    accepted = direct.send(PHONE, BODY)
    direct.close()

    async def scenario(worker: Worker) -> None:
        assert await worker.sweep(NOW + timedelta(seconds=10)) == 0  # lease still running
        assert await worker.sweep(NOW + timedelta(seconds=31)) == 1
        await worker.step(NOW + timedelta(seconds=31))

    drive(unit_of_work, twilio, scenario)
    row = message(engine, message_id)
    assert (row.status, row.provider_id) == ("sent", accepted.provider_id)
    assert len(twilio.messages) == 1
    assert reminder_status(engine, row.reminder_id) == "sent"


def test_sweeper_resends_when_the_provider_has_nothing(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    claim_and_vanish(unit_of_work, NOW)
    later = NOW + timedelta(seconds=31)

    async def scenario(worker: Worker) -> None:
        assert await worker.sweep(later) == 1
        assert message(engine, message_id).status == "due"
        await worker.step(later)

    drive(unit_of_work, twilio, scenario)
    row = message(engine, message_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", twilio.messages[0].sid, 2)
    assert len(twilio.messages) == 1


def test_a_timeout_after_twilio_accepted_is_not_sent_twice(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    message_id = add_message(engine, person, NOW)
    twilio.script(ScriptedAnswer(drop_connection=True))  # accepted, then the line dropped

    async def scenario(worker: Worker) -> None:
        await worker.step(NOW)
        row = message(engine, message_id)
        assert row.status == "sending"  # held: the provider may have it
        later = row.lease_until + timedelta(seconds=1)
        assert await worker.step(later) == 0
        assert await worker.sweep(later) == 1

    drive(unit_of_work, twilio, scenario)
    [accepted] = twilio.messages
    row = message(engine, message_id)
    assert (row.status, row.provider_id) == ("sent", accepted.sid)


def test_rate_limit_holds_across_workers(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    for index in range(12):
        add_message(engine, person, NOW, body=f"{BODY} #{index}", with_reminder=False)

    async def scenario(worker: Worker) -> None:
        other = Worker(worker.unit_of_work, worker.sms, worker.email, worker.config)
        await worker.step(NOW)
        await other.step(NOW + timedelta(milliseconds=500))  # the same second
        assert len(twilio.messages) == 5
        await other.step(NOW + timedelta(seconds=1))
        assert len(twilio.messages) == 10

    drive(unit_of_work, twilio, scenario, sms_rate=5.0, sender="+15005550006")
