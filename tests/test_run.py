"""`dosewise run` as a real process on a new SQLite file: it creates the schema, the three
services work together (a due reminder is handed off, sent on the console channel, and a
signed reply over HTTP confirms it), and Ctrl-C (or SIGTERM) ends it cleanly with nothing
left half-sent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from notifier.twilio_webhooks import compute_signature
from schemas.files import load_regimen
from services.ports import ReminderPlan
from store.engine import create_engine, session_factory
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import free_port

EXAMPLE = Path(__file__).parent.parent / "examples" / "ana.yaml"
AUTH_TOKEN = "run-test-auth-token"


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s")


class Running:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'small.db'}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = tmp_path / "run.out"
        self.err = tmp_path / "run.err"
        env = {
            **os.environ,
            "DOSEWISE_DATABASE_URL": self.url,
            "DOSEWISE_PUBLIC_URL": self.base,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("TWILIO_ACCOUNT_SID", None)  # SMS go to the console channel
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dosewise", "run", "--port", str(self.port)],
            env=env,
            stdout=self.out.open("wb"),
            stderr=self.err.open("wb"),
        )

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.err.read_text()
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def reply(self, body: str) -> httpx.Response:
        form = {"MessageSid": "SM" + "7" * 32, "From": "+4520123456", "To": "+4599", "Body": body}
        signature = compute_signature(AUTH_TOKEN, f"{self.base}/twilio/sms", form)
        return httpx.post(
            f"{self.base}/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
        )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    service = Running(tmp_path)
    try:
        wait_for(service.healthy, 60, "dosewise run answering /healthz")
        yield service
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


def enrol_with_a_dose_due_now(url: str) -> None:
    """Enrol Ana (as `dosewise people add` does) and give her a reminder due this second."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    from services.enrolment import enrol_person

    now = datetime.now(UTC)
    person_id = enrol_person(SqlUnitOfWork(sessions), load_regimen(EXAMPLE), now).person_id
    plan = ReminderPlan(
        person_id=person_id,
        slot_key=f"{now.date()}#run-test",
        kind="dose",
        due_at=now - timedelta(seconds=1),
        window_closes_at=now + timedelta(hours=1),
        items=[{"supplement": "magnesium", "dose": "300 mg", "name": "magnesium citrate"}],
    )
    with SqlUnitOfWork(sessions) as work:
        work.scheduling.save_reminders([plan], now)
        work.commit()
    engine.dispose()


def statuses(url: str) -> tuple[list[str], list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            reminders = connection.execute(
                select(ReminderRow.status).where(ReminderRow.slot_key.like("%#run-test"))
            ).scalars()
            messages = connection.execute(select(OutgoingMessageRow.status)).scalars()
            return list(reminders), list(messages)
    finally:
        engine.dispose()


def test_the_three_services_work_together_and_ctrl_c_ends_it_cleanly(running: Running) -> None:
    enrol_with_a_dose_due_now(running.url)
    wait_for(
        lambda: "magnesium citrate 300 mg" in running.out.read_text(),
        30,
        "the due reminder printed on the console channel",
    )
    answer = running.reply("TAKEN")
    assert answer.status_code == 200
    assert "Logged at" in answer.text and "magnesium citrate 300 mg" in answer.text
    reminders, _messages = statuses(running.url)
    assert reminders == ["confirmed"]

    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=20) == 0, running.err.read_text()
    _reminders, messages = statuses(running.url)
    assert "sending" not in messages and "sent" in messages
    assert "Traceback" not in running.err.read_text()


def test_requests_are_not_access_logged(running: Running) -> None:
    """The tracker logs each webhook itself, phones masked; uvicorn's access line would also
    write the tokens of confirm links into the log."""
    token = "not-a-real-token-but-a-secret-looking-one"
    assert httpx.get(f"{running.base}/confirm/{token}").status_code == 404
    assert running.reply("HELP").status_code == 200
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=20) == 0
    log = running.err.read_text() + running.out.read_text()
    assert "sms SM7777" in log  # the tracker's own line
    assert token not in log and '"POST /twilio/sms' not in log


def test_sigterm_ends_it_cleanly_too(running: Running) -> None:
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=20) == 0, running.err.read_text()


def test_the_schema_is_created_on_first_run(running: Running) -> None:
    engine = create_engine(running.url)
    try:
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(ReminderRow)).scalar() == 0
    finally:
        engine.dispose()


def test_a_bad_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "DOSEWISE_DATABASE_URL": "nosuchdb://x"}
    done = subprocess.run(
        [sys.executable, "-m", "dosewise", "run", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dosewise: ") and "Traceback" not in done.stderr


def _run_refused(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOSEWISE_DATABASE_URL": f"sqlite:///{tmp_path}/run.db"}
    return subprocess.run(
        [sys.executable, "-m", "dosewise", "run", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_port_in_use_is_one_line_before_any_service_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_refused(tmp_path, "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"dosewise: 127.0.0.1:{port} is in use"]
    assert not (tmp_path / "run.db").exists()  # nothing ran: not even the migration


def test_a_port_out_of_range_is_refused_not_wrapped(tmp_path: Path) -> None:
    done = _run_refused(tmp_path, "--port", "99999")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dosewise: argument --port: 99999 is not a port (1-65535)"
    ]
