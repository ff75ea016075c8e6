"""Puts what the spool kept into the database as soon as it answers: one task per tracker
worker, in the worker's event loop.

While entries wait it replays them (services.spool_replay: opt-outs first, then in arrival
order) and, while the database refuses, tries again after a short capped, jittered wait,
logging one line per failed attempt and one when the database answers again. Every few
seconds it also looks for orphaned spool files of workers that died and adopts them. An entry
whose values the database refuses, or that a use case fails on for good, is set aside in a
`.rejected` file with one ERROR line, so that it holds nothing else up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from services.backoff import Backoff, Outage
from services.health import SpoolState
from services.logs import error_line
from services.ports import StoreConflict, StoreUnusable, UnitOfWork
from services.spool_replay import Kept, replay, replay_order
from tracker.spool import InboundSpool

log = logging.getLogger("dosewise.tracker")

T = TypeVar("T")

# how often a worker looks for the spool files of workers that died
ORPHAN_SCAN_S = 2.0
# entries replayed per round at most (a round then marks them done in one fsync)
MOST_PER_ROUND = 256
# the waits between replays while the database refuses: short, so that the STOPs kept are
# in the database within 2 s of its return (the notifier waits 3 s after it sees the return)
REPLAY_BACKOFF = Backoff(first_s=0.2, cap_s=2.0)


class SpoolReplayer:
    def __init__(
        self,
        spool: InboundSpool,
        new_uow: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
        public_url: str,
        on_replayed: Callable[[Kept, str], None] = lambda _entry, _outcome: None,
    ) -> None:
        self.spool = spool
        self.new_uow = new_uow
        self.clock = clock
        self.public_url = public_url
        self.on_replayed = on_replayed
        self.outage = Outage(log, "tracker spool", REPLAY_BACKOFF)
        self.failing: str | None = None  # the last replay's error line while replays fail
        self._wake = asyncio.Event()
        self._round: asyncio.Lock | None = None  # one round at a time: the loop's or a check's

    def wake(self) -> None:
        """An entry was kept: try it now rather than at the next scan."""
        self._wake.set()

    def state(self, now: datetime) -> SpoolState:
        return self.spool.state(now, self.failing)

    async def try_now(self) -> None:
        """A replay round now, when replays have been failing: the health check's way to a
        current answer once its probe writes again (the last failure may predate a restart
        that is over, or replays may fail where the probe's small write does not)."""
        if self.failing is None:
            return
        async with self._lock():
            waiting = await self._on_disk(self.spool.waiting)
            if waiting:
                await self.replay_round(waiting)
            else:
                self.failing = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. A failure of the spool's own disk (or a bug) is one line and
        a pause, never the end of the loop: what is kept must still be replayed."""
        loop = asyncio.get_running_loop()
        last_scan = float("-inf")
        disk = Outage(log, "tracker spool", REPLAY_BACKOFF, back="its files can be used again")
        while not stop.is_set():
            try:
                if loop.time() - last_scan >= ORPHAN_SCAN_S:
                    last_scan = loop.time()
                    await self._on_disk(self.spool.adopt_orphans)
                async with self._lock():  # what waits is read in the round that replays it
                    waiting = await self._on_disk(self.spool.waiting)
                    pause = await self.replay_round(waiting) if waiting else 0.0
                disk.recovered(self.clock())
                if not waiting:
                    self.spool.database_away = False
                    self.failing = None
                    await self._pause(stop, ORPHAN_SCAN_S)
                    continue
            except Exception as error:
                pause = disk.failed("reading or marking the spool's files", error, self.clock())
            if pause:
                # a backoff: entries kept meanwhile wait for it, they do not cut it short
                await self._pause(stop, pause, wakeable=False)

    async def replay_round(self, waiting: list[Kept]) -> float:
        """Replay up to MOST_PER_ROUND of `waiting`; the seconds to wait before the next round
        (0: go on)."""
        batch = replay_order(waiting)[:MOST_PER_ROUND]
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(None, replay, self.new_uow, batch, self.public_url)
        done: list[Kept] = []
        failure: Exception | None = None
        for entry, outcome in zip(batch, outcomes, strict=False):
            if isinstance(outcome, StoreUnusable | StoreConflict):
                failure = failure or outcome  # stays kept: tried again next round
            elif isinstance(outcome, Exception):
                log.error(
                    "spool: %s %s cannot be stored and is set aside: %s",
                    entry.kind,
                    _sid(entry),
                    error_line(outcome),
                )
                await self._on_disk(self.spool.set_aside, entry, error_line(outcome))
            else:
                done.append(entry)
                self.on_replayed(entry, outcome)
        if done:
            await self._on_disk(self.spool.mark_done, done)
        now = self.clock()
        if failure is not None:
            self.spool.database_away = True
            self.failing = error_line(failure)
            return self.outage.failed("replaying the spool", failure, now)
        if self.outage.away:
            self.outage.recovered(now)
        if done:
            log.info("spool: replayed %d kept webhooks", len(done))
        self.spool.database_away = False
        self.failing = None
        return 0.0

    def _lock(self) -> asyncio.Lock:
        if self._round is None:  # made in the loop that uses it
            self._round = asyncio.Lock()
        return self._round

    async def _on_disk(self, function: Callable[..., T], *arguments: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.spool.executor, function, *arguments)

    async def _pause(self, stop: asyncio.Event, seconds: float, *, wakeable: bool = True) -> None:
        """Until `seconds` pass, `stop` is set, or (`wakeable`) an entry is kept."""
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), seconds
                )
        finally:
            for waiter in waiters:
                waiter.cancel()


def _sid(entry: Kept) -> str:
    if entry.sms is not None:
        return entry.sms.provider_id
    return entry.status.provider_id if entry.status is not None else "?"
