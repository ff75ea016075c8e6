"""The scheduler's use cases: reminders materialised, events acted on, messages handed off.

Each public function is one transaction (one unit of work) and is given `now`; the database
is the source of truth, so each can run any number of times and from any process: the
reminders' and the outbox's unique keys make a repeated run write nothing new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from planner.plan import PlanRefused
from scheduler.reminders import (
    ReminderTiming,
    dose_reminders,
    lozenge_reminders,
    waking_bounds_around,
)
from schemas.regimen import Regimen
from services.clock import quiet_end, require_aware
from services.logs import error_line
from services.ports import (
    RecordedEvent,
    ReminderPlan,
    StoreConflict,
    StoreUnusable,
    UnitOfWork,
)
from services.reply_ports import ANSWERABLE_STATUSES
from services.scheduling_ports import (
    ConfirmToken,
    OutgoingMessage,
    Plannable,
    RemindedDose,
    ScheduledReminder,
    SchedulingRepository,
)
from services.stored_regimens import no_longer_accepted
from services.texts import Purpose, email_text, pack_email, sms_body

log = logging.getLogger(__name__)

CONSUMER = "scheduler"
HORIZON = timedelta(hours=48)
DEFAULT_SNOOZE_MINUTES = 30
BATCH = 500


@dataclass(frozen=True)
class SchedulerConfig:
    public_url: str = "http://127.0.0.1:8000"
    horizon: timedelta = HORIZON
    timing: ReminderTiming = field(default_factory=ReminderTiming)


@dataclass
class PlanCache:
    """Day plans depend on the regimen's rules and times, not on who the person is: plan each
    distinct regimen once per run and copy its reminders to everyone who shares it.

    Each regimen is planned from the start of the person's current local day, not from
    `start`: a dose is "the n-th dose of a supplement on a local day", and only the whole
    day's plan says which n a reminder ahead stands for (see not_yet_reminded)."""

    start: datetime
    end: datetime
    timing: ReminderTiming
    _plans: dict[str, list[ReminderPlan]] = field(default_factory=dict)
    _refusals: dict[str, list[str]] = field(default_factory=dict)

    def reminders(
        self, who: Plannable, reminded: Sequence[RemindedDose] = ()
    ) -> tuple[list[ReminderPlan], list[str]]:
        """The person's reminders due in [start, end), less the doses `reminded` stood for."""
        key = _planning_key(who.body)
        if key not in self._plans:
            try:
                regimen = Regimen.model_validate(who.body)
            except ValidationError as error:
                # stored by an earlier dosewise whose rules let it in: plan nothing rather than
                # guess, and say why, instead of failing everyone's materialisation
                self._plans[key], self._refusals[key] = [], [no_longer_accepted(error)]
            else:
                zone = ZoneInfo(regimen.person.timezone)
                today = datetime.combine(self.start.astimezone(zone).date(), time(0), tzinfo=zone)
                start = today.astimezone(UTC)
                made = dose_reminders(0, None, regimen, start, self.end, self.timing)
                self._plans[key], self._refusals[key] = made.reminders, made.refusals
        plans = [
            replace(plan, person_id=who.person_id, regimen_id=who.regimen_id)
            for plan in not_yet_reminded(self._plans[key], reminded)
            if plan.due_at >= self.start
        ]
        return plans, self._refusals[key]


# the reminders that may have gone out on the person's current local day (and the next): a
# local day starts less than 26 hours before any instant in it, whatever the zone and DST
REMINDED_LOOKBACK = timedelta(hours=26)


def not_yet_reminded(
    plans: Sequence[ReminderPlan], reminded: Sequence[RemindedDose]
) -> list[ReminderPlan]:
    """The plans with the doses a reminder already went out for taken away (whole reminders
    when nothing of them is left).

    The same dose, when a changed regimen moves its time: the n-th dose of a supplement on the
    local day of the slot key (its "YYYY-MM-DD#" prefix), counted in time order over the whole
    day, both in the plans and in the reminders that went out. A lozenge is its own slot key
    (the course's dose number). So biotin moved from 13:02 to 13:30 after the 13:02 reminder
    was confirmed is not reminded again, and with two magnesium doses a day, one taken, the
    other is still reminded.
    """
    gone = _dose_keys(reminded)
    if not gone:
        return list(plans)
    wanted: list[ReminderPlan] = []
    for plan, keys in zip(plans, _plan_dose_keys(plans), strict=True):
        left = [item for item, dose in zip(plan.items, keys, strict=True) if dose not in gone]
        if len(left) == len(plan.items):
            wanted.append(plan)
        elif left and plan.kind == "dose":
            day = plan.slot_key.split("#", 1)[0]
            key = f"{day}#" + "+".join(str(item.get("supplement")) for item in left)
            wanted.append(replace(plan, items=left, slot_key=key))
    return wanted


_DoseKey = tuple[str, str, int]


def _dose_keys(reminded: Sequence[RemindedDose]) -> set[_DoseKey]:
    ordered = sorted(reminded, key=lambda dose: dose.due_at)
    return {key for keys in _keys_in_order(ordered) for key in keys}


def _plan_dose_keys(plans: Sequence[ReminderPlan]) -> list[list[_DoseKey]]:
    order = sorted(range(len(plans)), key=lambda index: plans[index].due_at)
    keys = _keys_in_order([plans[index] for index in order])
    by_index: list[list[_DoseKey]] = [[] for _ in plans]
    for position, index in enumerate(order):
        by_index[index] = keys[position]
    return by_index


def _keys_in_order(reminders: Sequence[ReminderPlan | RemindedDose]) -> list[list[_DoseKey]]:
    """Each reminder's items as doses: (day, supplement, n) for the n-th of the day, or the
    lozenge's slot key; `reminders` in due order."""
    seen: dict[tuple[str, str], int] = {}
    keys: list[list[_DoseKey]] = []
    for reminder in reminders:
        if reminder.kind != "dose":
            keys.append([(reminder.slot_key, "", 0)] * len(reminder.items))
            continue
        day = reminder.slot_key.split("#", 1)[0]
        mine: list[_DoseKey] = []
        for item in reminder.items:
            supplement = str(item.get("supplement"))
            seen[day, supplement] = number = seen.get((day, supplement), 0) + 1
            mine.append((day, supplement, number))
        keys.append(mine)
    return keys


def _planning_key(body: Any) -> str:
    person = body.get("person") if isinstance(body, dict) else None
    if not isinstance(person, dict):
        # not a regimen at all (a stored body no dosewise wrote): refused when validated
        return json.dumps(body, sort_keys=True, default=str)
    planning = {key: value for key, value in body.items() if key != "person"}
    # the person's name, phone and channel do not move a dose; zone, waking and quiet do
    planning["person"] = {key: person.get(key) for key in ("timezone", "waking", "quiet")}
    return json.dumps(planning, sort_keys=True, default=str)


@dataclass(frozen=True)
class Materialised:
    people: int
    reminders: int
    refusals: list[str]


def materialise(
    uow: UnitOfWork, now: datetime, config: SchedulerConfig = SchedulerConfig()
) -> Materialised:
    """Reminders for the next `horizon` of every active, opted-in person, and lozenges of the
    running cold courses; rows already there are refreshed only while still planned."""
    require_aware(now)
    cache = PlanCache(now, now + config.horizon, config.timing)
    with uow:
        repo = uow.scheduling
        people = repo.plannable()
        reminded: dict[int, list[RemindedDose]] = {}
        for dose in repo.reminded(now - REMINDED_LOOKBACK):
            reminded.setdefault(dose.person_id, []).append(dose)
        wanted: list[ReminderPlan] = []
        refusals: list[str] = []
        for who in people:
            plans, refused = cache.reminders(who, reminded.get(who.person_id, ()))
            wanted += plans
            refusals += [f"person {who.person_id}: {reason}" for reason in refused]
        by_person = {who.person_id: who for who in people}
        for course in repo.running_courses(now):
            if course.person_id in by_person:
                lozenges = _lozenges(
                    repo, by_person[course.person_id], course.id, course.onset_at, now, config
                )
                wanted += not_yet_reminded(lozenges, reminded.get(course.person_id, ()))
        repo.save_reminders(wanted, now)
        uow.commit()
    return Materialised(len(people), len(wanted), refusals)


def consume_events(
    uow: UnitOfWork,
    now: datetime,
    config: SchedulerConfig = SchedulerConfig(),
    limit: int = 100,
) -> int:
    """Act on up to `limit` unseen events in one transaction with the cursor; how many.

    An event whose handling fails must not stop every later one: the events are then taken
    one at a time, and one that fails alone too is passed over, its error logged. Not when
    the database cannot be used or aborted the transaction (StoreUnusable, StoreConflict:
    raised, and the events wait for the next try)."""
    require_aware(now)
    handling = _Handling(now, config)
    try:
        return handling.consume(uow, limit)
    except (StoreUnusable, StoreConflict):
        raise
    except Exception as error:  # which event failed is found by taking them one at a time
        if limit > 1:
            log.warning("events failed together (%s): one at a time", error_line(error))
    try:
        return handling.consume(uow, 1)
    except (StoreUnusable, StoreConflict):
        raise
    except Exception as error:  # that event fails alone: its effect cannot be had
        if handling.failed is None:
            raise  # not an event's handling: the cursor's own
        return _pass_over(uow, handling.failed, error)


class _Handling:
    """The scheduler's handler over one consumption, noting the event it failed on."""

    def __init__(self, now: datetime, config: SchedulerConfig) -> None:
        self._now, self._config = now, config
        self.failed: RecordedEvent | None = None

    def consume(self, uow: UnitOfWork, limit: int) -> int:
        self.failed = None
        with uow:
            handler = _EventHandler(uow.scheduling, self._now, self._config)

            def handle(recorded: RecordedEvent) -> None:
                self.failed = recorded
                handler(recorded)
                self.failed = None

            seen = uow.events.consume(CONSUMER, handle, limit)
            uow.commit()
        return seen


def _pass_over(uow: UnitOfWork, failed: RecordedEvent, error: Exception) -> int:
    """Move the cursor past `failed`, if it is still the next event (another scheduler may
    have moved on meanwhile): 1, or 0 when it was not."""

    def pass_over(recorded: RecordedEvent) -> None:
        if recorded.id != failed.id:
            raise _NotTheFailedEvent
        event = recorded.event
        log.error(
            "event %s (%s, person %s) passed over: its handling failed: %s",
            recorded.id,
            event.type,
            event.person_id,
            error_line(error),
        )

    try:
        with uow:
            seen = uow.events.consume(CONSUMER, pass_over, 1)
            uow.commit()
    except _NotTheFailedEvent:
        return 0
    return seen


class _NotTheFailedEvent(Exception):
    """The next event is not the one that failed: nothing is passed over."""


def send_followups(
    uow: UnitOfWork, now: datetime, config: SchedulerConfig = SchedulerConfig()
) -> int:
    """One `followup` message for each sent reminder still unanswered at its follow-up time."""
    require_aware(now)
    with uow:
        repo = uow.scheduling
        due = repo.followups_due(now, BATCH)
        _enqueue(repo, [(reminder, "followup", now) for reminder in due], config, now)
        uow.commit()
    return len(due)


def close_windows(uow: UnitOfWork, now: datetime) -> int:
    """Reminders whose window closed: `missed` if sent, `expired` if never sent; their
    messages still waiting (a snooze, a follow-up) are cancelled."""
    require_aware(now)
    with uow:
        closed = uow.scheduling.close_windows(now)
        uow.commit()
    return closed


def hand_off(uow: UnitOfWork, now: datetime, config: SchedulerConfig = SchedulerConfig()) -> int:
    """Write the `initial` message of each due reminder and mark it queued; too late: expired."""
    require_aware(now)
    with uow:
        repo = uow.scheduling
        due = repo.due_reminders(now, BATCH)
        late = [reminder.id for reminder in due if reminder.plan.window_closes_at <= now]
        ready = [reminder for reminder in due if reminder.plan.window_closes_at > now]
        repo.set_status(late, "expired", now)
        _enqueue(
            repo, [(reminder, "initial", reminder.plan.due_at) for reminder in ready], config, now
        )
        repo.set_status([reminder.id for reminder in ready], "queued", now)
        uow.commit()
    return len(ready)


def tick(uow_factory: Callable[[], UnitOfWork], now: datetime, config: SchedulerConfig) -> None:
    """The frequent job: events first (they cancel and re-plan), then follow-ups, windows and
    hand-off. Each step is its own transaction, so one failing leaves the others' work."""
    handed = BATCH
    while handed == BATCH:
        # events between hand-off batches: a burst of due reminders does not hold up a reply
        while consume_events(uow_factory(), now, config) > 0:
            pass
        send_followups(uow_factory(), now, config)
        close_windows(uow_factory(), now)
        handed = hand_off(uow_factory(), now, config)


class _EventHandler:
    """Acts on the state now, not on the order of events: events of two transactions can be
    read in an order other than their commits' (store.events), within one they keep theirs."""

    def __init__(self, repo: SchedulingRepository, now: datetime, config: SchedulerConfig) -> None:
        self._repo, self._now, self._config = repo, now, config

    def __call__(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        action = getattr(self, f"_on_{event.type}", None)
        if action is not None:
            action(event.person_id, event.payload, event.occurred_at)

    def _on_RegimenChanged(self, person_id: int | None, _payload: Any, _at: datetime) -> None:
        if person_id is not None:
            replan(self._repo, person_id, self._now, self._config)

    _on_OptedIn = _on_RegimenChanged

    def _on_OptedOut(self, person_id: int | None, _payload: Any, _at: datetime) -> None:
        # by the state now, not the event: a START that came after may be read first
        if person_id is not None and not self._repo.plannable(person_id):
            self._repo.cancel_pending(person_id, self._now)

    def _on_ColdOnset(self, person_id: int | None, payload: Any, _at: datetime) -> None:
        course = self._repo.course(int(payload["cold_course_id"]))
        if course is None or course.ended_at is not None:
            return
        people = self._repo.plannable(course.person_id)
        if people:
            # from the onset's minute on: the first lozenge is due at onset, a moment ago
            start = min(self._now, course.onset_at.replace(second=0, microsecond=0))
            plans = _lozenges(
                self._repo, people[0], course.id, course.onset_at, start, self._config
            )
            self._repo.save_reminders(plans, self._now)

    def _on_ColdEnded(self, person_id: int | None, payload: Any, at: datetime) -> None:
        course = self._repo.course(int(payload["cold_course_id"]))
        if course is not None:
            self._repo.cancel_course_reminders(course.id, course.ended_at or at, self._now)

    def _on_DoseConfirmed(self, person_id: int | None, payload: Any, _at: datetime) -> None:
        self._repo.cancel_due_messages(int(payload["reminder_id"]), self._now)

    _on_DoseSkipped = _on_DoseConfirmed

    def _on_Snoozed(self, person_id: int | None, payload: Any, at: datetime) -> None:
        reminder = self._repo.reminder(int(payload["reminder_id"]))
        if reminder is None or reminder.status not in ANSWERABLE_STATUSES:
            return  # answered since (TAKEN after LATER may be read first) or closed
        people = self._repo.plannable(reminder.plan.person_id)
        if not people:
            return  # opted out or inactive: nothing more goes to them
        minutes = int(payload.get("minutes") or DEFAULT_SNOOZE_MINUTES)
        try:
            regimen = Regimen.model_validate(people[0].body)
        except ValidationError as error:
            # skipped, not raised: a raise would roll back every event of this consumption
            # and stop the cursor at this one for good
            log.warning(
                "person %s: snooze of reminder %s dropped: %s",
                reminder.plan.person_id,
                reminder.id,
                no_longer_accepted(error),
            )
            return
        # from when the person asked, so a backlog of events does not stretch the snooze; the
        # notifier holds a message through quiet hours, so it goes at their end
        due = after_quiet_hours(regimen, at + timedelta(minutes=minutes))
        if due >= reminder.plan.window_closes_at:
            log.info("snooze of reminder %s falls after its window closes: dropped", reminder.id)
            return
        awake_from, awake_to = waking_bounds_around(regimen, due)
        if not awake_from <= due <= awake_to:
            log.info("snooze of reminder %s falls outside the waking window: dropped", reminder.id)
            return
        purposes = self._repo.message_purposes(reminder.id)
        number = 1 + sum(purpose.startswith("snooze-") for purpose in purposes)
        # the snooze replaces the follow-up and any earlier snooze still waiting: one nudge,
        # at the time the person chose last
        waiting = ["followup", *(purpose for purpose in purposes if purpose.startswith("snooze-"))]
        self._repo.cancel_due_messages(reminder.id, self._now, purposes=waiting)
        # not after the reminder's window: once it closes the dose takes no answer
        _enqueue(self._repo, [(reminder, f"snooze-{number}", due)], self._config, self._now)


def after_quiet_hours(regimen: Regimen, instant: datetime) -> datetime:
    """The first instant at or after `instant` outside the person's quiet hours: when the
    notifier sends a message due at `instant` (it holds one due inside quiet hours until they
    end, as services.sending.quiet_until reads them)."""
    zone = ZoneInfo(regimen.person.timezone)
    at = instant
    # windows may adjoin or overlap: one end can fall inside the next window
    for _ in range(len(regimen.person.quiet) + 1):
        local = at.astimezone(zone)
        ends = [
            end
            for window in regimen.person.quiet
            if (end := quiet_end(window.start, window.end, local))
        ]
        if not ends:
            return at
        at = max(ends).astimezone(UTC)
    return at


def replan(
    repo: SchedulingRepository, person_id: int, now: datetime, config: SchedulerConfig
) -> None:
    """Plan the person's next horizon again: reminders no longer in the plan are cancelled."""
    people = repo.plannable(person_id)
    if not people:
        return
    who = people[0]
    cache = PlanCache(now, now + config.horizon, config.timing)
    # a dose already reminded today keeps its reminder, wherever the new plan puts it
    reminded = repo.reminded(now - REMINDED_LOOKBACK, person_id)
    plans, refusals = cache.reminders(who, reminded)
    for reason in refusals:
        log.warning("person %s: plan refused: %s", person_id, reason)
    for course in repo.running_courses(now, person_id):
        lozenges = _lozenges(repo, who, course.id, course.onset_at, now, config)
        plans += not_yet_reminded(lozenges, reminded)
    repo.save_reminders(plans, now)
    # lozenges too: their times follow the day's iron and copper doses
    keep = [(plan.due_at, plan.slot_key) for plan in plans]
    repo.cancel_planned_reminders_except(person_id, now, keep, now)


def _lozenges(
    repo: SchedulingRepository,
    who: Plannable,
    course_id: int,
    onset: datetime,
    start: datetime,
    config: SchedulerConfig,
) -> list[ReminderPlan]:
    """The course's lozenges due in [start, start + horizon), kept from the lozenges earlier
    courses gave. None, with a warning, when the stored regimen is refused today or the
    planner refuses a day of the course: one person's course must not fail everyone's
    materialisation, nor the consumption of every event read with its ColdOnset."""
    given = lozenges_given(repo, who.person_id, onset)
    try:
        regimen = Regimen.model_validate(who.body)
        return lozenge_reminders(
            who.person_id,
            course_id,
            regimen,
            onset,
            start,
            start + config.horizon,
            config.timing,
            given=given,
        )
    except ValidationError as error:
        reason = no_longer_accepted(error)
    except PlanRefused as refusal:
        reason = f"plan refused: {refusal}"
    log.warning(
        "person %s: lozenges of cold course %s not planned: %s", who.person_id, course_id, reason
    )
    return []


# an earlier course's lozenges that a new one is kept from: on the new onset's local day and
# the day before (a local day is at most 25 hours long)
GIVEN_LOOKBACK = timedelta(hours=50)


def lozenges_given(repo: SchedulingRepository, person_id: int, onset: datetime) -> list[datetime]:
    """When the person's lozenges of earlier courses were given, for a course starting at
    `onset` (its own are all due from then on): plan_cold_course(given=...) keeps the
    shortest interval from them and counts them against their day's limit, so a COLD after
    WELL on one day gives no more lozenges that day than one course would."""
    return repo.lozenges_given(person_id, onset - GIVEN_LOOKBACK, onset)


def _enqueue(
    repo: SchedulingRepository,
    wanted: list[tuple[ScheduledReminder, str, datetime]],
    config: SchedulerConfig,
    now: datetime,
) -> None:
    messages: list[OutgoingMessage] = []
    tokens: list[ConfirmToken] = []
    for reminder, purpose, due in wanted:
        message, token = _message(reminder, purpose, due, config)
        messages.append(message)
        if token is not None:
            tokens.append(token)
    repo.add_confirm_tokens(tokens)
    repo.add_messages(messages, now)


def _message(
    reminder: ScheduledReminder,
    purpose: str,
    due: datetime,
    config: SchedulerConfig,
) -> tuple[OutgoingMessage, ConfirmToken | None]:
    plan, person = reminder.plan, reminder.person
    kind: Purpose = "snooze" if purpose.startswith("snooze-") else purpose  # type: ignore[assignment]
    close = plan.window_closes_at  # after it the dose takes no answer
    token: ConfirmToken | None = None
    if person.channel == "email" and person.email:
        secret = secrets.token_urlsafe(32)
        # the link carries the secret; the database keeps only its hash
        digest = hashlib.sha256(secret.encode()).hexdigest()
        token = ConfirmToken(digest, reminder.id, close)
        text = email_text(
            plan.items,
            plan.due_at,
            person.timezone,
            kind,
            f"{config.public_url}/confirm/{secret}",
            language=person.language,
        )
        subject, body, recipient = text.subject, pack_email(text.plain, text.html), person.email
    else:
        subject, recipient = None, person.phone
        body = sms_body(plan.items, plan.due_at, person.timezone, kind, language=person.language)
    message = OutgoingMessage(
        reminder_id=reminder.id,
        person_id=plan.person_id,
        channel="email" if token is not None else "sms",
        recipient=recipient,
        subject=subject,
        body=body,
        purpose=purpose,
        due_at=due,
        not_after=close,
    )
    return message, token
