"""`dosewise run [--host H] [--port P]`: scheduler, notifier and tracker in one process.

For a small deployment on the embedded default (one SQLite file): the schema is brought up
to date first, then the scheduler and the notifier run in threads of their own and the
tracker (uvicorn) in the main thread, which owns SIGINT and SIGTERM. On Ctrl-C the tracker
stops taking requests, the notifier finishes and records the batch under way (nothing is
left 'sending'), the scheduler finishes its job, and the process exits 0. If the scheduler
or the notifier dies, the whole process stops with status 1 rather than run half-deaf.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn

from dosewise import supervisor
from dosewise.arguments import port
from dosewise.cmd_notifier import NotifierOptions, notify_until
from dosewise.cmd_scheduler import scheduler_service
from dosewise.cmd_tracker import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SERVER_OPTIONS,
    check_spool_directory,
    inbound_spool,
    tracker_app,
)
from dosewise.settings import Settings
from dosewise.wiring import (
    UnitOfWorkFactory,
    database,
    load_settings,
    store_errors_as_user_errors,
)
from services.health import DatabaseProbe
from store.engine import url_for_humans
from store.migrate import upgrade

log = logging.getLogger("dosewise.run")


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "run", help="scheduler, notifier and tracker in one process (small deployments)"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.set_defaults(handler=run)


def _now() -> datetime:
    # the outermost loop reads the clock; everything below is given its readings
    return datetime.now(UTC)


def run(arguments: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = load_settings()
    # before the scheduler and the notifier start: a busy port is one line, and nothing ran
    supervisor.check_port_is_free(arguments.host, arguments.port)
    with store_errors_as_user_errors():
        revision = upgrade(settings.database_url)
    log.info("database %s at schema revision %s", url_for_humans(settings.database_url), revision)
    check_spool_directory(settings)
    with database(settings) as store:
        services = _Services(settings, store.unit_of_work, store.probe)
        server = supervisor.SignalledServer(
            uvicorn.Config(
                tracker_app(settings, store, _now, spool=inbound_spool(settings)),
                host=arguments.host,
                port=arguments.port,
                log_level="info",
                # the tracker logs each webhook itself; an access line would hold confirm tokens
                access_log=False,
                **SERVER_OPTIONS,
            )
        )
        services.on_failure = lambda: setattr(server, "should_exit", True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, server.handle_exit)
        services.start()
        try:
            server.run()
        finally:
            services.stop()
    return 1 if services.failed else 0


class _Services:
    """The scheduler and the notifier, each in a thread, stopped together."""

    def __init__(
        self, settings: Settings, unit_of_work: UnitOfWorkFactory, probe: DatabaseProbe
    ) -> None:
        self._settings = settings
        self._unit_of_work = unit_of_work
        self._probe = probe
        self._stop = threading.Event()
        self._notifier_loop: asyncio.AbstractEventLoop | None = None
        self._notifier_stop: asyncio.Event | None = None
        self._threads: list[threading.Thread] = []
        self.failed = False
        self.on_failure: Callable[[], None] = lambda: None

    def start(self) -> None:
        for name, target in (("scheduler", self._scheduler), ("notifier", self._notifier)):
            thread = threading.Thread(target=self._guarded, args=(name, target), name=name)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        loop, stop = self._notifier_loop, self._notifier_stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        for thread in self._threads:
            thread.join()

    def _guarded(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            log.exception("%s stopped with an error; stopping dosewise run", name)
            self.failed = True
            self.on_failure()

    def _scheduler(self) -> None:
        with scheduler_service(self._settings, self._unit_of_work) as service:
            service.run(self._stop)

    def _notifier(self) -> None:
        asyncio.run(self._notify())

    async def _notify(self) -> None:
        self._notifier_stop = asyncio.Event()
        self._notifier_loop = asyncio.get_running_loop()
        if self._stop.is_set():  # stopped before this loop existed to be told
            return
        worker_id = f"{socket.gethostname()}:{os.getpid()}:run"
        await notify_until(
            self._notifier_stop,
            self._settings,
            self._unit_of_work,
            NotifierOptions(),
            worker_id,
            probe=self._probe,
        )
