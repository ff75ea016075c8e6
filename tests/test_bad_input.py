"""Bad input is bad input: characters the database refuses are a 400 (never a 503 that reads
as an outage), a DOSEWISE_PUBLIC_URL that links cannot be built on is refused in one line,
and a client that sends its request slowly is cut off rather than waited for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import SERVER_OPTIONS, tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from store.errors import DatabaseUnavailable, RefusedValue
from store.reports import SqlAdherenceQueries
from tests.conftest import free_port
from tests.tracker_client import NOW, Tracker, make_tracker
from tracker.characters import unreadable_field
from tracker.timeouts import HeaderTimeoutProtocol

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin(database_url: str, engine: Engine) -> Iterator[Tracker]:
    yield from make_tracker(database_url, engine, admin_token=ADMIN_TOKEN)


@pytest.mark.parametrize("path", ["/admin/api/adherence", "/admin/api/adherence.csv"])
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("person=%00", "person holds a NUL character"),
        ("person=ana%00jensen", "person holds a NUL character"),
        ("person=%FF", "person is not UTF-8 text"),
        ("from=2026-11-01&to=%ED%A0%80", "to is not UTF-8 text"),
        ("%00=1", "a parameter's name holds a NUL character"),
    ],
)
def test_characters_the_database_refuses_are_a_400_naming_the_parameter(
    admin: Tracker, caplog: pytest.LogCaptureFixture, path: str, query: str, said: str
) -> None:
    answer = admin.client.get(f"{path}?{query}", headers=BEARER)
    assert (answer.status_code, answer.json()) == (400, {"detail": said})
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_the_dashboard_and_its_forms_refuse_them_too(admin: Tracker) -> None:
    assert admin.client.get("/admin/?sort=%00", headers=BEARER).status_code == 400
    login = admin.client.post(
        "/admin/login",
        content=b"token=%00",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 400


def test_a_person_named_as_typed_still_finds_them(admin: Tracker) -> None:
    answer = admin.client.get(
        "/admin/api/adherence?person=%2B45%2020%2012%2034%2056", headers=BEARER
    )
    assert answer.status_code == 404  # nobody enrolled: looked up, not refused


def test_the_store_calls_a_refused_value_bad_input_not_an_outage(postgres_url: str) -> None:
    """The backstop behind the routes' own checks: PostgreSQL refuses a NUL in text."""
    from store.engine import create_engine

    engine = create_engine(postgres_url)
    try:
        queries = SqlAdherenceQueries(engine)
        with pytest.raises(RefusedValue) as refused:
            queries.find_person("ana\x00")
        assert not isinstance(refused.value, DatabaseUnavailable)
        assert "NUL" in str(refused.value)
    finally:
        engine.dispose()


def test_a_webhook_with_a_nul_is_a_400_counted_as_bad_request(tracker: Tracker) -> None:
    answer = tracker.post_signed(
        "/twilio/status", {"MessageSid": "SM1", "MessageStatus": "de\x00l"}
    )
    assert answer.status_code == 400
    metrics = tracker.client.get("/metrics").text
    assert 'outcome="bad_request",route="/twilio/status"} 1.0' in metrics


def test_unreadable_field_reads_forms_as_the_routes_do() -> None:
    assert unreadable_field(b"a=1&b=two+words&c=%C3%A6") is None
    assert unreadable_field(b"a=%00") == "a holds a NUL character"
    assert unreadable_field(b"&&a=1&") is None
    assert unreadable_field(b"n%C3%A6me=%C3") == "næme is not UTF-8 text"


# -- DOSEWISE_PUBLIC_URL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("http://tracker.example#frag", "and no fragment"),
        ("https://tracker.example/x?y=1", "and no query"),
        ("https://ops:s3cret@tracker.example", "and no user info"),
    ],
)
def test_a_public_url_links_cannot_be_built_on_is_one_line_and_exit_2(
    tmp_path: Path, value: str, said: str
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DOSEWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}",
        "DOSEWISE_PUBLIC_URL": value,
    }
    done = subprocess.run(
        [sys.executable, "-m", "dosewise", "tracker", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("dosewise: DOSEWISE_PUBLIC_URL must be an http:// or https:// URL")
    assert said in line
    assert "s3cret" not in line  # user info may be a password: not echoed


# -- slow clients ------------------------------------------------------------------------------


class _QuickHeaders(HeaderTimeoutProtocol):
    header_timeout_s = 0.5


@pytest.fixture
def served(database_url: str, engine: Engine) -> Iterator[int]:
    """The tracker under uvicorn, as `dosewise tracker` serves it, with half-second read
    timeouts; its port."""
    port = free_port()
    app = tracker_app(
        Settings(database_url=database_url), database_on(engine), lambda: NOW, body_timeout_s=0.5
    )
    options = {**SERVER_OPTIONS, "http": _QuickHeaders}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def _connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def _answer_and_close(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


def test_a_body_sent_too_slowly_is_a_408_and_the_connection_closed(served: int) -> None:
    sock = _connect(
        served,
        b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
        b"urlencoded\r\nContent-Length: 100\r\n\r\nMessageSid=SM1",
    )
    with sock:
        received, waited = _answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert 0.3 < waited < 3


def test_headers_sent_too_slowly_close_the_connection(served: int) -> None:
    with _connect(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") as sock:
        received, waited = _answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert 0.3 < waited < 3
    with _connect(served) as silent:  # one that sends nothing at all
        received, waited = _answer_and_close(silent)
    assert 0.3 < waited < 3


def test_a_crowd_of_slow_clients_is_cut_off_while_others_are_served(served: int) -> None:
    crowd = [_connect(served, b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\n") for _ in range(200)]
    try:
        with _connect(
            served, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ) as quick:
            answer, _ = _answer_and_close(quick)
        assert answer.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        for sock in crowd:
            sock.settimeout(5)
            _answer_and_close(sock)
        assert time.monotonic() - started < 3  # all closed about half a second in
    finally:
        for sock in crowd:
            sock.close()


def test_a_prompt_request_on_a_kept_alive_connection_is_not_cut_off(served: int) -> None:
    with _connect(served) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 ")
            time.sleep(0.3)  # under the header timeout between requests


@pytest.fixture
def tracker(database_url: str, engine: Engine) -> Iterator[Tracker]:
    yield from make_tracker(database_url, engine)
