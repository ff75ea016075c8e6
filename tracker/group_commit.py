"""Group commit: items handed in by concurrent requests, run in batches in a worker thread.

A lane runs batches one after another in the event loop's default executor, until nothing
waits. An item that finds no lane running starts one at once, so a lone request waits for
nothing. Items that arrive while a lane runs wait, and its next batch takes them together (at
most `most`): the busier the tracker, the larger its batches and the fewer its transactions,
which is what saves the CPU.

More lanes (up to `lanes`) start only when every running batch has taken longer than
`patience`: a batch that waits on a row lock (another service's long transaction) does not
hold every reply up, while in the usual case one lane makes the largest batches.

`run` gets the items in arrival order and gives back, in the same order, each one's result
or the exception it raised.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - an item, as R is a result
R = TypeVar("R")

BatchRunner = Callable[[list[I]], list[R | Exception]]


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
        self._run = run
        self._lanes = lanes
        self._most = most
        self._patience = patience
        self._on_batch = on_batch
        self._waiting: deque[tuple[I, asyncio.Future[R]]] = deque()
        # per running lane, when its current batch started (loop time)
        self._batch_started: dict[int, float] = {}
        self._lane_ids = itertools.count()
        self._draining: set[asyncio.Task[None]] = set()  # referenced, so never collected

    async def __call__(self, item: I) -> R:
        """The item's result once its batch has run; what its run raised, raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._room_for_a_lane(loop.time()):
            lane = next(self._lane_ids)
            self._batch_started[lane] = loop.time()
            task = loop.create_task(self._drain(lane))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        return await future

    def _room_for_a_lane(self, now: float) -> bool:
        if len(self._batch_started) >= self._lanes:
            return False
        return all(now - started >= self._patience for started in self._batch_started.values())

    async def _drain(self, lane: int) -> None:
        """One lane: batches of what is waiting, until nothing is."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                self._batch_started[lane] = loop.time()
                await self._run_batch(loop)
        finally:
            del self._batch_started[lane]

    async def _run_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        size = min(self._most, len(self._waiting))
        batch = [self._waiting.popleft() for _ in range(size)]
        self._on_batch(size)
        items = [item for item, _ in batch]
        try:
            outcomes = await loop.run_in_executor(None, self._run, items)
        except asyncio.CancelledError:  # the loop is closing: so are their requests
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # the runner itself failed: every item with it
            outcomes = [error] * size
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its request has gone (the client left)
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
