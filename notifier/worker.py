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

Leases are short and renewed (services.leases): every third of a lease the worker extends
the leases of the messages it holds, so a notifier that dies leaves claims that another's
sweeper takes within a lease and a sweep, and asks the provider about before resending.

While the database is away every use of it fails: each failure is one log line, the loops
back off (capped, jittered), results wait to be recorded, and once the database answers
the claimer waits `resume_after_outage_s` more before it claims, so that the tracker has
put the STOPs it kept meanwhile into the database before anything goes out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from notifier.email import language_headers
from notifier.ports import AsyncSmsGateway, EmailGateway, SendError, SendResult, SmsGateway
from notifier.segments import segments
from services.backoff import Backoff, Outage
from services.health import DatabaseProbe, check_database
from services.leases import renew_leases
from services.logs import error_line
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
    # renewed every third of itself while the worker holds the message: a dead notifier's
    # claims are another's after at most this (and a sweep)
    lease: timedelta = timedelta(seconds=5)
    sms_rate: float = 0.0  # SMS per second per sender, over all notifiers; 0: no limit
    sender: str = "console"  # the rate limit's key: the From number or Messaging Service
    idle_sleep_s: float = 0.2
    sweep_every_s: float = 1.0
    # how long the recorder lets results gather before it stores them in one transaction
    record_every_s: float = 0.05
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # the waits between tries while the database is away: capped so that, with the wait
    # below, sending resumes within 10 s of the database's return
    backoff: Backoff = field(default_factory=lambda: Backoff(first_s=0.5, cap_s=4.0))
    # after an outage, how long the database must have answered before claims resume: longer
    # than the tracker's spool takes to replay the STOPs it kept (its retries are 1 s apart)
    resume_after_outage_s: float = 3.0

    def rate(self) -> SmsRate | None:
        return SmsRate(self.sender, self.sms_rate) if self.sms_rate > 0 else None


@dataclass(frozen=True)
class _Queued:
    item: ClaimedMessage


Outcome = SentRecord | Failure
_T = TypeVar("_T")


class _Outcomes:
    """Results waiting for the recorder (those it could not record yet put back first)."""

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

    def put_back(self, outcomes: list[Outcome]) -> None:
        self.pending[:0] = outcomes
        self.arrived.set()

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
        probe: DatabaseProbe | None = None,
    ) -> None:
        """`probe`: whether the database takes a write, asked while it is away (without
        one, a read)."""
        self.unit_of_work = unit_of_work
        self.probe = probe
        self.sms = sms
        self.email = email
        self.config = config
        self.rng = rng or random.Random()
        self._sms_is_async = inspect.iscoroutinefunction(sms.send)
        self._in_flight: asyncio.Semaphore | None = None
        # the messages this worker holds (claimed, not yet recorded): their lease's end
        self._held: dict[int, datetime] = {}
        self.outage = Outage(log, f"notifier {config.worker_id}", config.backoff, self.rng)
        self._wait_s = 0.0  # the backoff after the last failure
        self._resume_at = 0.0  # time.monotonic() before which nothing is claimed

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
        claimed = await asyncio.to_thread(
            claim_due,
            self.unit_of_work(),
            now,
            config.worker_id,
            config.batch_size,
            config.lease,
            config.rate(),
        )
        for item in claimed:
            self._held[item.message.id] = now + config.lease
        return claimed

    async def renew(self, now: datetime) -> int:
        """Extend the leases of the messages this worker holds; those it could not renew
        (another notifier took them after the lease ran out) it holds no more, and does not
        send. How many were renewed."""
        held = list(self._held)
        if not held:
            return 0
        config = self.config
        renewed = await asyncio.to_thread(
            renew_leases, self.unit_of_work(), held, config.worker_id, now, config.lease
        )
        for message_id in held:
            if message_id in renewed:
                if message_id in self._held:  # not recorded meanwhile
                    self._held[message_id] = now + config.lease
            elif self._held.pop(message_id, None) is not None:
                log.warning(
                    "message %s: its lease ran out before it could be renewed; the sweeper "
                    "settles it",
                    message_id,
                )
        return len(renewed)

    def _may_send(self, message_id: int, now: datetime) -> bool:
        """Held, with at least half a lease left: a send that starts later could still be
        under way when the lease runs out and another notifier's sweeper resends it."""
        until = self._held.get(message_id)
        return until is not None and now < until - self.config.lease / 2

    def _let_go(self, message_ids: Iterable[int]) -> None:
        for message_id in message_ids:
            self._held.pop(message_id, None)

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
        self._let_go(record.message_id for record in sent)
        self._let_go(failure.claimed.message.id for failure in failures)
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
        # the provider is asked about them all at once (within the worker's concurrency):
        # a dead notifier's hundreds of claims are settled in about one lookup's time
        found = await asyncio.gather(*(self._settlement(message) for message in stale))
        settlements = [settlement for settlement in found if settlement is not None]
        await asyncio.to_thread(
            settle_leases, self.unit_of_work(), settlements, now, config.retry, config.public_url
        )
        return len(stale)

    async def _settlement(self, message: OutboxMessage) -> Settlement | None:
        """What the provider says of `message`; None when it cannot tell now (the message
        keeps its new lease, and is asked about again once that runs out)."""
        try:
            async with self._semaphore():
                return Settlement(message, await self._find_sent(message))
        except SendError as error:
            log.warning(
                "cannot settle message %s (%s to %s) yet, asking again later: %s",
                message.id,
                message.channel,
                mask_recipient(message.recipient),
                masked_detail(error.detail, message.recipient),
            )
            return None

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
        """Until `stop` is set: claim, send, record, renew leases and sweep expired ones. A
        stop lets every claimed message be sent and recorded, so nothing is left in
        'sending' (unless the database is away then: the sweeper settles those later)."""
        queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=self.config.batch_size)
        outcomes = _Outcomes()
        senders = [
            asyncio.create_task(self._sender(queue, outcomes, clock))
            for _ in range(self.config.concurrency)
        ]
        recorder = asyncio.create_task(self._recorder(outcomes, clock))
        renewer = asyncio.create_task(self._renewer(clock))
        try:
            await asyncio.gather(self._sweeper(clock, stop), self._claimer(queue, clock, stop))
            await queue.join()
        finally:
            for sender in senders:
                sender.cancel()
            outcomes.close()
            await recorder
            # nothing more is sent: the leases still held (results the database did not
            # take) run out, and the sweeper settles those messages with the provider
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _claimer(
        self, queue: asyncio.Queue[_Queued], clock: Callable[[], datetime], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            if self.outage.away:
                # only the claimer asks while the database is away; the other loops wait
                await _sleep_unless(stop, self._wait_s)
                if not stop.is_set():
                    await self._attempt("checking the database", self._check, clock(), None)
                continue
            hold = self._resume_at - time.monotonic()
            if hold > 0:
                await _sleep_unless(stop, hold)
                continue
            nothing: list[ClaimedMessage] = []
            claimed = await self._attempt("claiming due messages", self._claim, clock(), nothing)
            if not claimed:
                if not self.outage.away:
                    await _sleep_unless(stop, self.config.idle_sleep_s)
                continue
            for item in claimed:
                # waits while the queue is full: at most two batches are claimed and unsent
                await queue.put(_Queued(item))

    async def _sender(
        self, queue: asyncio.Queue[_Queued], outcomes: _Outcomes, clock: Callable[[], datetime]
    ) -> None:
        while True:
            queued = await queue.get()
            message_id = queued.item.message.id
            try:
                now = clock()
                if self._may_send(message_id, now):
                    outcomes.add(await self._send(queued.item, now))
                else:
                    self._let_go([message_id])
                    log.warning(
                        "message %s: under half its lease is left; the sweeper will settle it",
                        message_id,
                    )
            except Exception as error:
                # a bug in one send must not stop the others; the sweeper settles the message
                log.error(
                    "notifier %s: sending message %s failed: %s",
                    self.config.worker_id,
                    message_id,
                    error_line(error),
                )
                log.debug("sending message %s failed", message_id, exc_info=True)
            finally:
                queue.task_done()

    async def _recorder(self, outcomes: _Outcomes, clock: Callable[[], datetime]) -> None:
        while not (outcomes.closed and not outcomes.pending):
            await outcomes.arrived.wait()
            if not outcomes.closed:
                # let the results of many sends gather: one transaction records them all
                await asyncio.sleep(self.config.record_every_s)
            if self.outage.away and not outcomes.closed:
                # kept until the claimer finds the database back
                await asyncio.sleep(min(self._wait_s, 0.5) or 0.1)
                continue
            taken = outcomes.take()
            if not taken:
                continue
            recorded = await self._attempt(
                "recording results", functools.partial(self._record, taken), clock(), 0
            )
            if recorded:
                continue
            if outcomes.closed:
                log.warning(
                    "notifier %s: stopping with %d results unrecorded; the sweeper settles "
                    "them with the provider",
                    self.config.worker_id,
                    len(taken),
                )
            else:
                outcomes.put_back(taken)

    async def _renewer(self, clock: Callable[[], datetime]) -> None:
        """Every third of a lease, until cancelled (after the last send and recording)."""
        every = max(self.config.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            if self._held and not self.outage.away:
                await self._attempt("renewing leases", self.renew, clock(), 0)

    async def _sweeper(self, clock: Callable[[], datetime], stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.outage.away:
                while await self._attempt("sweeping expired leases", self.sweep, clock(), 0):
                    pass
            await _sleep_unless(stop, self.config.sweep_every_s)

    async def _check(self, _now: datetime) -> None:
        if self.probe is not None:
            await asyncio.to_thread(self.probe.check_writable)
        else:
            await asyncio.to_thread(check_database, self.unit_of_work())

    async def _attempt(
        self, what: str, work: Callable[[datetime], Awaitable[_T]], now: datetime, failed: _T
    ) -> _T:
        """`work(now)`, or `failed` when it raises: a database restart or a network blip must
        not end the service (whatever was claimed stays 'sending' under its lease and the
        sweeper settles it later). A failure is one log line and starts (or lengthens) the
        backoff; the first success after failures ends it, and claims resume only after
        `resume_after_outage_s`."""
        failures_before = self.outage.failures
        try:
            result = await work(now)
        except Exception as error:
            self._wait_s = self.outage.failed(what, error, now)
            return failed
        # only a success that began after the last failure says the database is back (a
        # read that began before a loop's write failed proves nothing)
        if self.outage.away and self.outage.failures == failures_before:
            self.outage.recovered(now)
            self._resume_at = time.monotonic() + self.config.resume_after_outage_s
        return result


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Worker", "WorkerConfig"]
