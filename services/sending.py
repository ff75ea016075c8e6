"""The notifier's use cases, one transaction each: claim due messages, record what the
providers said, settle leases a crashed notifier left behind, and share out send slots.

The worker (notifier/worker.py) does the provider calls between these; nothing here talks to
a provider, and every instant is the `now` the worker's loop read.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.clock import require_aware
from services.ports import (
    Addressee,
    ClaimedMessage,
    Event,
    OutboxMessage,
    SentRecord,
    UnitOfWork,
)

# Twilio's ValidityPeriod bounds: a reminder is never held for delivery longer than this
MAX_VALIDITY_S = 36_000


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, to a limit of attempts."""

    max_attempts: int = 6
    base_s: float = 2.0
    cap_s: float = 300.0

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the `attempts`-th failed attempt: half to all of base * 2^(n-1).

        The jitter spreads out messages that failed together (a provider outage), so they do
        not all come back at the same instant.
        """
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


@dataclass(frozen=True)
class Failure:
    """A send the provider refused or that may not have arrived, as the worker classified it.

    kind is notifier.ports.ErrorKind's value: "retryable", "permanent" or "opted_out".
    """

    claimed: ClaimedMessage
    kind: str
    code: str | None
    detail: str
    may_have_been_sent: bool = False


@dataclass(frozen=True)
class Settlement:
    """What the provider says about a message whose lease ran out: sent (record) or not."""

    message: OutboxMessage
    sent: SentRecord | None


# -- send-time checks ------------------------------------------------------------------------


def validity_period_s(message: OutboxMessage, now: datetime) -> int | None:
    """Seconds the provider may keep trying: until `not_after`, at least 1, at most 10 h."""
    if message.not_after is None:
        return None
    seconds = math.ceil((message.not_after - now).total_seconds())
    return max(1, min(MAX_VALIDITY_S, seconds))


def quiet_until(addressee: Addressee, now: datetime) -> datetime | None:
    """The end of the quiet window `now` falls in, in the person's zone; None when none."""
    try:
        zone = ZoneInfo(addressee.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    for window in addressee.quiet:
        start, end = time.fromisoformat(window["from"]), time.fromisoformat(window["to"])
        crosses_midnight = end <= start
        inside = (start <= clock < end) if not crosses_midnight else (clock >= start or clock < end)
        if inside:
            day = local.date() + timedelta(days=1 if crosses_midnight and clock >= start else 0)
            return datetime.combine(day, end, tzinfo=zone)
    return None


# -- use cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsRate:
    """SMS per second allowed to one sender, held by all notifier processes together.

    A limit under 1/s is held with longer slots of one message each.
    """

    sender: str  # the From number or Messaging Service: Twilio queues per sender
    per_second: float

    def slot_s(self) -> int:
        return max(1, round(1 / self.per_second)) if self.per_second < 1 else 1

    def capacity(self) -> int:
        return max(1, math.floor(self.per_second * self.slot_s()))


def claim_due(
    uow: UnitOfWork,
    now: datetime,
    worker: str,
    limit: int,
    lease: timedelta,
    sms_rate: SmsRate | None = None,
) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages and return those to send now.

    With an SMS rate, only SMS count against it: as many SMS as the sender's current slot has
    free, the rest of `limit` from the other channels. The slot row stays locked until this
    transaction commits, so notifier processes never hand out more than the rate together.

    In the same transaction, what must not go out is settled: past `not_after` -> expired;
    the person opted out -> cancelled; inside the person's quiet hours -> due again at the
    window's end (expired when that is too late). All are checked here, at send time, because
    they may have changed since the scheduler queued the message.
    """
    require_aware(now)
    lease_until = now + lease
    with uow:
        if sms_rate is None:
            claimed = uow.outbox.claim(now, worker, limit, lease_until)
        else:
            claimed = _claim_within_rate(uow, now, worker, limit, lease_until, sms_rate)
        sendable = [item for item in claimed if _still_to_send(uow, item, now)]
        uow.commit()
    return sendable


def _claim_within_rate(
    uow: UnitOfWork,
    now: datetime,
    worker: str,
    limit: int,
    lease_until: datetime,
    rate: SmsRate,
) -> list[ClaimedMessage]:
    slot = int(now.timestamp()) // rate.slot_s()
    free = uow.outbox.free_send_slots(rate.sender, slot, rate.capacity())
    sms = uow.outbox.claim(now, worker, min(limit, free), lease_until, sms=True)
    uow.outbox.use_send_slots(rate.sender, slot, len(sms))
    others = uow.outbox.claim(now, worker, limit - len(sms), lease_until, sms=False)
    return sorted(sms + others, key=lambda item: (item.message.due_at, item.message.id))


def _still_to_send(uow: UnitOfWork, item: ClaimedMessage, now: datetime) -> bool:
    message, addressee = item.message, item.addressee
    if message.not_after is not None and message.not_after <= now:
        uow.outbox.finish(message, "expired", None, "past not_after before it could be sent", now)
        return False
    if addressee.opted_out:
        uow.outbox.finish(message, "cancelled", None, "the person has opted out", now)
        return False
    until = quiet_until(addressee, now)
    if until is None:
        return True
    if message.not_after is not None and until >= message.not_after:
        uow.outbox.finish(message, "expired", None, "quiet hours last past not_after", now)
    else:
        uow.outbox.defer(message.id, until, now)
    return False


def record_outcomes(
    uow: UnitOfWork,
    sent: Sequence[SentRecord],
    failures: Sequence[Failure],
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> None:
    """Store provider ids, and decide each failure: retry later, hold for the sweeper, or fail
    (with a DeliveryFailed event and, for an SMS, the same text by e-mail when we can)."""
    require_aware(now)
    with uow:
        uow.outbox.mark_sent(sent, now)
        for failure in failures:
            _record_failure(uow, failure, now, policy, rng)
        uow.commit()


def _record_failure(
    uow: UnitOfWork, failure: Failure, now: datetime, policy: RetryPolicy, rng: random.Random
) -> None:
    message = failure.claimed.message
    if failure.kind == "opted_out":
        _carrier_opt_out(uow, message, now)
        _fail(uow, failure, now, fall_back=False)
    elif failure.kind != "retryable" or message.attempts >= policy.max_attempts:
        _fail(uow, failure, now, fall_back=True)
    elif failure.may_have_been_sent:
        # the provider may have queued it: let the sweeper ask before anything is sent again
        until = now + policy.delay(message.attempts, rng)
        uow.outbox.hold(message.id, until, failure.code, failure.detail)
    else:
        until = now + policy.delay(message.attempts, rng)
        uow.outbox.retry(message.id, until, failure.code, failure.detail, now)


def _carrier_opt_out(uow: UnitOfWork, message: OutboxMessage, now: datetime) -> None:
    if uow.outbox.opt_out(message.person_id, "carrier", now):
        uow.events.append(Event("OptedOut", message.person_id, now, {"source": "carrier"}))


def _fail(uow: UnitOfWork, failure: Failure, now: datetime, *, fall_back: bool) -> None:
    message, addressee = failure.claimed.message, failure.claimed.addressee
    uow.outbox.finish(message, "failed", failure.code, failure.detail, now)
    uow.events.append(
        Event(
            "DeliveryFailed",
            message.person_id,
            now,
            {
                "message_id": message.id,
                "reminder_id": message.reminder_id,
                "error_code": failure.code,
            },
        )
    )
    if fall_back and message.channel == "sms" and addressee.email:
        uow.outbox.add_fallback(message, addressee.email, f"{message.purpose}-email", now)


def take_expired_leases(
    uow: UnitOfWork, now: datetime, worker: str, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    """Messages left 'sending' by a notifier that stopped mid-send, now this worker's."""
    require_aware(now)
    with uow:
        taken = uow.outbox.claim_expired_leases(now, worker, limit, now + lease)
        uow.commit()
    return taken


def settle_leases(uow: UnitOfWork, settlements: Sequence[Settlement], now: datetime) -> None:
    """Sent ones are recorded with the provider's id; the rest are due again at once."""
    require_aware(now)
    with uow:
        uow.outbox.mark_sent([s.sent for s in settlements if s.sent is not None], now)
        for settlement in settlements:
            if settlement.sent is None:
                uow.outbox.retry(
                    settlement.message.id, now, None, "lease ran out; the provider has no copy", now
                )
        uow.commit()
