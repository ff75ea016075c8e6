"""The worker's pipelined run and its batch recording, on both databases, through the real
twilio client and a fake Twilio: each message keeps its own result, and the SMS rate counts
SMS only."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from notifier.console import ConsoleChannel, ConsoleEmailGateway
from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig
from notifier.worker import Worker, WorkerConfig
from services.sending import RetryPolicy
from store.models import SendRateSlotRow
from store.unit_of_work import SqlUnitOfWork
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioServer
from tests.notifier_support import (
    BODY,
    add_message,
    add_person,
    events,
    messages,
    reminder_status,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDER = "+15005550006"
Factory = Callable[[], SqlUnitOfWork]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


def worker(unit_of_work: Factory, server: FakeTwilioServer, **changes: Any) -> Worker:
    sms = AsyncTwilioSmsGateway(
        TwilioConfig(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            from_number=SENDER,
            api_base_url=server.base_url,
            timeout_s=2.0,
        )
    )
    email = ConsoleEmailGateway(ConsoleChannel(stream=io.StringIO()))
    values: dict[str, Any] = {
        "worker_id": "pipeline-test",
        "status_callback": "http://127.0.0.1:8000/twilio/status",
        "retry": RetryPolicy(),
        "idle_sleep_s": 0.02,
        "sweep_every_s": 0.5,
    }
    values.update(changes)
    return Worker(unit_of_work, sms, email, WorkerConfig(**values), random.Random(3))


def run_until_settled(engine: Engine, notifier: Worker, timeout_s: float = 20.0) -> None:
    """Run the worker's loop on a clock that starts at NOW until no message is left to send,
    then stop it the way SIGTERM does."""
    started = time.monotonic()

    def clock() -> datetime:
        return NOW + timedelta(seconds=time.monotonic() - started)

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(notifier.run(clock, stop))
        while any(row.status in ("due", "sending") for row in messages(engine)):
            assert time.monotonic() - started < timeout_s, "the worker did not settle"
            await asyncio.sleep(0.05)
        stop.set()
        await loop
        sms = notifier.sms
        assert isinstance(sms, AsyncTwilioSmsGateway)
        await sms.aclose()

    asyncio.run(scenario())


def test_one_recording_keeps_each_message_s_own_result_failures_in_between(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    # twilio refuses the malformed numbers (21211, never retried); the rest go out
    recipients = [f"+452012{index:04d}" for index in range(9)]
    recipients[3], recipients[6] = "+0003", "+0006"
    ids = [
        add_message(
            engine,
            person,
            NOW,
            recipient=recipient,
            body=f"{BODY} #{index}",
            slot_key=f"slot-{index}",
            not_after=NOW + timedelta(hours=1),
        )
        for index, recipient in enumerate(recipients)
    ]
    # one recording for the whole batch: results gather longer than the sends take
    run_until_settled(engine, worker(unit_of_work, twilio, record_every_s=0.5))

    accepted = {m.body: m for m in twilio.messages}
    assert len(accepted) == 7
    rows = {row.id: row for row in messages(engine)}
    for index, message_id in enumerate(ids):
        row = rows[message_id]
        if index in (3, 6):
            assert (row.status, row.error_code, row.provider_id) == ("failed", "21211", None)
            assert reminder_status(engine, row.reminder_id) == "queued"
        else:
            twin = accepted[f"{BODY} #{index}"]
            assert (row.status, row.provider_id, twin.to) == ("sent", twin.sid, recipients[index])
            assert row.segments == twin.num_segments
            assert row.sent_at is not None and row.sent_at >= NOW
            assert reminder_status(engine, row.reminder_id) == "sent"
    failed = [payload["message_id"] for kind, payload in events(engine) if kind == "DeliveryFailed"]
    assert sorted(failed) == [ids[3], ids[6]]


def test_the_run_sends_everything_once_and_leaves_nothing_sending(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    for index in range(120):
        add_message(engine, person, NOW, body=f"{BODY} #{index}", with_reminder=False)
    # small batches and few senders: the queue fills, the claimer waits, results gather
    run_until_settled(engine, worker(unit_of_work, twilio, batch_size=16, concurrency=4))

    bodies = [m.body for m in twilio.messages]
    assert sorted(bodies) == sorted(f"{BODY} #{index}" for index in range(120))
    rows = messages(engine)
    assert {row.status for row in rows} == {"sent"}
    assert {row.provider_id for row in rows} == {m.sid for m in twilio.messages}


def test_only_sms_count_against_the_sender_s_rate(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW, email="ana@example.com")
    for index in range(4):
        add_message(engine, person, NOW, body=f"{BODY} #{index}", slot_key=f"sms-{index}")
    for index in range(3):
        add_message(
            engine,
            person,
            NOW,
            channel="email",
            recipient="ana@example.com",
            body=f"{BODY} mail #{index}",
            slot_key=f"mail-{index}",
        )
    notifier = worker(unit_of_work, twilio, sms_rate=2.0, sender=SENDER)

    async def scenario() -> list[tuple[int, int]]:
        counts = []
        for at in (NOW, NOW + timedelta(milliseconds=500), NOW + timedelta(seconds=1)):
            await notifier.step(at)
            sent = [row for row in messages(engine) if row.status == "sent"]
            counts.append(
                (
                    sum(row.channel == "sms" for row in sent),
                    sum(row.channel != "sms" for row in sent),  # e-mails, on the console
                )
            )
        return counts

    counts = asyncio.run(scenario())
    # the first claim: 2 SMS (the rate) and every e-mail; then no SMS in the same second
    assert counts == [(2, 3), (2, 3), (4, 3)]
    with engine.connect() as connection:
        used = connection.execute(
            select(SendRateSlotRow.second, SendRateSlotRow.used).order_by(SendRateSlotRow.second)
        ).all()
    second = int(NOW.timestamp())
    assert [tuple(row) for row in used] == [(second, 2), (second + 1, 2)]


def test_sms_beyond_the_free_slots_stay_due_without_spending_an_attempt(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, NOW)
    for index in range(3):
        add_message(engine, person, NOW, body=f"{BODY} #{index}", slot_key=f"sms-{index}")
    notifier = worker(unit_of_work, twilio, sms_rate=1.0, sender=SENDER)
    asyncio.run(notifier.step(NOW))

    rows = messages(engine)
    assert sorted((row.status, row.attempts) for row in rows) == [
        ("due", 0),
        ("due", 0),
        ("sent", 1),
    ]


def test_a_message_that_waited_past_half_its_lease_is_left_to_the_sweeper(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    """Once its lease may run out, another notifier's sweeper may settle and resend the
    message: sending it as well could make a duplicate, so the sender leaves it alone."""
    person = add_person(engine, NOW)
    for index in range(5):
        add_message(engine, person, NOW, body=f"{BODY} #{index}", slot_key=f"slot-{index}")
    # a lease of 2 ms is half over before any sender picks the message up
    notifier = worker(unit_of_work, twilio, lease=timedelta(milliseconds=2), sweep_every_s=60)
    started = time.monotonic()

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(
            notifier.run(lambda: NOW + timedelta(seconds=time.monotonic() - started), stop)
        )
        await asyncio.sleep(0.5)
        stop.set()
        await loop
        sms = notifier.sms
        assert isinstance(sms, AsyncTwilioSmsGateway)
        await sms.aclose()

    asyncio.run(scenario())
    assert twilio.messages == []
    # not lost: still 'sending' under a lease the sweeper will settle (or due again)
    assert {row.status for row in messages(engine)} <= {"sending", "due"}


def test_the_sms_rate_applies_to_twilio_only() -> None:
    from dosewise.settings import Settings
    from dosewise.wiring import sms_rate

    console = Settings.from_environment({"DOSEWISE_SMS_RATE": "5"})
    twilio = Settings.from_environment(
        {"DOSEWISE_SMS_RATE": "5", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}
    )
    assert (sms_rate(console), sms_rate(twilio)) == (0.0, 5.0)
