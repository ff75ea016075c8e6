"""`dosewise notifier` as real processes on PostgreSQL: kill -9 mid-run, and two at once."""

from __future__ import annotations

import collections
import os
import re
import select as io_select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from store.engine import create_engine
from store.models import OutgoingMessageRow
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioServer
from tests.notifier_support import add_message, add_person

COUNT = 2_000
DOSEWISE = os.path.join(os.path.dirname(sys.executable), "dosewise")


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


def enqueue(engine: Engine, count: int) -> None:
    """`count` messages due now, each to its own number with its own text."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    person = add_person(engine, now)
    rows = [
        {
            "person_id": person,
            "channel": "sms",
            "recipient": f"+452{index:07d}",
            "body": f"dosewise: message {index}",
            "purpose": "initial",
            "status": "due",
            "due_at": now,
            "next_attempt_at": now,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for index in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(OutgoingMessageRow), rows)


def notifier(url: str, twilio: FakeTwilioServer, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DOSEWISE_DATABASE_URL": url,
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": twilio.base_url,
    }
    env.pop("DOSEWISE_SMS_RATE", None)
    return subprocess.Popen(
        [DOSEWISE, "notifier", "--lease-seconds", "2", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def started(process: subprocess.Popen[bytes]) -> None:
    assert process.stderr is not None
    line = process.stderr.readline().decode()
    assert "dosewise notifier" in line, line


def sent_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(select(func.count()).where(OutgoingMessageRow.status == "sent")) or 0
        )


def wait_until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s")


def duplicates(twilio: FakeTwilioServer) -> int:
    per_body = collections.Counter(message.body for message in twilio.messages)
    return sum(count - 1 for count in per_body.values())


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(15)


def test_kill_9_mid_run_loses_nothing_and_doubles_at_most_one_per_kill(
    postgres_url: str, pg_engine: Engine, twilio: FakeTwilioServer
) -> None:
    enqueue(pg_engine, COUNT)
    kills = 0
    # small batches so that a run lasts long enough to be killed several times
    extra = ("--batch-size", "25", "--concurrency", "10")
    for threshold in (200, 600, 1000, 1400):
        process = notifier(postgres_url, twilio, *extra)
        started(process)
        wait_until(lambda t=threshold: len(twilio.messages) >= t, 30)
        process.kill()  # SIGKILL: no clean-up at all
        process.wait()
        kills += 1
    process = notifier(postgres_url, twilio, *extra)
    started(process)
    try:
        wait_until(lambda: sent_count(pg_engine) == COUNT, 60)
    finally:
        assert stop(process) == 0
    bodies = {message.body for message in twilio.messages}
    assert bodies == {f"dosewise: message {index}" for index in range(COUNT)}
    assert duplicates(twilio) <= kills
    with pg_engine.connect() as connection:
        statuses = connection.execute(
            select(OutgoingMessageRow.status, func.count()).group_by(OutgoingMessageRow.status)
        ).all()
    assert dict(statuses) == {"sent": COUNT}


def test_two_notifiers_never_send_one_message_twice(
    postgres_url: str, pg_engine: Engine, twilio: FakeTwilioServer
) -> None:
    first = notifier(postgres_url, twilio, "--batch-size", "50")
    second = notifier(postgres_url, twilio, "--batch-size", "50")
    try:
        started(first)
        started(second)
        enqueue(pg_engine, COUNT)
        wait_until(lambda: sent_count(pg_engine) == COUNT, 60)
    finally:
        codes = [stop(first), stop(second)]
    assert codes == [0, 0]  # SIGTERM: a clean stop
    assert len(twilio.messages) == COUNT
    assert duplicates(twilio) == 0
    with pg_engine.connect() as connection:
        workers = connection.scalars(select(OutgoingMessageRow.claimed_by).distinct()).all()
    assert len(workers) == 2  # both did a share of the work


def test_the_notifier_logs_a_permanent_failure_with_time_logger_and_masked_phone(
    database_url: str, engine: Engine, twilio: FakeTwilioServer
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=1)
    person = add_person(engine, now)
    add_message(engine, person, now, not_after=now + timedelta(hours=2))
    twilio.fail_next(400, 21211, "The 'To' number +4520123456 is not a valid phone number.")
    process = notifier(database_url, twilio)
    try:
        started(process)
        assert process.stderr is not None
        readable, _, _ = io_select.select([process.stderr], [], [], 30)
        assert readable, "the notifier logged nothing about the failure"
        line = process.stderr.readline().decode()
    finally:
        code = stop(process)
    assert code == 0, (line, process.stderr.read() if process.stderr else None)
    # "2026-12-01 13:33:08,123 dosewise.notifier WARNING message 1 (sms to +45****3456, ..."
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} dosewise\.notifier WARNING ", line), line
    assert "failed for good, code 21211" in line
    assert "+45****3456" in line
    assert "+4520123456" not in line
    assert DEFAULT_AUTH_TOKEN not in line
