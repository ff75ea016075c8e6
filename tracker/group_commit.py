"""Group commit: items handed in by concurrent requests, run in batches in a worker thread.

A lane runs batches one after another in the event loop's default executor, until nothing
waits. An item that finds no lane running starts one at once, so a lone request waits for
nothing. Items that arrive while a lane runs wait, and its next batch takes them together (at
most `most`): the busier the tracker, the larger its batches and the fewer its transactions,
which is what saves the CPU.

More lanes (up to `lanes`) start only once every running batch has taken longer than
`patience`, at that moment if items are waiting: a batch that waits on a row lock (another
service's long transaction) does not hold up the replies behind it, while in the usual case
one lane makes the largest batches.

`run` gets the items in arrival order and gives back, in the same order, each one's result
or the exception it raised. Each event loop has lanes of its own (an app may serve several,
as tests do): a future is only ever resolved in its own loop.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - an item, as R is a result
R = TypeVar("R")

BatchRunner = Callable[[list[I]], list[R | Exception]]


@dataclass(frozen=True)
class _Settings(Generic[I, R]):
    run: BatchRunner[I, R]
    lanes: int
    most: int
    patience: float
    on_batch: Callable[[int], None]


class GroupCommit(Generic[I, R]):
    def __init__(
        self,
        run: BatchRunner[I, R],
        *,
        lanes: int,
        most: int,
        patience: float = 0.0,
        on_batch: Callable[[int], None] = lambda _size: None,
    ) -> None:
        if lanes < 1 or most < 1:
            raise ValueError("a group commit needs at least one lane and one item per batch")
        self._settings = _Settings(run, lanes, most, patience, on_batch)
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lanes[I, R]] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, item: I) -> R:
        """The item's result once its batch has run; what its run raised, raised here."""
        loop = asyncio.get_running_loop()
        lanes = self._by_loop.get(loop)
        if lanes is None:
            lanes = self._by_loop[loop] = _Lanes(self._settings, loop)
        return await lanes.submit(item)


class _Lanes(Generic[I, R]):
    """One event loop's waiting items and running lanes."""

    def __init__(self, settings: _Settings[I, R], loop: asyncio.AbstractEventLoop) -> None:
        self._settings = settings
        self._loop = loop
        self._waiting: deque[tuple[I, asyncio.Future[R]]] = deque()
        # per running lane, when its current batch started (loop time)
        self._batch_started: dict[int, float] = {}
        self._lane_ids = itertools.count()
        self._draining: set[asyncio.Task[None]] = set()  # referenced, so never collected
        self._recheck: asyncio.TimerHandle | None = None

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = self._loop.create_future()
        self._waiting.append((item, future))
        self._start_a_lane_if_due()
        return await future

    def _start_a_lane_if_due(self) -> None:
        """A lane for what waits: now if there is room, else once the youngest running batch
        has outrun patience (a timer, so that no new arrival is needed to start it)."""
        self._recheck = None
        settings = self._settings
        if not self._waiting or len(self._batch_started) >= settings.lanes:
            return
        now = self._loop.time()
        youngest = max(self._batch_started.values(), default=None)
        if youngest is not None and now - youngest < settings.patience:
            if self._recheck is None:
                delay = settings.patience - (now - youngest)
                self._recheck = self._loop.call_later(delay, self._start_a_lane_if_due)
            return
        lane = next(self._lane_ids)
        self._batch_started[lane] = now
        task = self._loop.create_task(self._drain(lane))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, lane: int) -> None:
        """One lane: batches of what is waiting, until nothing is."""
        try:
            while self._waiting:
                self._batch_started[lane] = self._loop.time()
                await self._run_batch()
        finally:
            del self._batch_started[lane]

    async def _run_batch(self) -> None:
        settings = self._settings
        size = min(settings.most, len(self._waiting))
        batch = [self._waiting.popleft() for _ in range(size)]
        outcomes: list[R | Exception] = []
        try:
            settings.on_batch(size)
            items = [item for item, _ in batch]
            outcomes = await self._loop.run_in_executor(None, settings.run, items)
        except asyncio.CancelledError:  # the loop is closing: so are their requests
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # the runner itself failed: every item with it
            outcomes = [error] * size
        finally:
            _settle(batch, outcomes)


def _settle(batch: list[tuple[I, asyncio.Future[R]]], outcomes: list[R | Exception]) -> None:
    """Each future its outcome; one the runner gave none for (a wrong count) fails, never
    waits for good."""
    for index, (_, future) in enumerate(batch):
        if future.done():  # its request has gone (the client left), or was cancelled above
            continue
        if index >= len(outcomes):
            future.set_exception(RuntimeError("the batch gave no outcome for this item"))
        elif isinstance(outcome := outcomes[index], Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
