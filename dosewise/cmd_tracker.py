"""`dosewise tracker [--host H] [--port P] [--workers N]`: the HTTP service in the foreground.

uvicorn serves it with N worker processes (default: one per CPU, at most 4), each building its
own app, database pool (DATABASE_THREADS connections) and inbound spool (DOSEWISE_SPOOL_DIR)
through `app_from_environment`, so the webhooks use every core. Slow clients are cut off
(tracker.timeouts): headers and body must each arrive within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from anyio.to_thread import current_default_thread_limiter
from fastapi import FastAPI

from dosewise import supervisor
from dosewise.arguments import port
from dosewise.errors import UserError
from dosewise.settings import Settings
from dosewise.wiring import Database, database, load_settings
from notifier import twilio_webhooks
from tracker.app import Clock, Lifespan, TwilioWebhooks, create_app
from tracker.spool import SPOOL_SUFFIX, InboundSpool, SpoolLimits
from tracker.timeouts import BODY_TIMEOUT_S, HeaderTimeoutProtocol

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# per worker: requests that use the database at once, each in a thread on its own connection;
# more only queue for the GIL and the CPU
DATABASE_THREADS = 4
# inbound SMS transactions at once per worker (tracker.group_commit): one as a rule, whose
# batches take the SMS that arrive meanwhile (more lanes make smaller batches, which cost more
# CPU per reply); more only while it is slow. One thread stays for the other routes.
SMS_LANES = DATABASE_THREADS - 1
# how long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The
# event loop (parsing requests, sending answers) shares the GIL with the store's threads; at
# 1 ms it waits less for them, which shortens the slowest answers at the same CPU per reply
GIL_SWITCH_INTERVAL_S = 0.001
# one worker per CPU this process may run on, but at most 4 by default, so that a big host
# does not open workers x DATABASE_THREADS connections past the database's max_connections
DEFAULT_WORKERS = min(len(os.sched_getaffinity(0)), 4)
# each worker holds DATABASE_THREADS connections: 32 of them take 128, past PostgreSQL's
# default max_connections (100) already; more is a typo, not a plan
MAX_WORKERS = 32
APP_FACTORY = "dosewise.cmd_tracker:app_from_environment"
# uvicorn's options for the tracker's slow clients: the request headers must arrive within
# 10 s (HeaderTimeoutProtocol; the body has BodyTimeout), an idle keep-alive connection is
# closed after 5 s
SERVER_OPTIONS: dict[str, Any] = {"http": HeaderTimeoutProtocol, "timeout_keep_alive": 5}

log = logging.getLogger("dosewise.tracker")


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("tracker", help="run the tracker (webhooks, confirm links)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"worker processes (default: one per CPU, at most 4; here {DEFAULT_WORKERS})",
    )
    parser.set_defaults(handler=run)


def tracker_app(
    settings: Settings,
    store: Database,
    clock: Clock,
    lifespan: Lifespan | None = None,
    sms_lanes: int = 1,
    spool: InboundSpool | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """The tracker with twilio's signature check and TwiML plugged in (only here and in the
    notifier may twilio be imported)."""
    twilio = TwilioWebhooks(twilio_webhooks.signature_is_valid, twilio_webhooks.twiml_message)
    return create_app(
        settings,
        store.unit_of_work,
        clock,
        twilio=twilio,
        queries=store.adherence,
        lifespan=lifespan,
        sms_lanes=sms_lanes,
        spool=spool,
        probe=store.probe,
        body_timeout_s=body_timeout_s,
        admin_store=store.admin,
    )


def inbound_spool(settings: Settings) -> InboundSpool | None:
    """The worker's spool as the settings bound it; None when DOSEWISE_SPOOL_MAX_MB is 0."""
    if settings.spool_max_mb <= 0:
        return None
    limits = SpoolLimits(
        max_bytes=int(settings.spool_max_mb * 1024 * 1024),
        max_age=timedelta(hours=settings.spool_max_age_hours),
    )
    return InboundSpool(settings.spool_dir, limits)


def check_spool_directory(settings: Settings) -> None:
    """One clear line now if the spool directory cannot be made or written, rather than a
    worker that cannot start; and a word on spool files left by an earlier run, which the
    workers replay."""
    if settings.spool_max_mb <= 0:
        log.warning("DOSEWISE_SPOOL_MAX_MB is 0: webhooks the database cannot take get 503")
        return
    directory = Path(settings.spool_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"DOSEWISE_SPOOL_DIR {settings.spool_dir} cannot be used: {error.strerror or error}"
        ) from None
    left = [path for path in directory.glob(f"*{SPOOL_SUFFIX}") if path.stat().st_size]
    if left:
        log.info("spool: %d files left by an earlier run; the workers replay them", len(left))


def _now() -> datetime:
    return datetime.now(UTC)


def tracker_database(
    settings: Settings, *, check_now: bool = True
) -> AbstractContextManager[Database]:
    """Units of work on a pool sized to the worker's threads; without a ping per checkout
    (a round trip per request): a webhook that meets a connection a database restart broke
    is tried again on a fresh one. `check_now=False` for a worker, which must start (and
    keep webhooks in its spool) while the database is away."""
    return database(settings, pool_size=DATABASE_THREADS, pre_ping=False, check_now=check_now)


def app_from_environment() -> FastAPI:
    """uvicorn's app factory, called in each worker process: the environment's settings, a
    database pool of its own, closed when the worker stops."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings = load_settings()
    resources = ExitStack()
    # the tracker checked the database when it started; a worker (re)started while the
    # database is away must still start, and keep what comes in
    store = resources.enter_context(tracker_database(settings, check_now=False))
    spool = inbound_spool(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the threads the store's calls run in: one per pooled connection
        current_default_thread_limiter().total_tokens = DATABASE_THREADS
        # ... and the webhooks' (tracker.app), in the loop's default executor
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="dosewise-store")
        )
        with resources:
            yield

    # the outermost layer owns the clock; the use cases are given its readings
    return tracker_app(settings, store, _now, lifespan, sms_lanes=SMS_LANES, spool=spool)


def run(arguments: argparse.Namespace) -> int:
    if not 1 <= arguments.workers <= MAX_WORKERS:
        raise UserError(f"--workers must be between 1 and {MAX_WORKERS}")
    settings = load_settings()
    supervisor.check_port_is_free(arguments.host, arguments.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if settings.twilio_auth_token is None:
        log.warning("TWILIO_AUTH_TOKEN is not set: every Twilio webhook is refused with 403")
    with tracker_database(settings):
        pass  # one clear line now if the database is unreachable or not migrated
    check_spool_directory(settings)
    # the tracker logs each webhook itself (phones masked); an access log line per request
    # would cost as much again and write confirm links' tokens into the log
    options: dict[str, Any] = {"log_level": "info", "access_log": False, **SERVER_OPTIONS}
    if arguments.workers > 1 and supervisor.BALANCES_CONNECTIONS:
        serving = supervisor.Serving(APP_FACTORY, arguments.host, arguments.port, options)
        return supervisor.serve(serving, arguments.workers)
    if arguments.workers > 1:  # no SO_REUSEPORT here: uvicorn's own workers share a socket
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            workers=arguments.workers,
            host=arguments.host,
            port=arguments.port,
            **options,
        )
        return 0
    config = uvicorn.Config(
        APP_FACTORY, factory=True, host=arguments.host, port=arguments.port, **options
    )
    supervisor.SignalledServer(config).run()
    return 0
