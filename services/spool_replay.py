"""Webhooks kept while the database was away, and how they are put into it once it answers.

The tracker keeps a verified webhook it could not store (tracker.spool) and answers Twilio at
once; these are the use-case halves: what a kept reply is answered, in which order kept
webhooks are replayed, and the replay itself, through the same use cases a live webhook
takes (services.replies), with the instant it arrived as `now`. Replaying is idempotent: a
reply is stored under its MessageSid once, a status callback moves a message once.

Order: each sender's replies in the order they came (a TAKEN before a STOP must count before
the opt-out does), but every sender with an opt-out waiting goes first: their replies up to
and including the opt-out, before anyone else's. Carrier opt-outs (status callbacks with
error 21610) go first too. So once the database answers, the STOPs are in it within moments,
before the notifier resumes sending (it waits a little after an outage for exactly this).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from i18n import translator
from schemas.languages import LANGUAGES
from services.ports import StoreUnusable, UnitOfWork
from services.replies import (
    TWILIO_UNSUBSCRIBED,
    DeliveryStatus,
    InboundSms,
    receive_sms_together,
    record_delivery_status,
)
from services.reply_words import help_text, read_reply

# the most replies replayed in one transaction (as the tracker's group commit)
MOST_PER_TRANSACTION = 32


@dataclass(frozen=True)
class Kept:
    """One kept webhook: where the spool has it (`key`), when it arrived, and what it said."""

    key: tuple[str, int]  # (the spool file's name, the entry's number in it)
    received_at: datetime
    sms: InboundSms | None = None
    status: DeliveryStatus | None = None

    @property
    def kind(self) -> Literal["sms", "status"]:
        return "sms" if self.sms is not None else "status"

    @property
    def opts_out(self) -> bool:
        """A STOP-family reply, or the carrier saying the person opted out."""
        if self.sms is not None:
            return read_reply(self.sms.body).kind == "stop"
        return self.status is not None and self.status.error_code == TWILIO_UNSUBSCRIBED


def replay_order(kept: Sequence[Kept]) -> list[Kept]:
    """`kept` (in arrival order) in the order to replay them: first, for every sender with an
    opt-out among theirs, their entries up to and including their last opt-out, and every
    carrier opt-out; then the rest, in arrival order."""
    last_opt_out: dict[str, int] = {}
    for index, entry in enumerate(kept):
        if entry.sms is not None and entry.opts_out:
            last_opt_out[entry.sms.from_number] = index
    first: list[Kept] = []
    rest: list[Kept] = []
    for index, entry in enumerate(kept):
        if entry.sms is not None:
            urgent = index <= last_opt_out.get(entry.sms.from_number, -1)
        else:
            urgent = entry.opts_out
        (first if urgent else rest).append(entry)
    return first + rest


ReplayOutcome = str  # the reply's kind ("taken", "stop", ...) or the status outcome


def replay(
    new_uow: Callable[[], UnitOfWork], batch: Sequence[Kept], public_url: str
) -> list[ReplayOutcome | Exception]:
    """Replay `batch` (in replay order): consecutive replies together in one transaction
    (receive_sms_together, which falls back to one at a time), status callbacks one by one.
    Each entry's outcome, or what it raised, in order, up to the first StoreUnusable (the
    database is away again): the entries after it are not tried, and the list is shorter."""
    outcomes: list[ReplayOutcome | Exception] = []
    index = 0
    while index < len(batch):
        entry = batch[index]
        if entry.status is not None:
            try:
                outcomes.append(
                    record_delivery_status(new_uow(), entry.status, entry.received_at, public_url)
                )
            except Exception as error:
                outcomes.append(error)
            index += 1
        else:
            replies: list[tuple[InboundSms, datetime]] = []
            while (
                index < len(batch)
                and (sms := batch[index].sms) is not None
                and len(replies) < MOST_PER_TRANSACTION
            ):
                replies.append((sms, batch[index].received_at))
                index += 1
            for answer in receive_sms_together(new_uow, replies):
                outcomes.append(answer if isinstance(answer, Exception) else answer.kind)
        if any(isinstance(outcome, StoreUnusable) for outcome in outcomes):
            break
    return outcomes


def kept_answer(body: str, fallback_language: str) -> str | None:
    """What a reply kept for later is answered now, before anyone knows who sent it: nothing
    to an opt-out (nothing more is sent after STOP, and it is applied before anything else
    is), the help text to HELP (carriers require an answer), and to the rest that it will be
    recorded in a moment. In the language of the reply's words when they have one, else in
    `fallback_language` (the deployment's)."""
    reply = read_reply(body)
    language = reply.language if reply.language in LANGUAGES else fallback_language
    words = translator(language)
    if reply.kind == "stop":
        return None
    if reply.kind == "help":
        return help_text(words)
    return words.gettext("dosewise has your reply and will record it in a moment.")
