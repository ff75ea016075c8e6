"""`dosewise notifier`: send due outgoing messages until SIGTERM or SIGINT.

Its leases are short and renewed while it works (notifier.worker): when a notifier dies,
another (or its restart) sends its unsent claims within about DEFAULT_LEASE_S and a sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dosewise.errors import UserError
from dosewise.settings import Settings
from dosewise.wiring import (
    Database,
    UnitOfWorkFactory,
    database,
    email_gateway,
    load_settings,
    sms_gateway,
    sms_rate,
    sms_sender,
)
from services.health import DatabaseProbe

# how long a claim outlives a notifier that stopped renewing it
DEFAULT_LEASE_S = 5.0
# how often each notifier looks for claims whose lease ran out
SWEEP_EVERY_S = 1.0


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("notifier", help="run the notifier: send due SMS and e-mail")
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_S,
        help=(
            "how long a claimed message stays this process's after its last renewal (every "
            f"third of it) before another may settle it (default {DEFAULT_LEASE_S:g})"
        ),
    )
    parser.add_argument("--batch-size", type=int, default=200, help="messages per claim")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="provider calls in flight at once"
    )
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    if arguments.lease_seconds <= 0 or arguments.batch_size < 1 or arguments.concurrency < 1:
        raise UserError("--lease-seconds, --batch-size and --concurrency must be positive")
    configure_logging()
    settings = load_settings()
    with database(settings) as store:
        _run_loop(lambda: _serve(settings, store, arguments))
    return 0


def configure_logging() -> None:
    """One line per retry, permanent failure, fallback and opt-out (phones masked), with the
    time and the logger, as the scheduler logs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the twilio library's own request logs (a line per request, and its headers), and
    # alembic's schema check at start-up
    for noisy in ("twilio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run_loop(main: Callable[[], Any]) -> None:
    # Thousands of objects live per batch in flight (tasks, rows, responses): at the default
    # threshold of 700 allocations the collector would walk them over and over (about a sixth
    # of the notifier's CPU). Freezing what start-up loaded keeps it out of every collection.
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    # uvloop when installed (uvicorn[standard] brings it): cheaper per request in flight
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def _serve(settings: Settings, store: Database, arguments: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    options = NotifierOptions(
        lease=timedelta(seconds=arguments.lease_seconds),
        batch_size=arguments.batch_size,
        concurrency=arguments.concurrency,
    )
    await notify_until(stop, settings, store.unit_of_work, options, probe=store.probe)


@dataclass(frozen=True)
class NotifierOptions:
    lease: timedelta = timedelta(seconds=DEFAULT_LEASE_S)
    batch_size: int = 200
    concurrency: int = 100


async def notify_until(
    stop: asyncio.Event,
    settings: Settings,
    unit_of_work: UnitOfWorkFactory,
    options: NotifierOptions,
    worker_id: str | None = None,
    probe: DatabaseProbe | None = None,
) -> None:
    """Send due messages until `stop` is set (`dosewise notifier`, and `dosewise run`).
    `probe`: the database write check asked while the database is away."""
    from notifier.worker import Worker, WorkerConfig

    sms = sms_gateway(settings, in_flight=options.concurrency)
    email = email_gateway(settings)
    config = WorkerConfig(
        worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
        status_callback=f"{settings.public_url}/twilio/status",
        public_url=settings.public_url,
        batch_size=options.batch_size,
        concurrency=options.concurrency,
        lease=options.lease,
        # a crashed notifier's messages are looked at soon after their lease runs out
        sweep_every_s=min(SWEEP_EVERY_S, options.lease.total_seconds() / 2),
        sms_rate=sms_rate(settings),
        sender=sms_sender(settings),
    )
    sms_via = "Twilio" if settings.twilio_configured else "the console"
    email_via = "SMTP" if settings.smtp_configured else "the console"
    print(
        f"dosewise notifier {config.worker_id}: SMS via {sms_via}, e-mail via {email_via}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await Worker(unit_of_work, sms, email, config, probe=probe).run(_now, stop)
    finally:
        aclose = getattr(sms, "aclose", None)
        if aclose is not None:
            await aclose()


def _now() -> datetime:
    # the only clock the notifier reads; everything below is given this instant
    return datetime.now(UTC)
