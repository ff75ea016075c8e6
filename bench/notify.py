"""`dosewise notifier` processes on PostgreSQL against a fast local Twilio-compatible server.

1. throughput: 20,000 messages due at once, rate limit off, until all are recorded sent;
2. lateness: messages falling due at 500/s (offered load), from due time to the fake Twilio
   accepting them, p50/p99;
3. peak memory (max RSS) of each notifier process, and CPU time per message of the notifiers
   and of the fake Twilio (less noisy than msg/s on a shared machine).

What runs is the real command: `--processes` (default 2) `dosewise notifier` subprocesses, as
production would run them, configured through the environment like any deployment. The
database is its own (created, migrated, dropped after); the fake Twilio server runs in its own
process (`python -m tests.fakes.twilio_server --no-record --arrivals FILE`) and notes when it
accepted each message. The load average is printed with the figures: they mean little on a
machine busy with other work.

    .venv/bin/python bench/notify.py [--count 20000] [--rate 500] [--late-count 5000]
        [--processes 2] [--batch-size 500] [--concurrency 200] [--twilio-latency-ms 0]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.engine import create_engine
from store.migrate import upgrade
from store.models import OutgoingMessageRow, PersonRow, ReminderRow
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
BODY = "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Keep dairy away until 14:30. Reply TAKEN"
DOSEWISE = Path(sys.executable).parent / "dosewise"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DOSES_A_DAY = 4
PHONES = itertools.count()  # people's numbers, unique over the run
WINDOW = timedelta(hours=2)  # a dose's window: the message's not_after
LATENESS_LEAD = timedelta(seconds=4)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    url = make_url(server_url)
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"dosewise_bench_notify_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        database = url.set(database=name).render_as_string(hide_password=False)
        upgrade(database)
        yield database
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


class FakeTwilio:
    """The fake Twilio in its own process; `arrivals()` after `stop()`."""

    def __init__(self, workdir: Path, latency_ms: float) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.arrivals_file = workdir / "arrivals.tsv"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.twilio_server",
                "--port",
                str(port),
                "--no-record",
                "--arrivals",
                str(self.arrivals_file),
                "--latency-ms",
                str(latency_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "fake Twilio listening on ..."

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def arrivals(self) -> tuple[dict[str, float], int]:
        """(first acceptance time per message tag, how many acceptances in all). Messages are
        told apart by the tag that ends their body: the notifier rewrites the iron note's
        "keep dairy away until" time as it sends, so the rest of a body may change."""
        accepted: dict[str, float] = {}
        total = 0
        with self.arrivals_file.open(encoding="utf-8") as lines:
            for line in lines:
                at, _, body = line.rstrip("\n").partition("\t")
                accepted.setdefault(body.rsplit(" ", 1)[-1], float(at))
                total += 1
        return accepted, total


class Notifiers:
    """`count` `dosewise notifier` processes, each logging to its own file."""

    def __init__(
        self, workdir: Path, database: str, twilio_url: str, count: int, options: Sequence[str]
    ) -> None:
        env = {
            **os.environ,
            "DOSEWISE_DATABASE_URL": database,
            "DOSEWISE_PUBLIC_URL": "http://127.0.0.1:8000",
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "TWILIO_API_BASE_URL": twilio_url,
        }
        env.pop("DOSEWISE_SMS_RATE", None)  # rate limit off
        env.pop("SMTP_HOST", None)
        self.options = list(options)
        self.logs = [workdir / f"notifier-{index}.log" for index in range(count)]
        self.processes = [
            subprocess.Popen(
                [str(DOSEWISE), "notifier", *options],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),
            )
            for log in self.logs
        ]
        for process, log in zip(self.processes, self.logs, strict=True):
            wait_for(lambda p=process, f=log: started(p, f), 30, f"notifier start ({log})")

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(process.pid) for process in self.processes]

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(30) for process in self.processes]


def started(process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise SystemExit(f"a notifier exited with {process.returncode}:\n{log.read_text()}")
    return "dosewise notifier" in log.read_text(errors="replace")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def backend_cpu_seconds(engine: sqlalchemy.Engine, before: dict[int, float]) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving this database now (not the one asking),
    from /proc (the server is on this machine); a backend gone since `before` keeps its last
    figure, so the notifiers' database work is counted even when a pool drops a connection."""
    with engine.connect() as connection:
        pids = connection.scalars(
            sqlalchemy.text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    seconds = dict(before)
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            seconds[pid] = cpu_seconds(pid)
    return seconds


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout_s} s waiting for {what}")


def enqueue(database: str, due: Sequence[datetime], tag: str) -> None:
    """Messages as the scheduler queues them: each the 'initial' SMS of its own reminder
    (so recording also moves reminders to 'sent' and fires the report triggers), four
    reminders a day per person, every message to its own number with its own text."""
    engine = create_engine(database)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        people = (
            connection.execute(
                insert(PersonRow).returning(PersonRow.id, sort_by_parameter_order=True),
                [
                    {
                        "name": f"Bench {tag}{number}",
                        "phone": f"+4530{next(PHONES):06d}",
                        "email": None,
                        "channel": "sms",
                        "timezone": "UTC",
                        "active": True,
                        "opted_out": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for number in range(len(due) // DOSES_A_DAY + 1)
                ],
            )
            .scalars()
            .all()
        )
        for start in range(0, len(due), 5000):
            chunk = list(enumerate(due))[start : start + 5000]
            reminders = (
                connection.execute(
                    insert(ReminderRow).returning(ReminderRow.id, sort_by_parameter_order=True),
                    [
                        {
                            "person_id": people[index // DOSES_A_DAY],
                            "slot_key": f"{at.date().isoformat()}#bench-{tag}{index}",
                            "kind": "dose",
                            "items": [{"supplement": "iron", "dose": "18 mg"}],
                            "due_at": at,
                            "window_closes_at": at + WINDOW,
                            "status": "queued",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for index, at in chunk
                    ],
                )
                .scalars()
                .all()
            )
            connection.execute(
                insert(OutgoingMessageRow),
                [
                    {
                        "reminder_id": reminder,
                        "person_id": people[index // DOSES_A_DAY],
                        "channel": "sms",
                        "recipient": f"+452{index % 10**7:07d}",
                        "body": f"{BODY} {tag}{index}",
                        "purpose": "initial",
                        "status": "due",
                        "due_at": at,
                        "not_after": at + WINDOW,
                        "next_attempt_at": at,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for (index, at), reminder in zip(chunk, reminders, strict=True)
                ],
            )
    engine.dispose()


def sent_count(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(select(func.count()).where(OutgoingMessageRow.status == "sent")) or 0
        )


def reminders_sent(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).where(ReminderRow.status == "sent")) or 0)


def wait_until_sent(
    engine: sqlalchemy.Engine, expected: int, timeout_s: float
) -> list[tuple[float, int]]:
    """Poll until `expected` messages are sent; (seconds, sent) along the way."""
    started = time.monotonic()
    progress: list[tuple[float, int]] = []
    while (sent := sent_count(engine)) < expected:
        progress.append((time.monotonic() - started, sent))
        if progress[-1][0] > timeout_s:
            raise SystemExit(f"only {sent} of {expected} sent after {timeout_s} s")
        time.sleep(0.05)
    return progress


def timeline(progress: Sequence[tuple[float, int]], step_s: float = 0.5) -> str:
    """Messages sent in each `step_s` of the run: shows stalls a mean would hide."""
    counts, mark, last = [], step_s, 0
    for at, sent in progress:
        if at >= mark:
            counts.append(sent - last)
            last, mark = sent, mark + step_s
    return " ".join(str(count) for count in counts)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--late-count", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=2, help="dosewise notifier processes")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--twilio-latency-ms",
        type=float,
        default=0.0,
        help="the fake Twilio answers this late (the real one takes 100-300 ms)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DOSEWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    return parser.parse_args(argv)


def analyze(engine: sqlalchemy.Engine) -> None:
    """Table statistics, as autovacuum keeps them in production: tables filled a moment ago
    still have the statistics of empty ones, and PostgreSQL would plan for those."""
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("ANALYZE"))
        connection.commit()


def measure_throughput(
    args: argparse.Namespace,
    database: str,
    engine: sqlalchemy.Engine,
    notifiers: Notifiers,
    twilio: FakeTwilio,
) -> None:
    enqueue(database, [datetime.now(UTC) - timedelta(seconds=1)] * args.count, "t")
    analyze(engine)
    started_at = time.perf_counter()  # the messages are committed and due: the clock runs
    cpu_before, twilio_cpu_before = notifiers.cpu_seconds(), cpu_seconds(twilio.process.pid)
    backends_before = backend_cpu_seconds(engine, {})
    progress = wait_until_sent(engine, args.count, timeout_s=300)
    elapsed = time.perf_counter() - started_at
    notifier_cpu = notifiers.cpu_seconds() - cpu_before
    twilio_cpu = cpu_seconds(twilio.process.pid) - twilio_cpu_before
    backends_after = backend_cpu_seconds(engine, backends_before)
    database_cpu = sum(backends_after.values()) - sum(backends_before.values())
    print(
        f"throughput: {args.count} messages in {elapsed:.2f} s = "
        f"{args.count / elapsed:,.0f} msg/s (rate limit off; {args.processes} x "
        f"`dosewise notifier {' '.join(notifiers.options)}`; Twilio answers after "
        f"{args.twilio_latency_ms:.0f} ms); {load()}"
    )
    print(f"sent per 0.5 s: {timeline(progress)}")
    per_message = [cpu / args.count * 1e6 for cpu in (notifier_cpu, database_cpu, twilio_cpu)]
    print(
        f"CPU per message: notifiers {per_message[0]:.0f} us, their PostgreSQL backends "
        f"{per_message[1]:.0f} us, fake Twilio {per_message[2]:.0f} us; all three on "
        f"{os.cpu_count()} otherwise idle cores: at most "
        f"{(os.cpu_count() or 1) * 1e6 / sum(per_message):,.0f} msg/s"
    )


def measure_lateness(
    args: argparse.Namespace, database: str, engine: sqlalchemy.Engine
) -> list[datetime]:
    """Offered load: one message falling due every 1/rate s, from a few seconds from now; the
    due times, to compare with when the fake Twilio accepted each one."""
    # far enough ahead that the queue is filled (and analysed) before the first falls due:
    # a message committed after its due time would count the bench's lateness, not ours
    first = datetime.now(UTC) + LATENESS_LEAD
    due = [first + timedelta(seconds=i / args.rate) for i in range(args.late_count)]
    enqueue(database, due, "l")
    analyze(engine)
    if datetime.now(UTC) > first:
        raise SystemExit(f"filling the queue took longer than {LATENESS_LEAD}: raise it")
    wait_until_sent(engine, args.count + args.late_count, timeout_s=300)
    return due


def report_lateness(
    args: argparse.Namespace, due: Sequence[datetime], accepted: dict[str, float]
) -> None:
    lateness = sorted(accepted[f"l{i}"] - at.timestamp() for i, at in enumerate(due))
    p50 = statistics.median(lateness)
    p99 = lateness[int(len(lateness) * 0.99) - 1]
    print(
        f"lateness at {args.rate:.0f} msg/s offered ({args.late_count} messages), due -> "
        f"Twilio accepted: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {lateness[-1] * 1000:.0f} ms; {load()}"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    options = ["--batch-size", str(args.batch_size), "--concurrency", str(args.concurrency)]
    print(f"before: {load()}")
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-notify-")))
        database = stack.enter_context(scratch_database(args.postgres))
        engine = create_engine(database)
        stack.callback(engine.dispose)
        twilio = FakeTwilio(workdir, args.twilio_latency_ms)
        stack.callback(twilio.stop)
        notifiers = Notifiers(workdir, database, twilio.url, args.processes, options)
        stack.callback(notifiers.stop)

        measure_throughput(args, database, engine, notifiers, twilio)
        due = measure_lateness(args, database, engine)
        peaks = notifiers.peak_rss_mb()
        codes = notifiers.stop()
        twilio.stop()
        accepted, acceptances = twilio.arrivals()
        report_lateness(args, due, accepted)
        print(
            "peak memory (max RSS per notifier process): "
            + ", ".join(f"{peak:.0f} MB" for peak in peaks)
        )
        expected = args.count + args.late_count
        reminders = reminders_sent(engine)
        if (
            codes != [0] * args.processes
            or acceptances != expected
            or len(accepted) != expected
            or reminders != expected
        ):
            raise SystemExit(
                f"notifier exit codes {codes}; Twilio accepted {acceptances} messages, "
                f"{len(accepted)} distinct, of {expected}; {reminders} reminders 'sent'"
            )


if __name__ == "__main__":
    main()
