"""`dosewise scheduler`: run the scheduler service in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from dosewise.settings import Settings
from dosewise.wiring import UnitOfWorkFactory, database, load_settings
from scheduler.service import SchedulerService
from services.scheduling import SchedulerConfig
from store.coordination import coordinator_for
from store.engine import create_engine
from store.report_rollup import SqlReportRollup


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("scheduler", help="run the scheduler service")
    parser.set_defaults(handler=run)


def run(_arguments: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # APScheduler reports every run of the one-second tick at INFO
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = load_settings()
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with database(settings) as store, scheduler_service(settings, store.unit_of_work) as service:
        service.run(stop)
    return 0


@contextmanager
def scheduler_service(
    settings: Settings, unit_of_work: UnitOfWorkFactory
) -> Iterator[SchedulerService]:
    """The scheduler with its jobs wired: `dosewise scheduler` and `dosewise run`."""
    rollup_engine = create_engine(settings.database_url)  # the report rollup's refresh
    try:
        yield SchedulerService(
            unit_of_work,
            coordinator_for(settings.database_url),
            SchedulerConfig(public_url=settings.public_url),
            report_rollup=SqlReportRollup(rollup_engine),
        )
    finally:
        rollup_engine.dispose()
