"""Short leases, renewed while a notifier holds its messages: a slow send keeps its claim, and
a dead notifier's unsent claims are sent by another within seconds, after the provider has
been asked (what already went is recorded, not sent again). On both databases, through the
real twilio client and the fake Twilio, on the real clock."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from notifier.console import ConsoleChannel, ConsoleEmailGateway
from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig
from notifier.worker import Worker, WorkerConfig
from services.leases import renew_leases
from services.sending import claim_due
from store.unit_of_work import SqlUnitOfWork
from tests.fakes.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilioServer,
    ScriptedAnswer,
)
from tests.notifier_support import BODY, add_message, add_person, message, messages

Factory = Callable[[], SqlUnitOfWork]
LEASE = timedelta(seconds=1)


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


def _gateway(server: FakeTwilioServer) -> AsyncTwilioSmsGateway:
    return AsyncTwilioSmsGateway(
        TwilioConfig(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            from_number="+15005550006",
            api_base_url=server.base_url,
            timeout_s=10.0,
        )
    )


def _worker(unit_of_work: Factory, server: FakeTwilioServer, name: str, **changes: Any) -> Worker:
    values: dict[str, Any] = {
        "worker_id": name,
        "lease": LEASE,
        "idle_sleep_s": 0.05,
        "sweep_every_s": 0.2,
        "record_every_s": 0.01,
    }
    values.update(changes)
    email = ConsoleEmailGateway(ConsoleChannel(stream=io.StringIO()))
    return Worker(unit_of_work, _gateway(server), email, WorkerConfig(**values), random.Random(5))


def _now() -> datetime:
    return datetime.now(UTC)


async def _run_until(workers: list[Worker], done: Callable[[], bool], timeout_s: float) -> float:
    """Run the workers' loops until `done()`; the seconds it took. Then stop them as SIGTERM
    does and close their clients."""
    stop = asyncio.Event()
    loops = [asyncio.create_task(worker.run(_now, stop)) for worker in workers]
    started = time.monotonic()
    try:
        while not done():
            assert time.monotonic() - started < timeout_s, "not settled in time"
            await asyncio.sleep(0.05)
        return time.monotonic() - started
    finally:
        stop.set()
        await asyncio.gather(*loops)
        for worker in workers:
            sms = worker.sms
            assert isinstance(sms, AsyncTwilioSmsGateway)
            await sms.aclose()


def test_renewal_extends_only_this_workers_unexpired_claims(
    engine: Engine, unit_of_work: Factory
) -> None:
    now = _now()
    person = add_person(engine, now)
    ids = [add_message(engine, person, now, slot_key=f"s{i}") for i in range(3)]
    mine = claim_due(unit_of_work(), now, "mine", 2, LEASE)
    theirs = claim_due(unit_of_work(), now, "theirs", 1, LEASE)
    assert len(mine) == 2 and len(theirs) == 1
    later = now + timedelta(milliseconds=500)
    renewed = renew_leases(unit_of_work(), ids, "mine", later, timedelta(seconds=5))
    assert renewed == {item.message.id for item in mine}
    assert message(engine, mine[0].message.id).lease_until == later + timedelta(seconds=5)
    assert message(engine, theirs[0].message.id).lease_until == now + LEASE
    # past its end a lease is not renewed: another notifier's sweeper may have it already
    expired = now + timedelta(seconds=9)
    assert renew_leases(unit_of_work(), ids, "mine", expired, LEASE) == set()


def test_a_send_slower_than_the_lease_keeps_its_claim_and_goes_once(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    person = add_person(engine, _now())
    message_id = add_message(engine, person, _now() - timedelta(seconds=1))
    twilio.script(ScriptedAnswer(delay_s=2.5))  # 2.5 leases
    sender = _worker(unit_of_work, twilio, "slow-sender")
    sweeper = _worker(unit_of_work, twilio, "other-notifier")
    asyncio.run(
        _run_until([sender, sweeper], lambda: message(engine, message_id).status == "sent", 15)
    )
    [sent] = twilio.messages
    assert message(engine, message_id).provider_id == sent.sid


def test_a_dead_notifiers_claims_are_sent_by_another_within_seconds_after_asking_twilio(
    engine: Engine, unit_of_work: Factory, twilio: FakeTwilioServer
) -> None:
    now = _now() - timedelta(seconds=1)
    person = add_person(engine, now)
    ids = [
        add_message(engine, person, now, body=f"{BODY} #{i}", slot_key=f"s{i}") for i in range(6)
    ]
    # a notifier claims them all, sends the first, and dies: nothing renews its lease
    claimed = claim_due(unit_of_work(), now, "dead-notifier", 10, timedelta(seconds=3))
    assert len(claimed) == 6

    async def send_first_then_die() -> None:
        sms = _gateway(twilio)
        await sms.send(claimed[0].message.recipient, claimed[0].message.body)
        await sms.aclose()

    asyncio.run(send_first_then_die())
    died = time.monotonic()
    survivor = _worker(unit_of_work, twilio, "survivor", lease=timedelta(seconds=3))
    asyncio.run(
        _run_until(
            [survivor],
            lambda: all(row.status == "sent" for row in messages(engine)),
            20,
        )
    )
    recovered = time.monotonic() - died
    assert recovered < 10, recovered
    bodies = sorted(m.body for m in twilio.messages)
    assert bodies == sorted(f"{BODY} #{i}" for i in range(6))  # the first once, not twice
    first = message(engine, claimed[0].message.id)
    assert first.provider_id == next(m.sid for m in twilio.messages if m.body.endswith("#0"))
    assert {message(engine, i).status for i in ids} == {"sent"}
