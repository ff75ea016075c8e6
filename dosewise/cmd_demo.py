"""`dosewise demo`: a simulated week of the whole loop on a fresh SQLite file, no credentials.

Three sample people are enrolled; the real scheduler jobs, outbox and notifier (console
channel) and the real tracker app (uvicorn on a loopback port, signed webhooks) run against
one database while dosewise.demo's simulated clock moves through the days. At the end the
adherence report is printed and written as a self-contained HTML file.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import uvicorn

from dosewise.arguments import iso_date
from dosewise.cmd_report import adherence_queries
from dosewise.cmd_tracker import tracker_app
from dosewise.demo import (
    Delivered,
    DemoPerson,
    Progress,
    SimulatedClock,
    Transcript,
    Week,
    chosen_answer,
    page_text,
    twiml_text,
)
from dosewise.errors import UserError
from dosewise.samples import sample_people
from dosewise.settings import Settings
from dosewise.wiring import database, store_errors_as_user_errors
from i18n import translator
from reports.render import render_html, render_table
from scheduler.service import SchedulerService
from services.enrolment import enrol_person
from services.scheduling import SchedulerConfig
from store.coordination import coordinator_for
from store.migrate import upgrade

DEFAULT_DATABASE = "dosewise-demo.db"
DEFAULT_HTML = "dosewise-demo-report.html"
# the demo's own Twilio auth token: it signs the webhooks it sends to its own tracker
DEMO_AUTH_TOKEN = "dosewise-demo-auth-token"
MAX_DAYS = 31
LEGEND = (
    "The week as the phones and inboxes saw it, in each person's local time:\n"
    "  <  an SMS to the person    >  the person's SMS reply\n"
    "  @< an e-mail (its subject) or the page a link opened    @> the person opens a link"
)


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "demo", help="a simulated week: enrol, plan, send, reply, report (SQLite, no credentials)"
    )
    parser.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    parser.add_argument(
        "--start", type=iso_date, help="the first simulated day, YYYY-MM-DD (default today)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the sample people's dice (default 1)")
    parser.add_argument(
        "--database",
        help=f"a new SQLite file to run on (default {DEFAULT_DATABASE}, replaced on each run)",
    )
    parser.add_argument("--html", default=DEFAULT_HTML, help="where to write the HTML report")
    parser.add_argument("--quiet", action="store_true", help="no message transcript")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    if not 1 <= arguments.days <= MAX_DAYS:
        raise UserError(f"--days must be between 1 and {MAX_DAYS}")
    started = time.monotonic()
    # both files are checked before anything is replaced or simulated
    html_path = _writable_html(arguments.html)
    if html_path.resolve() == Path(arguments.database or DEFAULT_DATABASE).resolve():
        raise UserError(f"--html {html_path} is the demo's database; name another file")
    database_path = _fresh_database(arguments.database)
    first_day = arguments.start or datetime.now(UTC).astimezone().date()
    url = f"sqlite:///{database_path.resolve()}"
    with store_errors_as_user_errors():
        upgrade(url)
    with _listening_socket() as listener:
        port = listener.getsockname()[1]
        settings = Settings(
            database_url=url,
            public_url=f"http://127.0.0.1:{port}",
            twilio_auth_token=DEMO_AUTH_TOKEN,
        )
        end, week = _simulate(settings, listener, first_day, arguments)
    last_day = first_day + timedelta(days=arguments.days - 1)
    with adherence_queries(settings) as queries:
        report = queries.report(first_day, last_day, end, None)
    out = sys.stdout
    out.write(f"\nWhat the phones saw, {first_day} to {last_day}\n")
    out.write(_tally_table(week))
    out.write(_late_answers(week))
    out.write(f"\nThe adherence report (dosewise report adherence --from {first_day}")
    out.write(f" --to {last_day})\n")
    out.write(render_table(report))
    try:
        html_path.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        raise UserError(f"--html {html_path}: cannot write it ({error.strerror})") from None
    seconds = time.monotonic() - started
    out.write(
        f"\nHTML report: {html_path.resolve()}\n"
        f"Database:    {database_path.resolve()} (explore it with "
        f"DOSEWISE_DATABASE_URL={url} dosewise report adherence --from {first_day} "
        f"--to {last_day})\n"
        + translator(settings.language).ngettext(
            "{n} simulated day in {seconds} s",
            "{n} simulated days in {seconds} s",
            arguments.days,
            seconds=f"{seconds:.1f}",
        )
        + "\n"
    )
    return 0


def _writable_html(given: str) -> Path:
    """Where the HTML report goes: a file (new or replaced) in a folder that exists."""
    path = Path(given)
    if path.is_dir():
        raise UserError(f"--html {path} is a directory; name a file for the HTML report")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"--html {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"--html {path}: not writable")
    if path.exists() and not _is_html(path):
        raise UserError(f"--html {path} exists and is not an HTML page; it is left alone")
    return path


def _is_html(path: Path) -> bool:
    """Whether a file looks like an HTML page (an earlier report, say), and so may be
    replaced; anything else (a database, a document) is not ours to overwrite."""
    try:
        with path.open("rb") as file:
            start = file.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    except OSError:
        return False
    return start == b"" or start.startswith((b"<!doctype html", b"<html"))


def _fresh_database(given: str | None) -> Path:
    """The default demo file is replaced; a file the user names must not exist yet."""
    path = Path(given or DEFAULT_DATABASE)
    if path.exists():
        if given is not None:
            raise UserError(f"{path} already exists; the demo needs a new file")
        path.unlink()
    if not path.parent.is_dir():
        raise UserError(f"{path.parent} is not a directory")
    return path


def _simulate(
    settings: Settings, listener: socket.socket, first_day: date, arguments: argparse.Namespace
) -> tuple[datetime, Week]:
    # imported here: the notifier's modules load twilio, which only this path needs
    from notifier.console import ConsoleChannel, ConsoleEmailGateway, ConsoleSmsGateway
    from notifier.worker import Worker, WorkerConfig

    people = [DemoPerson(sample) for sample in sample_people()]
    start = min(datetime.combine(first_day, datetime.min.time(), p.zone) for p in people)
    clock = SimulatedClock(start.astimezone(UTC) - timedelta(minutes=1))
    # the console channel prints its own phone view; the week's transcript shows it instead
    channel = ConsoleChannel(stream=io.StringIO(), now=clock.now)
    with database(settings) as store:
        unit_of_work = store.unit_of_work
        for person in people:
            enrol_person(unit_of_work(), person.sample.regimen, clock.now())
        scheduler = SchedulerService(
            unit_of_work,
            coordinator_for(settings.database_url),
            SchedulerConfig(public_url=settings.public_url),
            clock=clock.now,
        )
        worker = Worker(
            unit_of_work,
            ConsoleSmsGateway(channel),
            ConsoleEmailGateway(channel),
            WorkerConfig(worker_id="demo", sender="console"),
        )
        app = tracker_app(settings, store, clock.now)
        progress = Progress(arguments.days)
        transcript = Transcript(io.StringIO() if arguments.quiet else sys.stdout, progress)
        transcript.heading(LEGEND)
        try:
            with _serving(app, listener):
                tracker = _HttpTracker(settings)
                week = Week(
                    people,
                    clock,
                    scheduler,
                    worker,
                    lambda: [Delivered(m.to, m.body) for m in channel.sent()],
                    tracker,
                    transcript,
                    random.Random(arguments.seed),
                )
                end = asyncio.run(_run_week(week, tracker, first_day, arguments.days, progress))
        finally:
            progress.finish()
            scheduler.close()
    return end, week


async def _run_week(
    week: Week, tracker: _HttpTracker, first_day: date, days: int, progress: Progress
) -> datetime:
    async with tracker:
        return await week.run(first_day, days, progress)


class _HttpTracker:
    """The tracker as Twilio and a browser reach it: signed form posts and plain GETs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(base_url=settings.public_url, timeout=10)
        self._sids = 0
        self._token = settings.twilio_auth_token or ""

    async def __aenter__(self) -> _HttpTracker:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._client.aclose()

    async def sms(self, from_number: str, body: str) -> str | None:
        from notifier.twilio_webhooks import compute_signature

        self._sids += 1
        form = {
            "MessageSid": f"SMdemo{self._sids:026d}",
            "AccountSid": "AC" + "0" * 32,
            "From": from_number,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        url = f"{self._settings.public_url}/twilio/sms"
        signature = compute_signature(self._token, url, form)
        response = await self._client.post(
            "/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
        )
        if response.status_code != 200:
            raise RuntimeError(f"the tracker answered {response.status_code} to an SMS reply")
        return twiml_text(response.text)

    async def open_link(self, url: str) -> tuple[int, str]:
        """Open the link, then press the page's pre-selected button, as a reader does."""
        response = await self._client.get(url)
        answer = chosen_answer(response.text) if response.status_code == 200 else None
        if answer is not None:
            address, action = answer
            response = await self._client.post(urljoin(url, address), data={"action": action})
        return response.status_code, page_text(response.text)


@contextmanager
def _listening_socket() -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        yield listener
    finally:
        listener.close()


@contextmanager
def _serving(app: Any, listener: socket.socket) -> Iterator[None]:
    """The tracker app under uvicorn in a thread, on the given socket, until the block ends."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="tracker", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError("the demo's tracker did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _tally_table(week: Week) -> str:
    columns = ("reminders", "nudges", "lozenges", "replies", "taken", "skipped", "lozenges_taken")
    titles = "".join(f" {name.replace('_', ' ')}" for name in columns)
    header = f"{'person':<8}{titles}"
    lines = [header]
    for person in week.people:
        tally = week.tally[person.name]
        cells = "".join(f" {getattr(tally, name):>{len(name)}}" for name in columns)
        lines.append(f"{person.name:<8}{cells}")
    return "\n".join(lines) + "\n"


def _late_answers(week: Week) -> str:
    """The TAKENs that came after their reminder's window had closed, as the tracker answered
    them: recorded as taken late, which the report counts late rather than missed."""
    if not week.late_answers:
        return ""
    lines = ["", "Taken after the reminder's window closed (the report counts it late, not missed)"]
    for at, person, answer in week.late_answers:
        lines.append(f"  {at.astimezone(person.zone):%a %d %H:%M}  {person.name:<6} {answer}")
    return "\n".join(lines) + "\n"
