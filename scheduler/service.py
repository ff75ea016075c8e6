"""`dosewise scheduler`: APScheduler is the clock, the database is the source of truth.

Two jobs, never one per dose: `materialise` keeps the next 48 h of reminders in the table,
`tick` acts on events, writes follow-ups, closes windows and hands due reminders to the
notifier; given a rollup, a third rebuilds the adherence report's changed days. Only the
leader runs them (see store.coordination); the main thread keeps the leadership, listens for
event wake-ups and waits for SIGTERM/SIGINT.

A job the database fails is one log line, and its next run waits ever longer (capped,
jittered: services.backoff) until the database answers again, which is one more line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from services.backoff import Backoff, Outage
from services.logs import error_line
from services.ports import StoreConflict, UnitOfWork
from services.reporting import ReportRollup, catch_up_report_rollup
from services.scheduling import SchedulerConfig, materialise, tick

log = logging.getLogger(__name__)

STANDBY_RETRY_S = 2.0  # a standby asks for the lock this often: takeover well inside 10 s
LEADER_CHECK_S = 2.0  # the leader checks its lock connection this often
RETRY_AFTER = timedelta(seconds=10)  # a job the database aborted (a deadlock) runs again then
# the waits before a failed job's next run while the database is away
JOB_BACKOFF = Backoff(first_s=1.0, cap_s=5.0)


def _utc_now() -> datetime:
    # the outermost loop is the only reader of the clock (the demo passes a simulated one)
    return datetime.now(UTC)


class Coordinator(Protocol):
    """Who leads, and whether an event arrived (store.coordination implements it)."""

    def try_lead(self) -> bool: ...

    def still_leading(self) -> bool: ...

    def wait_for_events(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class SchedulerService:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        coordinator: Coordinator,
        config: SchedulerConfig,
        materialise_every: timedelta = timedelta(minutes=5),
        tick_every: timedelta = timedelta(seconds=1),
        clock: Callable[[], datetime] = _utc_now,
        report_rollup: ReportRollup | None = None,
        # a busy minute queues thousands of person-days; every 15 s keeps the live part of
        # everyone's report small (a rebuild costs about 0.35 ms per person-day)
        rollup_every: timedelta = timedelta(seconds=15),
    ) -> None:
        self._unit_of_work = unit_of_work
        self._now = clock
        self._coordinator = coordinator
        self._config = config
        self._leading = threading.Event()
        self._woken = threading.Event()
        self._ticking = threading.Event()
        self._clock = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                # a run missed while the process stalled (or the previous run overran) is
                # not worth replaying one by one: all the jobs work from the database's state,
                # so one catch-up run does what any number would
                "coalesce": True,
                # two overlapping runs of one job would only contend for the same rows
                "max_instances": 1,
                # later than this a missed run is dropped: the next regular run is near
                "misfire_grace_time": 30,
            },
        )
        self._clock.add_job(
            self._guarded("materialise", self._materialise),
            "interval",
            id="materialise",
            seconds=materialise_every.total_seconds(),
        )
        self._clock.add_job(
            self._guarded("tick", self._tick),
            "interval",
            id="tick",
            seconds=tick_every.total_seconds(),
        )
        # the adherence report's rollup: exact without this job, faster with it
        self._report_rollup = report_rollup
        if report_rollup is not None:
            self._clock.add_job(
                self._guarded("report_rollup", self._refresh_reports),
                "interval",
                id="report_rollup",
                seconds=rollup_every.total_seconds(),
            )

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: lead (or stand by), and wake the tick on each event."""
        self._clock.start()
        said_standby = False  # once per stretch of standing by, not every retry
        try:
            while not stop.is_set():
                if self._leading.is_set():
                    self._lead_a_while()
                    said_standby = False
                elif self._coordinator.try_lead():
                    log.info("scheduler: leading")
                    self._leading.set()
                    self._wake("materialise")
                    self._wake("tick")
                else:
                    if not said_standby:
                        log.info(
                            "scheduler: standing by (another scheduler leads); asking again "
                            "every %.0f s",
                            STANDBY_RETRY_S,
                        )
                        said_standby = True
                    stop.wait(STANDBY_RETRY_S)
        finally:
            self._leading.clear()
            self._clock.shutdown(wait=True)
            self._coordinator.close()

    def run_due_jobs(self, materialise: bool = True) -> bool:
        """Run the jobs once now, if this process leads (or can): for tests, the demo's
        simulated clock and one-shot use; `materialise=False` runs only the tick.
        Returns whether it led."""
        if not self._leading.is_set() and self._coordinator.try_lead():
            self._leading.set()
        if self._leading.is_set():
            if materialise:
                self._materialise()
            self._tick()
            self._refresh_reports()
        return self._leading.is_set()

    def close(self) -> None:
        self._leading.clear()
        self._coordinator.close()

    def _lead_a_while(self) -> None:
        if self._coordinator.wait_for_events(LEADER_CHECK_S / 4):
            self._woken.set()
            # a running tick runs once more for it (APScheduler would refuse a second one
            # with a warning a time: hundreds a minute in a burst of replies)
            if not self._ticking.is_set():
                self._wake("tick")
        elif not self._coordinator.still_leading():
            log.warning("scheduler: lost the leader lock; standing by")
            self._leading.clear()

    def _wake(self, job_id: str, after: timedelta = timedelta(0)) -> None:
        self._clock.modify_job(job_id, next_run_time=datetime.now(UTC) + after)

    def _guarded(self, job_id: str, job: Callable[[], None]) -> Callable[[], None]:
        backoff = JobBackoff(
            Outage(log, "scheduler", JOB_BACKOFF),
            self._now,
            lambda seconds: self._wake(job_id, timedelta(seconds=seconds)),
        )
        return logged_job(job_id, job, lambda: self._wake(job_id, RETRY_AFTER), backoff)

    def _materialise(self) -> None:
        if self._leading.is_set():
            done = materialise(self._unit_of_work(), self._now(), self._config)
            log.info("materialised %d reminders for %d people", done.reminders, done.people)
            for refusal in done.refusals:
                log.warning("plan refused: %s", refusal)

    def _refresh_reports(self) -> None:
        if self._leading.is_set() and self._report_rollup is not None:
            days = catch_up_report_rollup(self._report_rollup)
            if days:
                log.info("report rollup: rebuilt %d person-days", days)

    def _tick(self) -> None:
        # an event that arrives while a tick runs sets _woken again: run once more for it
        # instead of waiting for the next interval
        self._ticking.set()
        try:
            while self._leading.is_set():
                self._woken.clear()
                tick(self._unit_of_work, self._now(), self._config)
                if not self._woken.is_set():
                    break
        finally:
            self._ticking.clear()


@dataclass(frozen=True)
class JobBackoff:
    """A job's backoff: its run of failures, the clock, and how to put its next run off."""

    outage: Outage
    clock: Callable[[], datetime]
    again_in: Callable[[float], None]


def logged_job(
    job_id: str,
    job: Callable[[], None],
    again_soon: Callable[[], None],
    backoff: JobBackoff | None = None,
) -> Callable[[], None]:
    """The job as APScheduler runs it: a failure is one log line and the next run tries
    again (`again_soon` after a conflict, such as a deadlock; with `backoff`, after its
    growing wait otherwise); never a traceback, which would carry the SQL and its parameters
    (phone numbers) into the log (it is there at DEBUG)."""

    def run() -> None:
        try:
            job()
        except StoreConflict as error:
            log.warning("%s: %s; running again soon", job_id, error_line(error))
            again_soon()
        except Exception as error:  # the next run tries again
            if backoff is None:
                log.error("%s failed: %s", job_id, error_line(error))
                log.debug("%s failed", job_id, exc_info=True)
            else:
                backoff.again_in(backoff.outage.failed(job_id, error, backoff.clock()))
        else:
            if backoff is not None:
                backoff.outage.recovered(backoff.clock())

    return run
