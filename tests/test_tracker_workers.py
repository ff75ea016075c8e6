"""`dosewise tracker --workers N`: the real command under uvicorn, N processes serving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from notifier.twilio_webhooks import compute_signature
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import free_port
from tests.seeding import add_reminder, confirmations, enrol, event_types
from tests.tracker_client import AUTH_TOKEN, PHONE, PUBLIC_URL, new_sid

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def _environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DOSEWISE_DATABASE_URL": database_url,
        "DOSEWISE_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing's spawn, not its resource tracker)."""
    children = [
        int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]
    return [
        child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@pytest.fixture
def served(database_url: str, engine: Engine) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "2"]
    child = subprocess.Popen(command, env=_environment(database_url), stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            assert child.poll() is None, "the tracker stopped"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, child
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_two_workers_serve_signed_replies(
    served: tuple[int, subprocess.Popen[bytes]], unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    port, child = served
    now = datetime.now(UTC)
    person_id = enrol(unit_of_work, PHONE, now)
    reminder_id = add_reminder(unit_of_work, engine, person_id, now - timedelta(minutes=5))
    assert len(_workers(child.pid)) == 2
    url = f"http://127.0.0.1:{port}/twilio/sms"
    form = {"MessageSid": new_sid(), "From": PHONE, "To": "+4599999999", "Body": "TAKEN"}
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + "/twilio/sms", form)
    with httpx.Client() as client:
        # new connections: uvicorn's workers share the socket, so they can land on either
        answers = [
            client.post(
                url, data=form, headers={"X-Twilio-Signature": signature, "Connection": "close"}
            )
            for _ in range(4)
        ]
        forged = client.post(url, data=form, headers={"X-Twilio-Signature": "forged"})
    assert [answer.status_code for answer in answers] == [200] * 4
    assert "Iron logged at" in answers[0].text
    assert len({answer.text for answer in answers}) == 1  # redeliveries: the stored answer
    assert forged.status_code == 403
    assert [reminder for reminder, _, _ in confirmations(engine)] == [reminder_id]
    assert event_types(engine).count("DoseConfirmed") == 1


def test_workers_must_be_positive(database_url: str, engine: Engine) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dosewise", "tracker", "--workers", "0"],
        env=_environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["dosewise: --workers must be at least 1"]
