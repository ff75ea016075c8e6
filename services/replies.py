"""Replies become confirmations: SMS replies, e-mail confirm links and delivery status callbacks.

One function per use case, one transaction each, `now` given by the caller; only inbound SMS
that arrive together may share one (receive_sms_together: a group commit, all or none). Every
effect and its event commit together; the events are appended last because the event log's
writers hold its lock from the first append to the commit (store.events), so it is held briefly.

Which reminder a reply answers: the person's most recent reminder that has gone out (status
queued or sent), is due (due_at <= now) and whose window has not closed (window_closes_at >
now). An older open reminder stays open. A TAKEN (or YES) with no open reminder confirms, late,
the person's most recent reminder that closed without an answer, if it arrives within
LATE_CONFIRMATION of that reminder's due time and before the same supplement's next reminder is
due (late_confirmable); SKIP and LATER after the window record nothing and say so.

Every answer is in the sender's language (i18n): the person's, or for a number no one
enrolled, the language of the reply's words (English when they are of every language).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_decimal
from pydantic import ValidationError

from i18n import DEFAULT_LANGUAGE, Translator, translator
from planner.cold_course import ColdCoursePlan, lozenge_shortfall, plan_cold_course
from planner.plan import PlanRefused
from reports.adherence import ON_TIME_MINUTES
from scheduler.reminders import waking_bounds_around
from schemas.regimen import Regimen
from services.clock import require_aware
from services.logs import error_line
from services.ports import (
    Event,
    EventType,
    PersonRecord,
    StoreUnusable,
    UnitOfWork,
)
from services.reply_ports import (
    ClaimedReply,
    ConfirmToken,
    InboundReply,
    MessageRecord,
    OpenReminder,
    Outcome,
    OutcomeSource,
    ReplyClaim,
    StoredReply,
)
from services.reply_words import (
    MAX_SNOOZE_MINUTES,
    MIN_SNOOZE_MINUTES,
    Reply,
    help_text,
    hint_text,
    read_reply,
)
from services.scheduling import after_quiet_hours, lozenges_given
from services.sending import queue_email_fallback
from services.stored_regimens import ENROL_AGAIN, no_longer_accepted
from services.texts import IRON_DAIRY_GAP, dose_text, doses, sms_safe

log = logging.getLogger("dosewise.tracker")

DEFAULT_SNOOZE_MINUTES = 30
OPT_OUT_SOURCE_SMS = "sms"
OPT_OUT_SOURCE_CARRIER = "twilio"  # Twilio error 21610: the carrier has the person opted out
TWILIO_UNSUBSCRIBED = 21610
# how long after its due time a reminder that closed unanswered may still be confirmed late
LATE_CONFIRMATION = timedelta(hours=12)
# a reminder in these statuses, its window closed, went unanswered (missed, or never sent:
# expired; sent or queued until the scheduler closes it); skipped, confirmed and cancelled
# ones are not confirmed late
UNANSWERED_STATUSES = frozenset({"queued", "sent", "missed", "expired"})

_ANSWERED_WHEN_OPTED_OUT = frozenset({"stop", "start", "help"})
# the words whose effect answers the person's open reminder ("yes" may turn out to be START)
_ANSWER_A_REMINDER = frozenset({"taken", "yes", "skip", "later"})


@dataclass(frozen=True)
class InboundSms:
    provider_id: str  # Twilio's MessageSid
    from_number: str
    body: str


@dataclass(frozen=True)
class SmsAnswer:
    """What to answer in TwiML (None: an empty response) and what the reply was read as."""

    text: str | None
    kind: str
    duplicate: bool = False


@dataclass
class _Reply:
    """One reply being handled: the effects collect their events here."""

    uow: UnitOfWork
    person: PersonRecord
    reply: Reply
    reply_id: int
    now: datetime
    # the person's open reminder, fetched and locked with the claim when the words need one
    reminder: OpenReminder | None
    events: list[Event] = field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.person.details.timezone)

    @property
    def words(self) -> Translator:
        return translator(self.person.details.language)

    def event(self, type_: EventType, **payload: Any) -> None:
        self.events.append(Event(type_, self.person.id, self.now, payload))


def receive_sms(
    uow: UnitOfWork, sms: InboundSms, now: datetime, *, lock_wait: float | None = None
) -> SmsAnswer:
    """Handle one inbound SMS once: a redelivery of its MessageSid gets the stored answer.
    `lock_wait`: how long it may wait for a row lock before the database aborts it
    (StoreConflict); None: as long as it takes."""
    with uow:
        if lock_wait is not None:
            uow.replies.limit_lock_waits(lock_wait)
        handled = _handle_sms(uow, sms, now)
        # in one go, as the last write: the event log serialises its writers (store.events)
        uow.events.append_many(handled.events)
        uow.commit()
    return handled.answer


def receive_sms_together(
    new_uow: Callable[[], UnitOfWork],
    replies: Sequence[tuple[InboundSms, datetime]],
    on_commit: Callable[[int], None] = lambda _replies: None,
) -> list[SmsAnswer | Exception]:
    """Several inbound SMS, each at its own `now`, in one transaction: a group commit (the
    tracker's, for replies that arrive together), all or none. Each reply is still one use
    case with the effects and events of receive_sms; they share a BEGIN and a COMMIT and
    their round trips, about a third of the CPU per reply (bench/webhook.py).

    When any reply fails, or the batch waits for a row lock over BATCH_LOCK_WAIT_S, or the
    database aborts it (StoreConflict: a deadlock), all are rolled back and each is handled
    again in a transaction of its own, so only what is really wrong with one reply fails it.
    Alone, a reply waits ALONE_LOCK_WAIT_S at most: one still held up comes back as its
    StoreConflict, for the caller to handle apart (receive_sms_one_by_one, a longer wait),
    where it holds up no other reply. A database that cannot be used (StoreUnusable) fails
    them all alike, once a second try (a fresh connection) has failed too. The answers, or
    what each raised, in order. `on_commit` hears how many replies each transaction that
    committed held (a metric: a batch that fell back to its replies alone is that many)."""
    if len(replies) == 1:
        return receive_sms_one_by_one(new_uow, replies, ALONE_LOCK_WAIT_S, on_commit)
    # by sender (stably: one sender's replies keep their order), so that two batches lock
    # the same people's rows in the same order and do not deadlock on them
    order = sorted(range(len(replies)), key=lambda index: replies[index][0].from_number)
    try:
        answers = _tried_twice(
            lambda: _receive_in_one_transaction(new_uow(), [replies[i] for i in order]),
            StoreUnusable,  # a conflict (a lock waited for too long) goes reply by reply
        )
    except StoreUnusable as error:
        return [error] * len(replies)
    except Exception as error:  # which reply failed is found by handling each alone
        log.warning("%d replies together failed (%s): each alone", len(replies), error_line(error))
        return receive_sms_one_by_one(new_uow, replies, ALONE_LOCK_WAIT_S, on_commit)
    on_commit(len(replies))
    outcomes: list[SmsAnswer | Exception] = list(answers)
    for position, index in enumerate(order):
        outcomes[index] = answers[position]
    return outcomes


# How long a reply's transaction waits for a row lock (another service's transaction holding
# a reminder): a batch briefly, then its replies one by one more briefly still, so the others
# are not held up by the one; that one is then handled apart, for up to 10 s (Twilio waits
# 15 s for an answer).
BATCH_LOCK_WAIT_S = 0.2
ALONE_LOCK_WAIT_S = 0.05
HELD_UP_LOCK_WAIT_S = 10.0


def _receive_in_one_transaction(
    uow: UnitOfWork, replies: Sequence[tuple[InboundSms, datetime]]
) -> list[SmsAnswer]:
    with uow:
        uow.replies.limit_lock_waits(BATCH_LOCK_WAIT_S)
        read = [(sms, now, read_reply(sms.body)) for sms, now in replies]
        ahead = _claimed_ahead(uow, read)
        handled = [
            _handle_claimed(uow, sms, now, reply, ahead[index])
            if index in ahead
            else _handle_read(uow, sms, now, reply)
            for index, (sms, now, reply) in enumerate(read)
        ]
        # every reply's events after every reply's rows: the event log's writers hold its
        # lock only while they commit (store.events), not while the next reply waits for a row
        uow.events.append_many([event for each in handled for event in each.events])
        uow.commit()
    return [each.answer for each in handled]


def receive_sms_one_by_one(
    new_uow: Callable[[], UnitOfWork],
    replies: Sequence[tuple[InboundSms, datetime]],
    lock_wait: float,
    on_commit: Callable[[int], None] = lambda _replies: None,
) -> list[SmsAnswer | Exception]:
    """Each reply in a transaction of its own (receive_sms), waiting `lock_wait` at most for
    a row lock, and tried once more after a lost connection. The answers, or what each
    raised (StoreConflict for one held up longer), in order; `on_commit(1)` for each that
    committed."""
    return [_alone(new_uow, sms, now, lock_wait, on_commit) for sms, now in replies]


def _alone(
    new_uow: Callable[[], UnitOfWork],
    sms: InboundSms,
    now: datetime,
    lock_wait: float,
    on_commit: Callable[[int], None],
) -> SmsAnswer | Exception:
    try:
        answer = _tried_twice(
            lambda: receive_sms(new_uow(), sms, now, lock_wait=lock_wait), StoreUnusable
        )
    except Exception as error:  # this reply's own failure (or conflict), for its caller
        return error
    on_commit(1)
    return answer


T = TypeVar("T")


def _tried_twice(work: Callable[[], T], *again_after: type[Exception]) -> T:
    """`work`, again once after one of `again_after`: a connection the database dropped (a
    restart, a failover: StoreUnusable) fails the first try, and the pool gives the second a
    fresh one. Safe to repeat: a reply whose commit did land is found by its MessageSid and
    answered as stored."""
    try:
        return work()
    except again_after:
        return work()


@dataclass(frozen=True)
class _Handled:
    answer: SmsAnswer
    events: list[Event]


def _claimed_ahead(
    uow: UnitOfWork, read: Sequence[tuple[InboundSms, datetime, Reply]]
) -> dict[int, ClaimedReply | None]:
    """The claims of each sender's first reply, by position, made together (one round trip):
    they do not depend on each other. A sender's later replies are claimed in turn, after
    what the earlier ones did (a TAKEN confirms the reminder a second TAKEN would find)."""
    firsts: dict[str, int] = {}
    for index, (sms, _now, _reply) in enumerate(read):
        firsts.setdefault(sms.from_number, index)
    claims = [_claim(*read[index]) for index in firsts.values()]
    return dict(zip(firsts.values(), uow.replies.claim_together(claims), strict=True))


def _claim(sms: InboundSms, now: datetime, reply: Reply) -> ReplyClaim:
    return ReplyClaim(
        InboundReply(sms.provider_id, sms.from_number, sms.body, reply.kind),
        require_aware(now),
        with_open_reminder=reply.kind in _ANSWER_A_REMINDER,
    )


def _handle_sms(uow: UnitOfWork, sms: InboundSms, now: datetime) -> _Handled:
    """One inbound SMS in the caller's transaction: its answer and the events to append."""
    return _handle_read(uow, sms, now, read_reply(sms.body))


def _handle_read(uow: UnitOfWork, sms: InboundSms, now: datetime, reply: Reply) -> _Handled:
    claim = _claim(sms, now, reply)
    claimed = uow.replies.claim(claim.reply, now, with_open_reminder=claim.with_open_reminder)
    return _handle_claimed(uow, sms, now, reply, claimed)


def _handle_claimed(
    uow: UnitOfWork, sms: InboundSms, now: datetime, reply: Reply, claimed: ClaimedReply | None
) -> _Handled:
    """The rest of _handle_sms once the reply is claimed (None: its MessageSid was stored)."""
    if claimed is None:
        stored = uow.replies.stored(sms.provider_id)
        if stored is None:  # pragma: no cover - the conflicting row exists by definition
            raise RuntimeError(f"reply {sms.provider_id} neither claimed nor stored")
        return _Handled(SmsAnswer(_replayed(uow, sms, stored), stored.kind, duplicate=True), [])
    person = claimed.person
    kind: str = reply.kind
    text: str | None
    events: list[Event] = []
    if person is None:
        kind, text = _unknown_number(uow, sms.from_number, reply, claimed.id)
    else:
        handling = _Reply(uow, person, reply, claimed.id, now, claimed.open_reminder)
        kind, text = _answer(handling)
        events = handling.events
    if text is not None:
        text = sms_safe(text)  # an answer by SMS, like the reminders: "mcg", not "µg"
    uow.replies.set_answer(claimed.id, kind, text)
    received = Event(
        "ReplyReceived",
        None if person is None else person.id,
        now,
        {"reply_id": claimed.id, "kind": kind},
    )
    return _Handled(SmsAnswer(text, kind), [received, *events])


def _replayed(uow: UnitOfWork, sms: InboundSms, stored: StoredReply) -> str | None:
    """The stored answer for a redelivered reply, unless the person has opted out since:
    after STOP nothing goes to them but HELP's answer (and the STOP family's own)."""
    if stored.answer is None or stored.kind in _ANSWERED_WHEN_OPTED_OUT:
        return stored.answer
    person = uow.people.by_phone(sms.from_number)
    return None if person is not None and person.opted_out else stored.answer


def _unknown_number(
    uow: UnitOfWork, phone: str, reply: Reply, reply_id: int
) -> tuple[str, str | None]:
    """(the kind the reply is stored as, the answer) for a number no one enrolled: its STOP and
    START are kept, for whoever enrols it later (services.enrolment). The answer is in the
    language of the reply's words, the default one for words of every language."""
    words = translator(reply.language or DEFAULT_LANGUAGE)
    # someone who says STOP gets no message, not even from a number we do not know; HELP is
    # answered whoever asks (carriers require it)
    if reply.kind == "stop":
        return reply.kind, None
    if reply.kind == "help":
        return reply.kind, help_text(words)
    # YES right after STOP is START, as for an enrolled number
    stopped = reply.kind == "yes" and uow.replies.stopped_while_unknown(phone, reply_id) is not None
    if reply.kind == "start" or stopped:
        return "start", words.gettext(
            "This number is not enrolled with dosewise. Noted: if it is enrolled, it will get "
            "dosewise reminders."
        )
    return reply.kind, words.gettext(
        "This number is not enrolled with dosewise, so nothing was recorded."
    )


def _answer(handling: _Reply) -> tuple[str, str | None]:
    """(the kind the reply is stored as, the answer): the STOP family is read first."""
    kind = handling.reply.kind
    opted_out = handling.person.opted_out
    if kind == "stop":
        return kind, _stop(handling)
    if kind == "start" or (kind == "yes" and opted_out):
        return "start", _start(handling)
    if kind == "help":
        # carriers require HELP to be answered, opted out or not
        return kind, help_text(handling.words)
    meaning = "taken" if kind == "yes" else kind
    if opted_out:
        return meaning, None  # no messages of any kind until START
    return meaning, _EFFECTS[meaning](handling)


def _stop(handling: _Reply) -> str | None:
    opted_out = opt_out(handling.uow, handling.person.id, OPT_OUT_SOURCE_SMS, handling.now)
    if opted_out is None:
        return None  # already opted out: nothing more is sent, not this either
    handling.events.append(opted_out)
    return handling.words.gettext(
        "You will get no more messages from dosewise. Reply START to resume."
    )


def opt_out(uow: UnitOfWork, person_id: int, source: str, now: datetime) -> Event | None:
    """Opt the person out in the caller's transaction: the OptedOut event for the caller to
    append, or None when they already were opted out."""
    if not uow.replies.opt_out(person_id, source, now):
        return None
    return Event("OptedOut", person_id, now, {"source": source})


def _start(handling: _Reply) -> str:
    if not handling.uow.replies.opt_in(handling.person.id, handling.now):
        return handling.words.gettext("You are already receiving dosewise reminders.")
    handling.event("OptedIn")
    return handling.words.gettext("Welcome back: dosewise reminders resume.")


def _no_open_reminder(words: Translator) -> str:
    return words.gettext(
        "There is no reminder waiting for an answer right now, so nothing was recorded."
    )


def _take_or_skip(words: Translator) -> str:
    return words.gettext("Reply TAKEN or SKIP when you can.")


def _taken(handling: _Reply) -> str:
    reminder = handling.reminder
    if reminder is None:
        return _taken_late(handling)
    at = _taken_at(handling, reminder)
    _record(handling.uow, reminder, "taken", handling.now, "sms", handling.reply_id, at)
    handling.event("DoseConfirmed", reminder_id=reminder.id, at=at.isoformat())
    return taken_text(reminder, at, handling.zone, handling.words, handling.now)


def _taken_late(handling: _Reply) -> str:
    """A TAKEN with no open reminder: the reminder it confirms late (late_confirmable), or
    nothing recorded."""
    uow, now = handling.uow, handling.now
    recent = uow.replies.recent_reminders(handling.person.id, now - LATE_CONFIRMATION, now)
    candidate = late_confirmable(recent, now)
    # locked, and read again: a TAKEN or the scheduler may have changed it meanwhile
    reminder = None if candidate is None else uow.replies.reminder_for_update(candidate.id)
    if reminder is None or late_confirmable([reminder], now) is None:
        return _no_open_reminder(handling.words)
    at = _taken_at(handling, reminder)
    _record(uow, reminder, "taken", now, "sms", handling.reply_id, at)
    handling.event("DoseConfirmed", reminder_id=reminder.id, at=at.isoformat(), late=True)
    return late_taken_text(reminder, at, handling.zone, handling.words, now)


def late_confirmable(recent: Sequence[OpenReminder], now: datetime) -> OpenReminder | None:
    """The reminder a TAKEN with no open reminder confirms late: of `recent` (the person's
    reminders due up to `now`, newest first, none cancelled), the most recent whose window
    closed unanswered, if it was due within LATE_CONFIRMATION and no reminder of one of its
    supplements came due after it. None when there is no such reminder: nothing is guessed."""
    for index, reminder in enumerate(recent):
        unanswered = reminder.status in UNANSWERED_STATUSES and not reminder.answered
        if not unanswered or reminder.window_closes_at > now:
            continue
        if now - reminder.due_at > LATE_CONFIRMATION:
            return None
        supplements = _supplements(reminder)
        if any(supplements & _supplements(newer) for newer in recent[:index]):
            return None  # the same supplement's next reminder is due: which dose was taken?
        return reminder
    return None


def _supplements(reminder: OpenReminder) -> set[str]:
    return {str(item.get("supplement")) for item in reminder.items}


def _taken_at(handling: _Reply, reminder: OpenReminder) -> datetime:
    """When the dose was taken: the time the reply says ("taken at 8"), when one reading of it
    lies between the reminder's due time and now (the latest such), else the reply's instant."""
    said, now = handling.reply.said, handling.now
    if said is None:
        return now
    today = now.astimezone(handling.zone).date()
    readings = [
        datetime.combine(day, time(hour, said.minute), handling.zone)
        for day in (today, today - timedelta(days=1))
        for hour in said.hours_of_day()
    ]
    fitting = [at for at in readings if reminder.due_at <= at <= now]
    return max(fitting).astimezone(now.tzinfo) if fitting else now


def _skip(handling: _Reply) -> str:
    reminder = handling.reminder
    if reminder is None:
        return _no_open_reminder(handling.words)
    _record(handling.uow, reminder, "skipped", handling.now, "sms", handling.reply_id)
    handling.event("DoseSkipped", reminder_id=reminder.id)
    return skipped_text(reminder, handling.words)


def _later(handling: _Reply) -> str:
    words = handling.words
    if not handling.reply.snooze_minutes_valid:
        return words.gettext(
            "LATER takes {low} to {high} minutes (LATER 20: in 20 minutes), so nothing was "
            "changed.",
            low=MIN_SNOOZE_MINUTES,
            high=MAX_SNOOZE_MINUTES,
        )
    minutes = handling.reply.minutes or DEFAULT_SNOOZE_MINUTES
    reminder = handling.reminder
    if reminder is None:
        return _no_open_reminder(words)
    current = handling.uow.regimens.current(handling.person.id)
    if current is None:
        no_regimen = words.gettext(
            "dosewise has no regimen for you, so it will not remind you again."
        )
        return f"{no_regimen} {_take_or_skip(words)}"
    try:
        regimen = current.regimen()
    except ValidationError as error:  # the scheduler would drop the snooze: promise none
        _log_not_accepted(handling, error, "no reminder will come again for this dose")
        refused = words.gettext(
            "Today's rules refuse your stored regimen: no reminder will come again for this "
            "dose. Enrol it again ({command}).",
            command=ENROL_AGAIN,
        )
        return f"{refused} {_take_or_skip(words)}"
    return _snooze(handling, reminder, regimen, minutes)


def _snooze(handling: _Reply, reminder: OpenReminder, regimen: Regimen, minutes: int) -> str:
    """The Snoozed event and its answer, or why no reminder can come again."""
    words = handling.words
    asked = handling.now + timedelta(minutes=minutes)
    # what the scheduler will do with the Snoozed event (services.scheduling): the re-send
    # waits for the end of quiet hours, and is dropped once the dose's window has closed
    again = after_quiet_hours(regimen, asked)
    unable = _cannot_remind_at(handling, reminder, regimen, minutes, asked, again)
    if unable is not None:
        # promise only what the scheduler will send
        return f"{unable} {_take_or_skip(words)}"
    handling.event("Snoozed", reminder_id=reminder.id, minutes=minutes)
    if again > asked:
        return words.gettext(
            "OK: your quiet hours last until {time}, so dosewise will remind you again at {time}.",
            time=_clock(again, handling.zone, handling.now, words),
        )
    return words.ngettext(
        "OK: dosewise will remind you again in {n} minute.",
        "OK: dosewise will remind you again in {n} minutes.",
        minutes,
    )


def _cannot_remind_at(
    handling: _Reply,
    reminder: OpenReminder,
    regimen: Regimen,
    minutes: int,
    asked: datetime,
    again: datetime,
) -> str | None:
    """Why no reminder can go at `again` (`asked`, after quiet hours), and that none will:
    after the dose's window has closed, or outside waking hours."""
    zone, now, words = handling.zone, handling.now, handling.words
    if again >= reminder.window_closes_at:
        closes = _clock(reminder.window_closes_at, zone, now, words)
        if again > asked:
            return words.gettext(
                "Your quiet hours last until {quiet} and this dose's reminder closes at "
                "{closes}: no reminder will come again for it.",
                quiet=_clock(again, zone, now, words),
                closes=closes,
            )
        return words.ngettext(
            "This dose's reminder closes at {closes}, before a reminder in {n} minute could "
            "go: no reminder will come again for it.",
            "This dose's reminder closes at {closes}, before a reminder in {n} minutes could "
            "go: no reminder will come again for it.",
            minutes,
            closes=closes,
        )
    awake_from, awake_to = waking_bounds_around(regimen, again)
    if not awake_from <= again <= awake_to:
        return words.gettext(
            "{time} is outside your waking hours: no reminder will come again for this dose.",
            time=_clock(again, zone, now, words),
        )
    return None


def _cold(handling: _Reply) -> str:
    uow, person, now, words = handling.uow, handling.person, handling.now, handling.words
    running = uow.replies.running_cold_course(person.id, now)
    if running is not None:
        return words.gettext(
            "Your zinc cold course is already running (since {time}). Reply WELL when better.",
            time=_clock(running.onset_at, handling.zone, now, words),
        )
    current = uow.regimens.current(person.id)
    if current is None:
        return words.gettext("dosewise has no regimen for you yet, so no cold course was started.")
    try:
        regimen = current.regimen()
    except ValidationError as error:  # no lozenge could be planned from it
        _log_not_accepted(handling, error, "no cold course was started")
        return words.gettext(
            "Today's rules refuse your stored regimen: no cold course was started. Enrol it "
            "again with a corrected file ({command}).",
            command=ENROL_AGAIN,
        )
    # an earlier course's lozenges today (COLD after WELL) count against today's limit
    given = lozenges_given(uow.scheduling, person.id, now)
    try:
        course = plan_cold_course(regimen, now.astimezone(handling.zone), given=given)
    except PlanRefused as refusal:
        return words.gettext(
            "dosewise could not start a cold course: {reason}.", reason=refusal.reason
        )
    if not course.doses:
        return words.gettext(
            "dosewise found no waking time for a zinc lozenge, so no cold course was started."
        )
    course_id = uow.replies.start_cold_course(person.id, now, course.ends)
    handling.event("ColdOnset", cold_course_id=course_id, onset_at=now.isoformat())
    first = course.doses[0]
    started = words.gettext(
        "Get well soon. Zinc cold course started: first {dose} lozenge at {time}, {days}.",
        dose=dose_text(first.dose, words.language),
        time=_clock(first.at, handling.zone, now, words),
        days=_course_days(course, regimen, now, words),
    )
    well = words.gettext("Reply WELL when you feel better.")
    return " ".join(part for part in (started, _fewer_fit(course, regimen, words), well) if part)


def _fewer_fit(course: ColdCoursePlan, regimen: Regimen, words: Translator) -> str:
    """A note when no day gets the lozenges the policy asks for: the person should know the
    course is lighter than planned (the plan's warning says why)."""
    short = lozenge_shortfall(regimen, course.doses)
    if short is None:
        return ""
    daily = _number(short.daily_mg, words)
    if short.below_studied:
        low, high = short.studied_mg
        return words.ngettext(
            "Only {n} lozenge a day fits around your other doses ({daily} mg of zinc a day; "
            "the studies used {low}-{high} mg).",
            "Only {n} lozenges a day fit around your other doses ({daily} mg of zinc a day; "
            "the studies used {low}-{high} mg).",
            short.per_day,
            daily=daily,
            low=_number(low, words),
            high=_number(high, words),
        )
    return words.ngettext(
        "Only {n} lozenge a day fits around your other doses ({daily} mg of zinc a day).",
        "Only {n} lozenges a day fit around your other doses ({daily} mg of zinc a day).",
        short.per_day,
        daily=daily,
    )


def _number(value: Decimal, words: Translator) -> str:
    """A number as the reader writes it ("42,5" in Danish), without grouping."""
    return format_decimal(value.normalize(), locale=words.language, group_separator=False)


def _log_not_accepted(handling: _Reply, error: ValidationError, undone: str) -> None:
    """The person's stored regimen is refused today (services.stored_regimens): the log says
    which rule refuses it; the answer says what was not done and how to put it right."""
    log.warning("person %s: %s: %s", handling.person.id, undone, no_longer_accepted(error))


def _course_days(course: ColdCoursePlan, regimen: Regimen, now: datetime, words: Translator) -> str:
    """How many lozenges the course plans a day, as planned: quiet hours or a late onset can
    leave the first day (and the last) with fewer than lozenges_per_day."""
    per_day = list(Counter(dose.day for dose in course.doses).values())  # in course order
    days = regimen.policy.cold_course_days
    if len(set(per_day)) == 1:
        return words.ngettext(
            "{per_day} a day for {n} day", "{per_day} a day for {n} days", days, per_day=per_day[0]
        )
    zone = ZoneInfo(regimen.person.timezone)
    first_day = course.doses[0].at.astimezone(zone).date()
    if first_day == now.astimezone(zone).date():
        first = words.gettext("{count} today", count=per_day[0])
    else:
        weekday = _weekday(first_day, words)
        first = words.gettext("{count} on {weekday}", count=per_day[0], weekday=weekday)
    rest = per_day[1:]
    if len(set(rest)) == 1:
        after = words.gettext("{count} a day", count=rest[0])
    else:
        after = words.gettext("up to {count} a day", count=max(rest))
    return words.ngettext(
        "{first}, then {after}: {total} in all over {n} day",
        "{first}, then {after}: {total} in all over {n} days",
        days,
        first=first,
        after=after,
        total=len(course.doses),
    )


def _well(handling: _Reply) -> str:
    uow, now, words = handling.uow, handling.now, handling.words
    running = uow.replies.running_cold_course(handling.person.id, now)
    if running is None:
        return words.gettext("No zinc cold course is running, so there was nothing to end.")
    uow.replies.end_cold_course(running.id, now)
    handling.event("ColdEnded", cold_course_id=running.id, ended_at=now.isoformat())
    return words.gettext("Glad you are better: the zinc cold course has ended.")


def _unparsed(handling: _Reply) -> str:
    return hint_text(handling.words)


_EFFECTS: dict[str, Callable[[_Reply], str]] = {
    "taken": _taken,
    "skip": _skip,
    "later": _later,
    "cold": _cold,
    "well": _well,
    "unparsed": _unparsed,
}


def _record(
    uow: UnitOfWork,
    reminder: OpenReminder,
    outcome: Outcome,
    now: datetime,
    source: OutcomeSource,
    reply_id: int | None,
    taken_at: datetime | None = None,
) -> None:
    uow.replies.record_outcome(reminder, outcome, now, source, reply_id, taken_at)


# -- answers ---------------------------------------------------------------------------------


def taken_text(
    reminder: OpenReminder, at: datetime, zone: ZoneInfo, words: Translator, now: datetime
) -> str:
    """'Iron logged at 11:42. Dairy, calcium and medicines from 14:42.' for a slot with iron."""
    when = _clock(at, zone, now, words)
    if _has_iron(reminder):
        return words.gettext(
            "Iron logged at {time}. Dairy, calcium and medicines from {after}.",
            time=when,
            after=_clock(at + IRON_DAIRY_GAP, zone, now, words),
        )
    return words.gettext("Logged at {time}: {doses}.", time=when, doses=describe(reminder, words))


def late_taken_text(
    reminder: OpenReminder, at: datetime, zone: ZoneInfo, words: Translator, now: datetime
) -> str:
    """'Noted: iron 18 mg taken late, at 22:09 (the 21:00 reminder).': which dose a TAKEN
    after its window was recorded for, and when; late unless the time it says was on time."""
    values = {
        "doses": describe(reminder, words),
        "time": _clock(at, zone, now, words),
        "due": _clock(reminder.due_at, zone, now, words),
    }
    if at > reminder.due_at + timedelta(minutes=ON_TIME_MINUTES):
        text = words.gettext("Noted: {doses} taken late, at {time} (the {due} reminder).", **values)
    else:
        text = words.gettext("Noted: {doses} taken at {time} (the {due} reminder).", **values)
    if not _has_iron(reminder):
        return text
    dairy = words.gettext(
        "Dairy, calcium and medicines from {after}.",
        after=_clock(at + IRON_DAIRY_GAP, zone, now, words),
    )
    return f"{text} {dairy}"


def skipped_text(reminder: OpenReminder, words: Translator) -> str:
    return words.gettext(
        "Skipped: {doses}. Noted, no more reminders for this dose.",
        doses=describe(reminder, words),
    )


def describe(reminder: OpenReminder, words: Translator) -> str:
    """The reminder's doses as its reader writes them ('jern 18 mg + C-vitamin 250 mg')."""
    return doses(reminder.items, words.language) or words.gettext("this dose")


def _has_iron(reminder: OpenReminder) -> bool:
    return any(item.get("supplement") == "iron" for item in reminder.items)


def _clock(instant: datetime, zone: ZoneInfo, today: datetime, words: Translator) -> str:
    """HH:MM in the person's zone, with the day when it is not the day of `today` there."""
    local = instant.astimezone(zone)
    hours_minutes = f"{local:%H:%M}"
    if local.date() == today.astimezone(zone).date():
        return hours_minutes
    # the catalogue holds each language's date pattern (CLDR): "Tuesday 24 November"
    day = format_date(local.date(), words.gettext("EEEE d MMMM"), locale=words.language)
    return words.gettext("{time} on {day}", time=hours_minutes, day=day)


def _weekday(day: date, words: Translator) -> str:
    return format_date(day, "EEEE", locale=words.language)


# -- e-mail fallback -------------------------------------------------------------------------


def _fall_back_by_email(
    uow: UnitOfWork, message: MessageRecord, now: datetime, public_url: str
) -> None:
    """A reminder SMS the carrier could not deliver goes again by e-mail, the same e-mail the
    notifier sends for one the provider refused (services.sending.queue_email_fallback: its
    own confirm and skip links; nothing once the dose is answered or without an address),
    while its window is open and the person has not opted out, once."""
    failed = message.outbox
    if failed.channel != "sms" or failed.reminder_id is None:
        return
    if failed.not_after is not None and now >= failed.not_after:
        return
    person = uow.people.get(failed.person_id)
    if person is None or person.opted_out:
        return
    # locked first, so a TAKEN committing meanwhile is seen, not raced
    uow.replies.reminder_for_update(failed.reminder_id)
    queue_email_fallback(uow, failed, now, public_url)


# -- e-mail confirm links --------------------------------------------------------------------

LinkStatus = Literal["open", "recorded", "used", "expired", "unknown", "closed"]


@dataclass(frozen=True)
class LinkOutcome:
    """What a confirm link found: `open` (a preview: the dose still takes an answer) or what
    recording did, with a text for the page."""

    status: LinkStatus
    text: str
    # the language `text` is in: the person's, the default one for a link that names no one
    language: str = DEFAULT_LANGUAGE


def hash_token(token: str) -> str:
    """Only the hash is stored, so a database dump holds no usable links."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def confirm_link_preview(uow: UnitOfWork, token: str, now: datetime) -> LinkOutcome:
    """What opening a confirm link shows, recording nothing (mail scanners open links too):
    `open` with the dose and its time when a press of the page's buttons would record it,
    else the same status recording would give (used, expired, closed, unknown)."""
    require_aware(now)
    with uow:
        found = uow.replies.confirm_token(hash_token(token))
        if found is None:
            return _unknown_link()
        reminder = uow.replies.reminder_for_update(found.reminder_id)
        person = None if reminder is None else uow.people.get(reminder.person_id)
        language = DEFAULT_LANGUAGE if person is None else person.details.language
        words = translator(language)
        stale = _stale_link(found, now, words, language)
        if stale is not None:
            return stale
        if reminder is None or person is None or reminder.status not in ("queued", "sent"):
            text = words.gettext("This dose was already answered; nothing more was recorded.")
            return LinkOutcome("closed", text, language)
        zone = ZoneInfo(person.details.timezone)
        text = words.gettext(
            "Time to take {doses} ({time}).",
            doses=describe(reminder, words),
            time=_clock(reminder.due_at, zone, now, words),
        )
        return LinkOutcome("open", text, language)


def _unknown_link() -> LinkOutcome:
    unknown = translator(DEFAULT_LANGUAGE).gettext("This link is not one dosewise sent.")
    return LinkOutcome("unknown", unknown)


def _stale_link(
    found: ConfirmToken, now: datetime, words: Translator, language: str
) -> LinkOutcome | None:
    """A used or expired link's outcome; None for one that may still record."""
    if found.used_at is not None:
        text = words.gettext("This link was already used; nothing more was recorded.")
        return LinkOutcome("used", text, language)
    if found.expires_at <= now:
        text = words.gettext("This link has expired; nothing was recorded.")
        return LinkOutcome("expired", text, language)
    return None


def confirm_by_link(uow: UnitOfWork, token: str, outcome: Outcome, now: datetime) -> LinkOutcome:
    """Record the outcome a confirm link's page was answered with, once; a used or stale link
    records nothing. The text is in the language of the person the link's reminder is for."""
    require_aware(now)
    with uow:
        found = uow.replies.confirm_token(hash_token(token))
        if found is None:
            return _unknown_link()
        reminder = uow.replies.reminder_for_update(found.reminder_id)
        person = None if reminder is None else uow.people.get(reminder.person_id)
        language = DEFAULT_LANGUAGE if person is None else person.details.language
        words = translator(language)
        stale = _stale_link(found, now, words, language)
        if stale is not None:
            return stale
        if reminder is None or person is None or reminder.status not in ("queued", "sent"):
            uow.replies.use_confirm_token(found.id, now)
            uow.commit()
            text = words.gettext("This dose was already answered; nothing more was recorded.")
            return LinkOutcome("closed", text, language)
        _record(uow, reminder, outcome, now, "email", None)
        uow.replies.use_confirm_token(found.id, now)
        zone = ZoneInfo(person.details.timezone)
        if outcome == "taken":
            text = taken_text(reminder, now, zone, words, now)
            event = Event(
                "DoseConfirmed", person.id, now, {"reminder_id": reminder.id, "at": now.isoformat()}
            )
        else:
            text = skipped_text(reminder, words)
            event = Event("DoseSkipped", person.id, now, {"reminder_id": reminder.id})
        uow.events.append_many([event])
        uow.commit()
    return LinkOutcome("recorded", text, language)


# -- delivery status callbacks ---------------------------------------------------------------

DeliveryOutcome = Literal["unknown", "updated", "unchanged"]

# Twilio's MessageStatus values we act on; the others (queued, accepted, sending, ...) are
# steps before the notifier's own "sent" and change nothing here
_STATUS_MAP = {
    "sent": "sent",
    "delivered": "delivered",
    "failed": "failed",
    "undelivered": "failed",
}
_FINAL = frozenset({"delivered", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class DeliveryStatus:
    provider_id: str  # MessageSid
    status: str  # MessageStatus
    error_code: int | None


def record_delivery_status(
    uow: UnitOfWork, report: DeliveryStatus, now: datetime, public_url: str
) -> DeliveryOutcome:
    """Move the message along; a final failure raises DeliveryFailed and queues the reminder
    by e-mail when the person has an address (as the notifier does), 21610 opts out."""
    require_aware(now)
    new_status = _STATUS_MAP.get(report.status.strip().lower())
    with uow:
        message = uow.replies.message_by_provider_id(report.provider_id)
        if message is None:
            return "unknown"
        events: list[Event] = []
        if report.error_code == TWILIO_UNSUBSCRIBED:
            opted_out = opt_out(uow, message.person_id, OPT_OUT_SOURCE_CARRIER, now)
            if opted_out is not None:
                events.append(opted_out)
        changes = new_status is not None and new_status != message.status
        # callbacks arrive out of order: a final state is never left for an earlier one
        if changes and message.status not in _FINAL:
            code = None if report.error_code is None else str(report.error_code)
            uow.replies.set_message_status(message.id, new_status or message.status, code, now)
            if new_status == "failed":
                payload = {
                    "message_id": message.id,
                    "reminder_id": message.reminder_id,
                    "error_code": report.error_code,
                }
                events.append(Event("DeliveryFailed", message.person_id, now, payload))
                if report.error_code != TWILIO_UNSUBSCRIBED:  # opted out: nothing more goes
                    _fall_back_by_email(uow, message, now, public_url)
        else:
            changes = False
        uow.events.append_many(events)
        uow.commit()
    return "updated" if changes or events else "unchanged"
