"""The notifier's worker: claim due messages, hand them to the right gateway, record results.

One asyncio loop, run as a pipeline so that the database and the providers are busy at once:

    claimer --(bounded queue of claimed messages)--> `concurrency` senders --> recorder

The claimer claims a batch whenever the queue has room (the claim commits 'sending' and a
lease first); each sender takes one message at a time and calls its provider; the recorder
stores every result that arrived meanwhile in one transaction, a few hundredths of a second
after the call returned. SMS go through the async Twilio gateway when there is one (many
requests in flight on one thread); the synchronous gateways (SMTP, the console, the sync
Twilio client) and all database work run in worker threads. SKIP LOCKED keeps notifier
processes apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from notifier.email import language_headers
from notifier.ports import AsyncSmsGateway, EmailGateway, SendError, SendResult, SmsGateway
from notifier.segments import segments
from services.ports import ClaimedMessage, MessageChannel, OutboxMessage, SentRecord, UnitOfWork
from services.sending import (
    DEFAULT_PUBLIC_URL,
    Failure,
    RetryPolicy,
    Settlement,
    SmsRate,
    claim_due,
    mask_recipient,
    masked_detail,
    record_outcomes,
    settle_leases,
    take_expired_leases,
    validity_period_s,
)
from services.texts import keep_away_from_sending, same_text, unpack_email

log = logging.getLogger("dosewise.notifier")

DEFAULT_SUBJECT = "dosewise reminder"


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str
    status_callback: str | None = None
    # the tracker's address: where a fallback e-mail's confirm links point
    public_url: str = DEFAULT_PUBLIC_URL
    batch_size: int = 200  # messages per claim; also the most waiting in the queue
    concurrency: int = 100  # provider calls in flight at once
    lease: timedelta = timedelta(seconds=60)
    sms_rate: float = 0.0  # SMS per second per sender, over all notifiers; 0: no limit
    sender: str = "console"  # the rate limit's key: the From number or Messaging Service
    idle_sleep_s: float = 0.2
    sweep_every_s: float = 5.0
    # how long the recorder lets results gather before it stores them in one transaction
    record_every_s: float = 0.05
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def rate(self) -> SmsRate | None:
        return SmsRate(self.sender, self.sms_rate) if self.sms_rate > 0 else None


@dataclass(frozen=True)
class _Queued:
    item: ClaimedMessage
    # a message still queued this late is left to the sweeper: another notifier may settle
    # it once the lease runs out, and a send racing that would be a duplicate
    send_by: datetime


Outcome = SentRecord | Failure
_T = TypeVar("_T")


class _Outcomes:
    """Results waiting for the recorder."""

    def __init__(self) -> None:
        self.pending: list[Outcome] = []
        self.arrived = asyncio.Event()
        self.closed = False

    def add(self, outcome: Outcome) -> None:
        self.pending.append(outcome)
        self.arrived.set()

    def take(self) -> list[Outcome]:
        taken, self.pending = self.pending, []
        self.arrived.clear()
        return taken

    def close(self) -> None:
        self.closed = True
        self.arrived.set()


class Worker:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        sms: SmsGateway | AsyncSmsGateway,
        email: EmailGateway,
        config: WorkerConfig,
        rng: random.Random | None = None,
    ) -> None:
        self.unit_of_work = unit_of_work
        self.sms = sms
        self.email = email
        self.config = config
        self.rng = rng or random.Random()
        self._sms_is_async = inspect.iscoroutinefunction(sms.send)
        self._in_flight: asyncio.Semaphore | None = None

    # -- one batch ------------------------------------------------------------------------

    async def step(self, now: datetime) -> int:
        """Claim one batch at `now`, send it and record the results; how many were claimed."""
        claimed = await self._claim(now)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(item, now) for item in claimed))
        await self._record(outcomes, now)
        return len(claimed)

    async def _claim(self, now: datetime) -> list[ClaimedMessage]:
        config = self.config
        return await asyncio.to_thread(
            claim_due,
            self.unit_of_work(),
            now,
            config.worker_id,
            config.batch_size,
            config.lease,
            config.rate(),
        )

    async def _record(self, outcomes: Sequence[Outcome], now: datetime) -> int:
        sent = [outcome for outcome in outcomes if isinstance(outcome, SentRecord)]
        failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
        config = self.config
        await asyncio.to_thread(
            record_outcomes,
            self.unit_of_work(),
            sent,
            failures,
            now,
            config.retry,
            self.rng,
            config.public_url,
        )
        return len(outcomes)

    async def _send(self, item: ClaimedMessage, now: datetime) -> SentRecord | Failure:
        message = item.message
        async with self._semaphore():
            try:
                result = await self._deliver(message, item.addressee.timezone, now)
            except SendError as error:
                return Failure(
                    item,
                    error.kind.value,
                    None if error.code is None else str(error.code),
                    error.detail,
                    may_have_been_sent=error.may_have_been_sent and message.channel == "sms",
                    retry_after_s=error.retry_after_s,
                )
        return SentRecord(
            message.id,
            message.reminder_id,
            message.purpose,
            result.channel,
            result.provider_id,
            result.num_segments,
        )

    async def _deliver(self, message: OutboxMessage, timezone: str, now: datetime) -> SendResult:
        # the dose is taken when the message arrives: "keep dairy away" counts from now
        body = keep_away_from_sending(message.body, now, timezone)
        if message.channel == "email":
            # the scheduler packs an e-mail's plain text and HTML into the one body column
            plain, html = unpack_email(body)
            subject = message.subject or DEFAULT_SUBJECT
            return await asyncio.to_thread(
                self.email.send,
                message.recipient,
                subject,
                plain,
                html,
                headers=language_headers(html),
            )
        callback = self.config.status_callback
        validity = validity_period_s(message, now)
        if self._sms_is_async:
            sms_async: AsyncSmsGateway = self.sms  # type: ignore[assignment]
            return await sms_async.send(
                message.recipient,
                body,
                status_callback=callback,
                validity_period_s=validity,
            )
        sms_sync: SmsGateway = self.sms  # type: ignore[assignment]
        return await asyncio.to_thread(
            sms_sync.send,
            message.recipient,
            body,
            status_callback=callback,
            validity_period_s=validity,
        )

    def _semaphore(self) -> asyncio.Semaphore:
        # made on first use, inside the loop that uses it
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.config.concurrency)
        return self._in_flight

    # -- the sweeper ----------------------------------------------------------------------

    async def sweep(self, now: datetime, limit: int = 100) -> int:
        """Settle messages whose lease ran out: sent if the provider has them, else due again."""
        config = self.config
        stale = await asyncio.to_thread(
            take_expired_leases, self.unit_of_work(), now, config.worker_id, limit, config.lease
        )
        if not stale:
            return 0
        settlements = []
        for message in stale:
            try:
                settlements.append(Settlement(message, await self._find_sent(message)))
            except SendError as error:
                # the provider cannot tell us now: keep the new lease and ask again later
                log.warning(
                    "cannot settle message %s (%s to %s) yet, asking again later: %s",
                    message.id,
                    message.channel,
                    mask_recipient(message.recipient),
                    masked_detail(error.detail, message.recipient),
                )
        await asyncio.to_thread(
            settle_leases, self.unit_of_work(), settlements, now, config.retry, config.public_url
        )
        return len(stale)

    async def _find_sent(self, message: OutboxMessage) -> SentRecord | None:
        if message.channel != "sms":
            return None  # SMTP cannot be asked; an e-mail twice is the lesser harm
        if self._sms_is_async:
            sms_async: AsyncSmsGateway = self.sms  # type: ignore[assignment]
            found = await sms_async.messages_sent_to(message.recipient, message.due_at)
        else:
            sms_sync: SmsGateway = self.sms  # type: ignore[assignment]
            found = await asyncio.to_thread(
                sms_sync.messages_sent_to, message.recipient, message.due_at
            )
        for copy in found:
            # the copy's "keep dairy away" time may have been counted from its sending
            if same_text(copy.body, message.body) and copy.status not in ("failed", "undelivered"):
                channel: MessageChannel = (
                    "console" if copy.provider_id.startswith("console-") else "sms"
                )
                return SentRecord(
                    message.id,
                    message.reminder_id,
                    message.purpose,
                    channel,
                    copy.provider_id,
                    segments(message.body),
                )
        return None

    # -- the loop -------------------------------------------------------------------------

    async def run(self, clock: Callable[[], datetime], stop: asyncio.Event) -> None:
        """Until `stop` is set: claim, send, record, and sweep expired leases. A stop lets
        every claimed message be sent and recorded, so nothing is left in 'sending'."""
        queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=self.config.batch_size)
        outcomes = _Outcomes()
        senders = [
            asyncio.create_task(self._sender(queue, outcomes, clock))
            for _ in range(self.config.concurrency)
        ]
        recorder = asyncio.create_task(self._recorder(outcomes, clock))
        try:
            await asyncio.gather(self._sweeper(clock, stop), self._claimer(queue, clock, stop))
            await queue.join()
        finally:
            for sender in senders:
                sender.cancel()
            outcomes.close()
            await recorder

    async def _claimer(
        self, queue: asyncio.Queue[_Queued], clock: Callable[[], datetime], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            now = clock()
            claimed: list[ClaimedMessage] = await self._guarded(self._claim, now, [])
            if not claimed:
                await _sleep_unless(stop, self.config.idle_sleep_s)
                continue
            send_by = now + self.config.lease / 2
            for item in claimed:
                # waits while the queue is full: at most two batches are claimed and unsent
                await queue.put(_Queued(item, send_by))

    async def _sender(
        self, queue: asyncio.Queue[_Queued], outcomes: _Outcomes, clock: Callable[[], datetime]
    ) -> None:
        while True:
            queued = await queue.get()
            try:
                now = clock()
                if now < queued.send_by:
                    outcomes.add(await self._send(queued.item, now))
                else:
                    log.warning(
                        "message %s waited past half its lease; the sweeper will settle it",
                        queued.item.message.id,
                    )
            except Exception:
                # a bug in one send must not stop the others; the sweeper settles the message
                log.exception("notifier %s: sending failed", self.config.worker_id)
            finally:
                queue.task_done()

    async def _recorder(self, outcomes: _Outcomes, clock: Callable[[], datetime]) -> None:
        while not (outcomes.closed and not outcomes.pending):
            await outcomes.arrived.wait()
            if not outcomes.closed:
                # let the results of many sends gather: one transaction records them all
                await asyncio.sleep(self.config.record_every_s)
            taken = outcomes.take()
            if taken:
                await self._guarded(functools.partial(self._record, taken), clock(), 0)

    async def _sweeper(self, clock: Callable[[], datetime], stop: asyncio.Event) -> None:
        while not stop.is_set():
            while await self._guarded(self.sweep, clock(), 0):
                pass
            await _sleep_unless(stop, self.config.sweep_every_s)

    async def _guarded(
        self, work: Callable[[datetime], Awaitable[_T]], now: datetime, failed: _T
    ) -> _T:
        # A database restart or a network blip must not end the service: whatever was
        # claimed stays 'sending' under its lease and the sweeper settles it later.
        try:
            return await work(now)
        except Exception:
            log.exception("notifier %s: %s failed; trying again", self.config.worker_id, work)
            await asyncio.sleep(1.0)
            return failed


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Worker", "WorkerConfig"]
