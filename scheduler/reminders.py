"""Plans become reminders: the pure step between the planner and the reminders table.

Given a person's regimen and a stretch of time, which reminders should exist, each with the
instant it is due, when its window closes and when an unanswered one is re-sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from planner.cold_course import plan_cold_course
from planner.day import day_frame, plan_day
from planner.plan import PlanRefused
from planner.timeline import instant_of
from schemas.regimen import Regimen
from services.ports import ReminderPlan


@dataclass(frozen=True)
class ReminderTiming:
    """When an unanswered reminder is re-sent, and when it counts as missed: `window` after
    it is due, or at the end of the waking day if sooner, but never less than `least_window`
    (a dose planned at the waking window's last minute is still sent, and can be answered)."""

    followup_after: timedelta = timedelta(minutes=30)
    window: timedelta = timedelta(hours=2)
    least_window: timedelta = timedelta(minutes=30)

    def closes(self, due: datetime, waking_end: datetime) -> datetime:
        return max(due + self.least_window, min(due + self.window, waking_end))


@dataclass(frozen=True)
class Materialised:
    reminders: list[ReminderPlan]
    refusals: list[str]  # days the planner refused, with its reason


def local_days(start: datetime, end: datetime, timezone: str) -> list[date]:
    """Every local calendar day that overlaps [start, end)."""
    _require_aware(start, end)
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone)
    return [first + timedelta(days=n) for n in range((last.date() - first).days + 1)]


def dose_reminders(
    person_id: int,
    regimen_id: int | None,
    regimen: Regimen,
    start: datetime,
    end: datetime,
    timing: ReminderTiming = ReminderTiming(),
) -> Materialised:
    reminders: list[ReminderPlan] = []
    refusals: list[str] = []
    for day in local_days(start, end, regimen.person.timezone):
        try:
            plan = plan_day(regimen, day)
        except PlanRefused as refusal:
            refusals.append(f"{day}: {refusal}")
            continue
        waking_end = _waking_end(regimen, day)
        for slot in plan.slots:
            due = slot.at.astimezone(UTC)
            if not start <= due < end:
                continue
            items = [
                {"supplement": item.supplement, "dose": item.dose, "name": item.name}
                for item in slot.items
            ]
            key = f"{day.isoformat()}#" + "+".join(item.supplement for item in slot.items)
            reminders.append(
                _reminder(person_id, key, "dose", due, waking_end, items, timing, regimen_id)
            )
    return Materialised(reminders, refusals)


# what a lozenge reminder calls its item (the SMS says "zinc lozenge 14 mg")
LOZENGE_NAME = "zinc lozenge"


def lozenge_reminders(
    person_id: int,
    course_id: int,
    regimen: Regimen,
    onset: datetime,
    start: datetime,
    end: datetime,
    timing: ReminderTiming = ReminderTiming(),
    given: Sequence[datetime] = (),
) -> list[ReminderPlan]:
    """The lozenge reminders of a course due in [start, end). `given`: the instants of
    lozenges of earlier courses already given (due, not cancelled) on the onset's day or the
    day before: the course keeps the shortest interval from them and counts them against
    their day's limit."""
    _require_aware(*given)
    course = plan_cold_course(regimen, onset, given=given)
    reminders = []
    for dose in course.doses:
        due = dose.at.astimezone(UTC)
        if not start <= due < end:
            continue
        items = [{"supplement": "zinc", "dose": dose.dose, "name": LOZENGE_NAME}]
        key = f"{dose.at.date().isoformat()}#cold-course-{course_id}-{dose.number}"
        waking_end = _waking_end(regimen, dose.at.date())
        reminders.append(
            ReminderPlan(
                person_id=person_id,
                slot_key=key,
                kind="lozenge",
                due_at=due,
                window_closes_at=timing.closes(due, waking_end),
                items=items,
                followup_due_at=None,  # the next lozenge is the follow-up
                cold_course_id=course_id,
            )
        )
    return reminders


def _reminder(
    person_id: int,
    key: str,
    kind: str,
    due: datetime,
    waking_end: datetime,
    items: list[dict[str, str]],
    timing: ReminderTiming,
    regimen_id: int | None,
) -> ReminderPlan:
    closes = timing.closes(due, waking_end)
    followup = due + timing.followup_after
    return ReminderPlan(
        person_id=person_id,
        slot_key=key,
        kind="dose" if kind == "dose" else "lozenge",
        due_at=due,
        window_closes_at=closes,
        items=items,
        followup_due_at=followup if followup < closes else None,
        regimen_id=regimen_id,
    )


def _waking_end(regimen: Regimen, day: date) -> datetime:
    return waking_bounds(regimen, day)[1]


def waking_bounds(regimen: Regimen, day: date) -> tuple[datetime, datetime]:
    """The local day's waking window as UTC instants (clock-change days in real time)."""
    frame = day_frame(regimen, day)
    return (
        instant_of(frame.start, frame.zone).astimezone(UTC),
        instant_of(frame.end, frame.zone).astimezone(UTC),
    )


def waking_bounds_around(regimen: Regimen, instant: datetime) -> tuple[datetime, datetime]:
    """The waking window of the person's local day that `instant` falls on, as UTC instants:
    a snooze is sent only inside it."""
    local_day = instant.astimezone(ZoneInfo(regimen.person.timezone)).date()
    return waking_bounds(regimen, local_day)


def _require_aware(*instants: datetime) -> None:
    if any(instant.tzinfo is None for instant in instants):
        raise ValueError("instants must be timezone-aware")
