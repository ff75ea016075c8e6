"""The fault suite's rig: dosewise's real services as processes on loopback, a fake Twilio, a
steady flow of signed replies into the tracker and of due messages out of the notifier, and
the readings the figures are made of (what was lost, sent twice, what each log says).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from notifier.twilio_webhooks import compute_signature
from store.engine import session_factory
from store.models import InboundReplyRow, OutgoingMessageRow, PersonRow
from store.unit_of_work import SqlUnitOfWork
from tests.conftest import free_port
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioServer
from tests.seeding import enrol

DOSEWISE = str(Path(sys.executable).with_name("dosewise"))
SENDER = "+15005550006"
# a log line of ours starts with its time; anything else in a log is a traceback's or a
# message's continuation (uvicorn's own lines and the notifier's banner excepted)
_STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
_OWN_UNSTAMPED = ("INFO:", "WARNING:", "ERROR:", "dosewise notifier ")
# the lines that report a failed attempt (services.backoff, the webhooks, the health check,
# the scheduler's leadership)
_FAILURE = re.compile(
    r" failed: | keeping it in the spool$|health check: the database is down|leader lock"
)


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(15)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(15)

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@dataclass
class LogReading:
    failures: int  # one-line reports of a failed attempt
    continuations: int  # lines that are no line of their own (tracebacks)
    total: int

    @property
    def lines_per_failure(self) -> float | None:
        if not self.failures:
            return None
        return (self.failures + self.continuations) / self.failures


def read_logs(services: list[Service], since: datetime | None = None) -> LogReading:
    failures = continuations = total = 0
    for service in services:
        counting = since is None
        for line in service.lines():
            stamped = _STAMPED.match(line)
            if stamped and not counting and since is not None:
                # the logs' times are local: read as the machine's local time
                local = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
                counting = datetime.fromtimestamp(local + 1, UTC) >= since
            if not counting:
                continue
            total += 1
            if not stamped:
                continuations += not line.startswith(_OWN_UNSTAMPED)
            elif _FAILURE.search(line):
                failures += 1
    return LogReading(failures, continuations, total)


@dataclass
class Reply:
    sid: str
    sender: str
    body: str
    sent_at: float  # time.time() when posted
    status: int | None = None


@dataclass
class Rig:
    """The services of one fault test, all on one database and one fake Twilio."""

    url: str
    engine: Engine
    root: Path
    twilio: FakeTwilioServer
    port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DOSEWISE_DATABASE_URL": self.url,
            "DOSEWISE_PUBLIC_URL": self.base,
            "DOSEWISE_SPOOL_DIR": str(self.root / "spool"),
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": SENDER,
            "TWILIO_API_BASE_URL": self.twilio.base_url,
            "PYTHONUNBUFFERED": "1",
        }
        for unwanted in ("DOSEWISE_SMS_RATE", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(unwanted, None)
        return env

    def start(self, name: str, *arguments: str) -> Service:
        log = self.root / f"{name}-{len(self.services)}.log"
        process = subprocess.Popen(
            [DOSEWISE, *arguments],
            env=self.environment(),
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            cwd=self.root,
        )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def start_tracker(self, workers: int = 2) -> Service:
        tracker = self.start(
            "tracker", "tracker", "--port", str(self.port), "--workers", str(workers)
        )
        wait_until(
            lambda: tracker.log.read_text().count("Application startup complete") == workers,
            60,
            "every tracker worker started",
        )
        wait_until(lambda: self.health() == 200, 60, "the tracker answering /healthz")
        return tracker

    def start_notifier(self, *arguments: str) -> Service:
        notifier = self.start("notifier", "notifier", *arguments)
        wait_until(lambda: "dosewise notifier" in notifier.log.read_text(), 60, "notifier up")
        return notifier

    def health(self, path: str = "/healthz") -> int | None:
        try:
            return httpx.get(f"{self.base}{path}", timeout=2).status_code
        except httpx.HTTPError:
            return None

    def stop_all(self) -> None:
        for service in self.services:
            if service.process.poll() is None:
                service.stop()

    # -- people and messages --------------------------------------------------------------

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(session_factory(self.engine))

    def enrol(self, phone: str) -> int:
        return enrol(self.uow, phone, datetime.now(UTC) - timedelta(days=1))

    def due_messages(
        self,
        person: int,
        phone: str,
        start: datetime,
        every: timedelta,
        count: int,
        tag: str,
        window: timedelta = timedelta(hours=1),
        *,
        numbers_of_their_own: bool = False,
    ) -> None:
        """`count` SMS to `phone`, one due every `every` from `start`, each its own text,
        each to be sent within `window` of its due time; `numbers_of_their_own`: each to a
        number of its own instead (as a crowd of people's reminders go)."""
        rows = [
            {
                "person_id": person,
                "channel": "sms",
                "recipient": f"{phone[:-4]}{index:04d}" if numbers_of_their_own else phone,
                "body": f"dosewise {tag} #{index}",
                "purpose": "initial",
                "status": "due",
                "due_at": start + every * index,
                "next_attempt_at": start + every * index,
                "not_after": start + every * index + window,
                "attempts": 0,
                "created_at": start,
                "updated_at": start,
            }
            for index in range(count)
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(OutgoingMessageRow), rows)

    # -- replies --------------------------------------------------------------------------

    def reply(self, sender: str, body: str, client: httpx.Client | None = None) -> Reply:
        sid = f"SM{next(self._sids):032x}"
        form = {"MessageSid": sid, "From": sender, "To": SENDER, "Body": body}
        url = f"{self.base}/twilio/sms"
        signature = compute_signature(DEFAULT_AUTH_TOKEN, url, form)
        reply = Reply(sid, sender, body, time.time())
        self.replies.append(reply)
        try:
            answer = (client or httpx).post(
                url, data=form, headers={"X-Twilio-Signature": signature}, timeout=20
            )
            reply.status = answer.status_code
        except httpx.HTTPError:
            reply.status = None
        return reply

    @contextlib.contextmanager
    def steady_replies(self, senders: list[str], per_second: float) -> Iterator[None]:
        """Replies from `senders` in turn at `per_second`, in a thread, while inside."""
        stop = threading.Event()

        def flow() -> None:
            with httpx.Client() as client:
                for sender in itertools.cycle(senders):
                    if stop.wait(1 / per_second):
                        return
                    self.reply(sender, "TAKEN", client)

        thread = threading.Thread(target=flow, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(30)

    # -- readings -------------------------------------------------------------------------

    def stored_sids(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.scalars(select(InboundReplyRow.provider_id)))

    def replies_lost(self) -> int:
        """Answered 200 but not in the database."""
        stored = self.stored_sids()
        return sum(1 for r in self.replies if r.status == 200 and r.sid not in stored)

    def unanswered(self) -> list[Reply]:
        return [reply for reply in self.replies if reply.status != 200]

    def duplicates_sent(self) -> int:
        per_body = collections.Counter(message.body for message in self.twilio.messages)
        return sum(count - 1 for count in per_body.values())

    def arrivals_to(self, phone: str) -> list[float]:
        """When the fake Twilio accepted each message to `phone` (time.time())."""
        bodies = {m.body for m in self.twilio.messages if m.to == phone}
        return [at for at, body in self.twilio.arrivals or [] if body in bodies]

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(OutgoingMessageRow.status, func.count()).group_by(OutgoingMessageRow.status)
            ).all()
        return {status: int(count) for status, count in rows}

    def opted_out(self, person: int) -> bool:
        with self.engine.connect() as connection:
            return bool(
                connection.scalar(select(PersonRow.opted_out).where(PersonRow.id == person))
            )

    def tracker_workers(self, tracker: Service) -> list[int]:
        """The worker processes of a `dosewise tracker --workers N` (not multiprocessing's
        resource tracker)."""
        pid = tracker.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        workers = []
        for child in children:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command:
                workers.append(int(child))
        return workers


def wait_until(condition: object, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if condition():  # type: ignore[operator]
                return time.monotonic() - started
        except Exception:  # the database may be away while we look: look again
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")
