"""`dosewise tracker --workers N`: the real command under uvicorn, N processes serving."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from dosewise.supervisor import restart_delay
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
    return [child for child in children if b"spawn_main" in _command_line(child)]


def _command_line(pid: int) -> bytes:
    """The process's command line; empty once it has gone (a worker that dies as we look)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


ESTABLISHED, LISTEN = "01", "0A"  # the kernel's TCP states, as /proc/net/tcp writes them


def _sockets(pid: int, port: int, state: str) -> int:
    """How many of the process's sockets on local `port` are in `state` (its sockets, by
    inode, in the kernel's TCP table)."""
    inodes = set()
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(link)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        if local_port == port and fields[3] == state and fields[9] in inodes:
            count += 1
    return count


def _all_listen(supervisor: int, port: int, workers: int = 2) -> bool:
    listening = [_sockets(worker, port, LISTEN) for worker in _workers(supervisor)]
    return listening == [1] * workers


def _wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _replaced(supervisor: int, gone: int, port: int) -> bool:
    return gone not in _workers(supervisor) and _all_listen(supervisor, port)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def served(database_url: str, engine: Engine) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "2"]
    child = subprocess.Popen(command, env=_environment(database_url), stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: child.poll() is None and _all_listen(child.pid, port))
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


def test_metrics_count_every_workers_webhooks(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    """Each scrape lands on either worker; each must read the same totals, not one worker's."""
    port, _child = served
    url = f"http://127.0.0.1:{port}"
    sent = 24
    with httpx.Client() as client:
        for _ in range(sent):
            form = {"MessageSid": new_sid(), "From": "+4520000001", "To": "+45", "Body": "HELP"}
            signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + "/twilio/sms", form)
            headers = {"X-Twilio-Signature": signature, "Connection": "close"}
            assert client.post(f"{url}/twilio/sms", data=form, headers=headers).status_code == 200
        scrapes = [
            client.get(f"{url}/metrics", headers={"Connection": "close"}).text for _ in range(8)
        ]
    # per scrape: the webhooks counted under every outcome
    totals = [
        sum(
            float(row.split()[-1])
            for row in text.splitlines()
            if row.startswith("dosewise_tracker_webhooks_total{") and '"/twilio/sms"' in row
        )
        for text in scrapes
    ]
    assert totals == [float(sent)] * len(scrapes)


def test_a_burst_of_connections_is_spread_over_the_workers(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    """uvicorn's shared socket let the first worker awake accept a whole burst; each worker
    now listens on a socket of its own and the kernel spreads the connections."""
    port, child = served
    workers = _workers(child.pid)
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        # as accepted, before any answer (one over a worker's share is then closed: below)
        _wait_until(lambda: sum(_sockets(worker, port, ESTABLISHED) for worker in workers) == 40)
        held = [_sockets(worker, port, ESTABLISHED) for worker in workers]
    finally:
        for connection in connections:
            connection.close()
    # a fair hash puts all 40 on one of the two with a chance of 2 in a million million
    assert min(held) >= 5, held


def test_keep_alive_connections_end_up_evenly_shared(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    """The kernel's hash leaves an uneven split for a keep-alive connection's whole life; a
    worker over its share answers `connection: close`, and the client's next connection is
    placed afresh, until each worker holds its half. Every request is still answered."""
    port, child = served
    workers = _workers(child.pid)
    # http.client opens a new connection for the next request after `connection: close`
    clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(40)]
    closed = 0
    try:
        for _round in range(100):
            for client in clients:
                client.request("GET", "/healthz")
            answers = [client.getresponse() for client in clients]
            health = [(answer.status, json.loads(answer.read())) for answer in answers]
            assert [(status, body["status"], body["database"]) for status, body in health] == [
                (200, "ok", "up")
            ] * len(clients)
            ending = sum(answer.getheader("connection") == "close" for answer in answers)
            if not ending:
                break
            closed += ending
        held = sorted(_sockets(worker, port, ESTABLISHED) for worker in workers)
    finally:
        for client in clients:
            client.close()
    assert held == [20, 20], (held, closed)


def test_a_worker_that_dies_is_replaced(served: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, child = served
    first, second = _workers(child.pid)
    os.kill(first, signal.SIGKILL)
    _wait_until(lambda: first not in _workers(child.pid) and _all_listen(child.pid, port))
    assert second in _workers(child.pid)
    with httpx.Client() as client:
        answers = [
            client.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"})
            for _ in range(8)
        ]
    assert [answer.status_code for answer in answers] == [200] * 8


def test_a_worker_that_keeps_dying_is_restarted_ever_later(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    # a crash loop must not spend a core starting Pythons: each early death of the same
    # worker doubles the wait before its replacement
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "2"]
    log = tmp_path / "tracker.log"
    with log.open("wb") as stderr:
        child = subprocess.Popen(command, env=_environment(database_url), stderr=stderr)
    try:
        _wait_until(lambda: child.poll() is None and _all_listen(child.pid, port))
        victim, survivor = _workers(child.pid)
        for _ in range(3):
            os.kill(victim, signal.SIGKILL)
            _wait_until(partial(_replaced, child.pid, victim, port))
            (victim,) = set(_workers(child.pid)) - {survivor}
    finally:
        child.terminate()
        child.wait(timeout=30)
    ended = [line for line in log.read_text().splitlines() if " ended (exit -9)" in line]
    assert [line.rpartition(" in ")[2] for line in ended] == ["0.0 s", "0.5 s", "1.0 s"]


@pytest.mark.parametrize(
    ("early_deaths", "delay"), [(0, 0.0), (1, 0.0), (2, 0.5), (3, 1.0), (6, 8.0), (12, 30.0)]
)
def test_restart_delay_doubles_up_to_a_limit(early_deaths: int, delay: float) -> None:
    assert restart_delay(early_deaths) == delay


def test_sigterm_stops_every_worker_and_exits_cleanly(database_url: str, engine: Engine) -> None:
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "2"]
    child = subprocess.Popen(command, env=_environment(database_url), stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: child.poll() is None and _all_listen(child.pid, port))
        workers = _workers(child.pid)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    assert not any(Path(f"/proc/{worker}").exists() for worker in workers)
    assert not _healthy(port)


@pytest.mark.parametrize("stopping", [signal.SIGTERM, signal.SIGINT])
def test_one_worker_stops_on_a_signal_with_status_0(
    database_url: str, engine: Engine, stopping: signal.Signals
) -> None:
    """As with two workers, and as `dosewise run`: uvicorn alone would re-raise SIGTERM once
    stopped, and the process would end killed by it (status 143)."""
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "1"]
    child = subprocess.Popen(command, env=_environment(database_url), stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: child.poll() is None and _healthy(port))
        child.send_signal(stopping)
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    assert not _healthy(port)


def _tracker_refused(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`dosewise tracker ARGUMENTS`, expected to stop at once: its status and output."""
    return subprocess.run(
        [sys.executable, "-m", "dosewise", "tracker", *arguments],
        env=_environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_port_in_use_is_one_clear_line(database_url: str, engine: Engine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _tracker_refused(database_url, "--port", str(port), "--workers", "2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"dosewise: 127.0.0.1:{port} is in use"]


@pytest.mark.parametrize("workers", ["0", "-2", "33", "99"])
def test_workers_must_be_from_1_to_32(database_url: str, engine: Engine, workers: str) -> None:
    done = _tracker_refused(database_url, "--workers", workers)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["dosewise: --workers must be between 1 and 32"]


@pytest.mark.parametrize("after", [0.3, 1.5, 3.0])
def test_ctrl_c_while_starting_ends_without_a_traceback(
    database_url: str, engine: Engine, after: float
) -> None:
    """A terminal's Ctrl-C goes to the whole process group: the supervisor and the workers
    still importing alike. Whenever it comes, no traceback, and nothing keeps running."""
    port = free_port()
    command = [sys.executable, "-m", "dosewise", "tracker", "--port", str(port), "--workers", "2"]
    child = subprocess.Popen(
        command,
        env=_environment(database_url),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        time.sleep(after)
        os.killpg(child.pid, signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    # 0: stopped by the supervisor; 130: interrupted while importing; -SIGINT: the signal came
    # before the interpreter had installed its own handler (Python itself, not ours, yet)
    assert child.returncode in (0, 130, -signal.SIGINT), err
    assert "Traceback" not in err, err
    assert not _healthy(port)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("99999", "99999 is not a port (1-65535)"),
        ("-1", "-1 is not a port (1-65535)"),
        ("0", "0 is not a port (1-65535)"),
        ("http", "'http' is not a port number"),
    ],
)
def test_a_port_out_of_range_is_one_clear_line(
    database_url: str, engine: Engine, given: str, said: str
) -> None:
    done = _tracker_refused(database_url, f"--port={given}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"dosewise: argument --port: {said}"]
