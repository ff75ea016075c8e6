"""The notifier's use cases, one transaction each: claim due messages, record what the
providers said, settle leases a crashed notifier left behind, and share out send slots.

The worker (notifier/worker.py) does the provider calls between these; nothing here talks to
a provider, and every instant is the `now` the worker's loop read.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from i18n import translator
from services.clock import quiet_end, require_aware
from services.ports import (
    Addressee,
    ClaimedMessage,
    Event,
    OutboxMessage,
    SentRecord,
    UnitOfWork,
)
from services.reply_ports import ANSWERABLE_STATUSES
from services.scheduling_ports import ConfirmToken
from services.texts import Purpose, email_text, pack_email

log = logging.getLogger("dosewise.notifier")

# Twilio's ValidityPeriod bounds: a reminder is never held for delivery longer than this
MAX_VALIDITY_S = 36_000
# where the tracker's confirm links point when the caller does not say (the settings' default)
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, for as long as the message's window lasts.

    A message is tried again while the next try and the longest wait after it still fit
    before its `not_after` (one without: `give_up_after` from its due time); then it fails,
    and a failed SMS goes by e-mail in what is left of the window. An outage shorter than the
    window delays a reminder; it does not lose it.
    """

    base_s: float = 2.0
    cap_s: float = 300.0
    give_up_after: timedelta = timedelta(hours=2)

    def ceiling(self, attempts: int, at_least_s: float = 0.0) -> timedelta:
        """The longest wait after the `attempts`-th failed attempt: base * 2^(n-1), capped;
        never shorter than what the provider asked for (Retry-After)."""
        exponent = min(max(attempts - 1, 0), 64)  # 2^64 s is past any cap
        return timedelta(seconds=max(min(self.cap_s, self.base_s * 2**exponent), at_least_s))

    def delay(self, attempts: int, rng: random.Random, at_least_s: float = 0.0) -> timedelta:
        """The wait after the `attempts`-th failed attempt: half to all of its ceiling.

        The jitter spreads out messages that failed together (a provider outage), so they do
        not all come back at the same instant.
        """
        ceiling = self.ceiling(attempts).total_seconds()
        return timedelta(seconds=max(ceiling * rng.uniform(0.5, 1.0), at_least_s))

    def deadline(self, message: OutboxMessage) -> datetime:
        """Until when `message` is worth trying."""
        return message.not_after or message.due_at + self.give_up_after

    def gives_up(self, message: OutboxMessage, now: datetime, at_least_s: float = 0.0) -> bool:
        """True when another try and the wait after it no longer fit in the window."""
        return now + self.ceiling(message.attempts, at_least_s) >= self.deadline(message)

    def next_attempt(
        self, message: OutboxMessage, now: datetime, rng: random.Random, at_least_s: float = 0.0
    ) -> datetime | None:
        """When to try `message` again after a retryable failure at `now`; None: give up."""
        if self.gives_up(message, now, at_least_s):
            return None
        return now + self.delay(message.attempts, rng, at_least_s)


@dataclass(frozen=True)
class Failure:
    """A send the provider refused or that may not have arrived, as the worker classified it.

    kind is notifier.ports.ErrorKind's value: "retryable", "permanent" or "opted_out".
    retry_after_s: how long the provider asked us to wait (Retry-After), when it said.
    """

    claimed: ClaimedMessage
    kind: str
    code: str | None
    detail: str
    may_have_been_sent: bool = False
    retry_after_s: float | None = None


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
    for window in addressee.quiet:
        start, end = time.fromisoformat(window["from"]), time.fromisoformat(window["to"])
        if (until := quiet_end(start, end, local)) is not None:
            return until
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
    public_url: str = DEFAULT_PUBLIC_URL,
) -> None:
    """Store provider ids, and decide each failure: retry later, hold for the sweeper, or fail
    (with a DeliveryFailed event and, for an SMS, a reminder e-mail when we can).

    `public_url` is where the confirm links of a fallback e-mail point (the tracker).
    """
    require_aware(now)
    with uow:
        uow.outbox.mark_sent(sent, now)
        for failure in failures:
            _record_failure(uow, failure, now, policy, rng, public_url)
        uow.commit()


def _record_failure(
    uow: UnitOfWork,
    failure: Failure,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
    public_url: str,
) -> None:
    message = failure.claimed.message
    code, detail = failure.code, failure.detail
    if failure.kind == "opted_out":
        log.warning(
            "message %s to %s: the carrier says person %s opted out (%s); marked opted out, "
            "nothing more is sent to them: %s",
            message.id,
            mask_recipient(message.recipient),
            message.person_id,
            code,
            masked_detail(detail, message.recipient),
        )
        _carrier_opt_out(uow, message, now)
        _fail(uow, message, code, detail, now, fall_back=False, public_url=public_url)
        return
    if failure.kind != "retryable":
        log.warning(
            "message %s (%s to %s, attempt %s) failed for good, code %s: %s",
            message.id,
            message.channel,
            mask_recipient(message.recipient),
            message.attempts,
            code,
            masked_detail(detail, message.recipient),
        )
        _fail(uow, message, code, detail, now, fall_back=True, public_url=public_url)
        return
    at_least = failure.retry_after_s or 0.0
    next_at = policy.next_attempt(message, now, rng, at_least)
    if failure.may_have_been_sent:
        # The provider may have queued it: whatever the attempt count, the sweeper asks it
        # before anything is sent again (or the message is failed and e-mailed instead).
        # With no time left for another try, it asks at its next round.
        until = now if next_at is None else next_at
        log.warning(
            "%s may have reached the provider, %s; the sweeper asks the provider from %s "
            "before anything is sent again",
            *_attempt(message, code, detail),
            until.isoformat(timespec="seconds"),
        )
        uow.outbox.hold(message.id, until, code, detail)
    elif next_at is None:
        log.warning(
            "%s failed, %s; no time is left before %s to try again: failed",
            *_attempt(message, code, detail),
            policy.deadline(message).isoformat(timespec="seconds"),
        )
        _fail(uow, message, code, detail, now, fall_back=True, public_url=public_url)
    else:
        log.info(
            "%s failed, %s; retry at %s",
            *_attempt(message, code, detail),
            next_at.isoformat(timespec="seconds"),
        )
        uow.outbox.retry(message.id, next_at, code, detail, now)


def _carrier_opt_out(uow: UnitOfWork, message: OutboxMessage, now: datetime) -> None:
    if uow.outbox.opt_out(message.person_id, "carrier", now):
        uow.events.append(Event("OptedOut", message.person_id, now, {"source": "carrier"}))


def _fail(
    uow: UnitOfWork,
    message: OutboxMessage,
    code: str | None,
    detail: str,
    now: datetime,
    *,
    fall_back: bool,
    public_url: str,
) -> None:
    uow.outbox.finish(message, "failed", code, detail, now)
    uow.events.append(
        Event(
            "DeliveryFailed",
            message.person_id,
            now,
            {
                "message_id": message.id,
                "reminder_id": message.reminder_id,
                "error_code": code,
            },
        )
    )
    if fall_back and message.channel == "sms" and _still_open(message, now):
        queue_email_fallback(uow, message, now, public_url)


def _still_open(message: OutboxMessage, now: datetime) -> bool:
    return message.not_after is None or now < message.not_after


def queue_email_fallback(
    uow: UnitOfWork, message: OutboxMessage, now: datetime, public_url: str
) -> bool:
    """Queue the reminder of SMS `message` by e-mail, as the e-mail channel sends it: with its
    own signed, single-use confirm and skip links (only their hash is stored) that are valid
    while the SMS would have been, under purpose '<purpose>-email' (once). Nothing when the
    reminder has been answered or closed, or the person has no address. A step inside the
    caller's unit of work (no commit); True when it queued one."""
    if message.reminder_id is None:
        return False  # no reminder: nothing a link could confirm
    reminder = uow.scheduling.reminder(message.reminder_id)
    if reminder is None or not reminder.person.email:
        return False
    if reminder.status not in ANSWERABLE_STATUSES:
        return False  # answered or closed since: nothing to remind
    person, plan, address = reminder.person, reminder.plan, reminder.person.email
    secret = secrets.token_urlsafe(32)
    kind: Purpose = "followup" if message.purpose == "followup" else "initial"
    if message.purpose.startswith("snooze-"):
        kind = "snooze"
    text = email_text(
        plan.items,
        plan.due_at,
        person.timezone,
        kind,
        f"{public_url.rstrip('/')}/confirm/{secret}",
        language=person.language,
        note=fallback_note(person.language),
    )
    fallback = replace(
        message, subject=text.subject, body=pack_email(text.plain, text.html), channel="email"
    )
    purpose = f"{message.purpose}-email"
    if not uow.outbox.add_fallback(fallback, address, purpose, now):
        return False  # queued before: that e-mail's own link stands
    expires = message.not_after or plan.window_closes_at
    digest = hashlib.sha256(secret.encode()).hexdigest()
    uow.scheduling.add_confirm_tokens([ConfirmToken(digest, reminder.id, expires)])
    log.info(
        "message %s: the SMS failed; reminder %s queued by e-mail to %s instead",
        message.id,
        reminder.id,
        mask_recipient(address),
    )
    return True


def fallback_note(language: str) -> str:
    """The first line of an e-mail sent because the SMS could not go."""
    return translator(language).gettext(
        "We could not send this reminder to your phone by SMS, so here it is by e-mail."
    )


def take_expired_leases(
    uow: UnitOfWork, now: datetime, worker: str, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    """Messages left 'sending' by a notifier that stopped mid-send, now this worker's."""
    require_aware(now)
    with uow:
        taken = uow.outbox.claim_expired_leases(now, worker, limit, now + lease)
        uow.commit()
    return taken


def settle_leases(
    uow: UnitOfWork,
    settlements: Sequence[Settlement],
    now: datetime,
    policy: RetryPolicy | None = None,
    public_url: str = DEFAULT_PUBLIC_URL,
) -> None:
    """Sent ones are recorded with the provider's id; the rest are due again at once, unless
    no time is left in their window for another try: then they fail (a DeliveryFailed event,
    and an SMS goes by e-mail while the window is open), as a retry that ran out would."""
    require_aware(now)
    policy = policy or RetryPolicy()
    with uow:
        uow.outbox.mark_sent([s.sent for s in settlements if s.sent is not None], now)
        for settlement in settlements:
            message = settlement.message
            if settlement.sent is not None:
                continue
            if policy.gives_up(message, now) and _still_open(message, now):
                log.warning(
                    "message %s (%s to %s, attempt %s): the provider has no copy and no time "
                    "is left before %s to try again: failed",
                    message.id,
                    message.channel,
                    mask_recipient(message.recipient),
                    message.attempts,
                    policy.deadline(message).isoformat(timespec="seconds"),
                )
                detail = "the provider has no copy and the window is closing"
                _fail(uow, message, None, detail, now, fall_back=True, public_url=public_url)
            else:
                # past not_after the claim expires it: neither an SMS nor an e-mail helps now
                uow.outbox.retry(
                    message.id, now, None, "lease ran out; the provider has no copy", now
                )
        uow.commit()


# -- logs ------------------------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"\+?\d[\d ()-]{5,}\d")
_EMAIL_LIKE = re.compile(r"[\w.+-]+@([\w-]+\.[\w.-]+)")


def _attempt(message: OutboxMessage, code: str | None, detail: str) -> tuple[str, str]:
    """('message 7 (sms to +45****3456, attempt 2)', 'code 20429: Too many requests'), masked:
    a failure's log line starts with the one and goes on with the other."""
    recipient = mask_recipient(message.recipient)
    who = f"message {message.id} ({message.channel} to {recipient}, attempt {message.attempts})"
    return who, f"code {code}: {masked_detail(detail, message.recipient)}"


def mask_phone(number: str) -> str:
    """'+4520123456' -> '+45****3456': enough to tell people apart, not enough to call; short
    or odd values are masked whole."""
    text = number.strip()
    if len(text) <= 7:
        return "****"
    return f"{text[:3]}****{text[-4:]}"


def mask_recipient(recipient: str) -> str:
    """A phone number or an e-mail address as a log may show it."""
    local, at, domain = recipient.partition("@")
    if at:
        return f"{local[:1]}***@{domain}"
    return mask_phone(recipient)


def masked_detail(detail: str, recipient: str) -> str:
    """A provider's error text without the phone numbers and addresses it may quote."""
    text = detail.replace(recipient, mask_recipient(recipient)) if recipient else detail
    text = _EMAIL_LIKE.sub(lambda found: f"***@{found.group(1)}", text)
    return _PHONE_LIKE.sub(lambda found: mask_phone(found.group()), text)
