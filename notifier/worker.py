"""The notifier's worker: claim due messages, hand them to the right gateway, record results.

One asyncio loop. SMS go through the async Twilio gateway when there is one (many requests in
flight on few threads); the synchronous gateways (SMTP, the console, the sync Twilio client)
run in worker threads. Database work runs in threads too, so sends keep flowing while a batch
is claimed or recorded.

Several lanes each claim, send and record their own batch, so one lane's database round trip
overlaps another's provider calls; the claim's SKIP LOCKED keeps lanes (and processes) apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifier.ports import AsyncSmsGateway, EmailGateway, SendError, SendResult, SmsGateway
from notifier.segments import segments
from services.ports import ClaimedMessage, MessageChannel, OutboxMessage, SentRecord, UnitOfWork
from services.sending import (
    Failure,
    RetryPolicy,
    Settlement,
    claim_due,
    record_outcomes,
    settle_leases,
    take_expired_leases,
    take_send_slots,
    validity_period_s,
)
from services.texts import unpack_email

log = logging.getLogger("dosewise.notifier")

DEFAULT_SUBJECT = "dosewise reminder"


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str
    status_callback: str | None = None
    batch_size: int = 200
    concurrency: int = 100  # provider calls in flight at once, over all lanes
    lanes: int = 3
    lease: timedelta = timedelta(seconds=60)
    sms_rate: float = 0.0  # messages per second per sender, over all notifiers; 0: no limit
    sender: str = "console"  # the rate limit's key: the From number or Messaging Service
    idle_sleep_s: float = 0.2
    sweep_every_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


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
        limit = await self._allowance(now)
        if limit == 0:
            return 0
        config = self.config
        claimed = await asyncio.to_thread(
            claim_due, self.unit_of_work(), now, config.worker_id, limit, config.lease
        )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(item, now) for item in claimed))
        sent = [outcome for outcome in outcomes if isinstance(outcome, SentRecord)]
        failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
        await asyncio.to_thread(
            record_outcomes, self.unit_of_work(), sent, failures, now, config.retry, self.rng
        )
        return len(claimed)

    async def _allowance(self, now: datetime) -> int:
        config = self.config
        if config.sms_rate <= 0:
            return config.batch_size
        return await asyncio.to_thread(
            take_send_slots,
            self.unit_of_work(),
            config.sender,
            now,
            config.batch_size,
            config.sms_rate,
        )

    async def _send(self, item: ClaimedMessage, now: datetime) -> SentRecord | Failure:
        message = item.message
        async with self._semaphore():
            try:
                result = await self._deliver(message, now)
            except SendError as error:
                return Failure(
                    item,
                    error.kind.value,
                    None if error.code is None else str(error.code),
                    error.detail,
                    may_have_been_sent=error.may_have_been_sent and message.channel == "sms",
                )
        return SentRecord(
            message.id,
            message.reminder_id,
            message.purpose,
            result.channel,
            result.provider_id,
            result.num_segments,
        )

    async def _deliver(self, message: OutboxMessage, now: datetime) -> SendResult:
        if message.channel == "email":
            # the scheduler packs an e-mail's plain text and HTML into the one body column
            plain, html = unpack_email(message.body)
            subject = message.subject or DEFAULT_SUBJECT
            return await asyncio.to_thread(self.email.send, message.recipient, subject, plain, html)
        callback = self.config.status_callback
        validity = validity_period_s(message, now)
        if self._sms_is_async:
            sms_async: AsyncSmsGateway = self.sms  # type: ignore[assignment]
            return await sms_async.send(
                message.recipient,
                message.body,
                status_callback=callback,
                validity_period_s=validity,
            )
        sms_sync: SmsGateway = self.sms  # type: ignore[assignment]
        return await asyncio.to_thread(
            sms_sync.send,
            message.recipient,
            message.body,
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
                log.warning("cannot settle message %s yet: %s", message.id, error.detail)
        await asyncio.to_thread(settle_leases, self.unit_of_work(), settlements, now)
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
            if copy.body == message.body and copy.status not in ("failed", "undelivered"):
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
        """Until `stop` is set: lanes claim and send, a sweeper settles leases. A stop lets
        every batch under way finish and be recorded, so nothing is left in 'sending'."""
        lanes = [self._lane(clock, stop) for _ in range(self.config.lanes)]
        await asyncio.gather(self._sweeper(clock, stop), *lanes)

    async def _lane(self, clock: Callable[[], datetime], stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await self._guarded(self.step, clock()) == 0:
                await _sleep_unless(stop, self.config.idle_sleep_s)

    async def _sweeper(self, clock: Callable[[], datetime], stop: asyncio.Event) -> None:
        while not stop.is_set():
            while await self._guarded(self.sweep, clock()):
                pass
            await _sleep_unless(stop, self.config.sweep_every_s)

    async def _guarded(self, work: Callable[[datetime], Awaitable[int]], now: datetime) -> int:
        # A database restart or a network blip must not end the service: whatever was
        # claimed stays 'sending' under its lease and the sweeper settles it later.
        try:
            return await work(now)
        except Exception:
            log.exception("notifier %s: %s failed; trying again", self.config.worker_id, work)
            await asyncio.sleep(1.0)
            return 0


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Worker", "WorkerConfig"]
