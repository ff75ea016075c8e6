"""The zinc cold course: (regimen, onset instant) -> its lozenge doses. A pure function.

By default 5 days of 6 x 14 mg lozenges (30 in all, at most 6 on any local day), one every 2
to 3 h while awake, the first at onset (or at waking time when the onset is at night), each
kept from the day's iron and copper doses and from lozenges already given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from planner.checks import check_course_length
from planner.day import Day, day_frame, plan_day
from planner.explain import default_note
from planner.plan import DayPlan
from planner.rules import COLD_COURSE, RULES, RuleTable
from planner.timeline import Interval, first_at_or_after, instant_of, minute_of, subtract
from schemas.regimen import Policy, Regimen


@dataclass(frozen=True)
class CourseDose:
    at: datetime  # aware, in the person's zone
    day: int  # 1-based day of the course
    number: int  # 1-based lozenge of that day
    dose: str
    why: tuple[str, ...]


@dataclass(frozen=True)
class ColdCoursePlan:
    onset: datetime
    ends: datetime
    doses: tuple[CourseDose, ...]
    warnings: tuple[str, ...]


def plan_cold_course(
    regimen: Regimen,
    onset: datetime,
    table: RuleTable = RULES,
    given: Iterable[datetime] = (),
) -> ColdCoursePlan:
    """Raises PlanRefused for a course longer than the table allows, or a day with no room.

    The course is `cold_course_days` x `lozenges_per_day` lozenges (fewer only when the waking
    days between onset and onset + days leave no room for more), never more than
    `lozenges_per_day` on a local day. `given`: the instants of lozenges already given (an
    earlier course that ended the same day): the new ones keep the shortest interval from them,
    and they count against their day's limit.
    """
    if onset.tzinfo is None:
        raise ValueError("the onset must be an aware instant, not a naive datetime")
    policy = regimen.policy
    check_course_length(regimen, table)
    frame_zone = day_frame(regimen, onset.date()).zone
    earlier = sorted(minute_of(instant) for instant in given)
    start = minute_of(onset)
    end = start + policy.cold_course_days * 24 * 60
    remaining = policy.cold_course_days * policy.lozenges_per_day
    doses: list[CourseDose] = []
    local_day = instant_of(start, frame_zone).date()
    day_number = 1
    while remaining > 0:
        frame = day_frame(regimen, local_day)
        if frame.start >= end:
            break
        before = [minute for minute in earlier if _local_day(minute, frame) == local_day]
        count = min(policy.lozenges_per_day - len(before), remaining)
        earliest = max(start, frame.start, _after_last(doses, policy))
        placed = _day_doses(regimen, local_day, frame, earliest, end, table, count, earlier)
        first_day = not doses
        doses += [
            CourseDose(
                instant_of(minute, frame.zone),
                day_number,
                number,
                str(policy.lozenge_dose),
                _why(minute, number, start, frame, reason, table, policy, first_day),
            )
            for number, (minute, reason) in enumerate(placed, start=len(before) + 1)
        ]
        remaining -= len(placed)
        day_number += 1
        local_day += timedelta(days=1)
    return ColdCoursePlan(
        instant_of(start, frame_zone),
        instant_of(end, frame_zone),
        tuple(doses),
        tuple(_total_warnings(regimen, table) + _fewer_fit_warnings(regimen, doses, table)),
    )


@dataclass(frozen=True)
class Shortfall:
    """A course whose fullest day gets fewer lozenges than the policy asks (the gaps from
    iron, quiet hours and a short waking day leave no room): what that day gives."""

    per_day: int
    asked: int
    daily_mg: Decimal
    studied_mg: tuple[Decimal, Decimal]

    @property
    def below_studied(self) -> bool:
        return self.daily_mg < self.studied_mg[0]

    def daily_text(self) -> str:
        return format(self.daily_mg.normalize(), "f")


def lozenge_shortfall(
    regimen: Regimen, doses: Sequence[CourseDose], table: RuleTable = RULES
) -> Shortfall | None:
    """The course's Shortfall, or None when some day gets every lozenge asked for."""
    policy = regimen.policy
    fullest = max(Counter(dose.day for dose in doses).values(), default=0)
    if not doses or fullest >= policy.lozenges_per_day:
        return None
    daily = (policy.lozenge_dose.milligrams or Decimal(0)) * fullest
    return Shortfall(fullest, policy.lozenges_per_day, daily, table.cold_course.daily_range_mg)


def _fewer_fit_warnings(regimen: Regimen, doses: list[CourseDose], table: RuleTable) -> list[str]:
    short = lozenge_shortfall(regimen, doses, table)
    if short is None:
        return []
    low, high = short.studied_mg
    below = f", below the {low} to {high} mg/day the studies used" if short.below_studied else ""
    return [
        f"only {short.per_day} of the {short.asked} lozenges a day fit around the other "
        f"doses and the waking day: {short.daily_text()} mg of zinc a day{below} "
        f"[{table.cold_course.label}]"
    ]


def _after_last(doses: list[CourseDose], policy: Policy) -> int:
    """The first minute the next lozenge may take: the shortest interval after the last one,
    across midnight too."""
    if not doses:
        return 0
    return minute_of(doses[-1].at) + round(policy.lozenge_min_interval_hours * 60)


def _local_day(minute: int, frame: Day) -> date:
    return instant_of(minute, frame.zone).date()


def _day_doses(
    regimen: Regimen,
    day: date,
    frame: Day,
    start: int,
    end: int,
    table: RuleTable,
    count: int,
    given: list[int],
) -> list[tuple[int, str | None]]:
    """At most `count` lozenge minutes for one day, spread evenly, each with what pushed it
    (if anything), the shortest interval kept from the lozenges `given` before."""
    policy = regimen.policy
    if count <= 0:
        return []
    shortest = round(policy.lozenge_min_interval_hours * 60)
    available = _room(regimen, day, frame, table)
    for minute in given:
        available = subtract(available, minute - shortest, minute + shortest)
    available = [(max(low, start), min(high, end - 1)) for low, high in available]
    available = [(low, high) for low, high in available if low <= high]
    if not available:
        return []
    longest = round(policy.lozenge_max_interval_hours * 60)
    packed = _spread(available, count, shortest)
    # the widest spacing (within 2 to 3 h by default) that still fits as many lozenges
    for spacing in range(longest, shortest, -15):
        spread = _spread(available, count, spacing)
        if len(spread) == len(packed):
            return spread
    return packed


def _spread(available: list[Interval], count: int, spacing: int) -> list[tuple[int, str | None]]:
    placed: list[tuple[int, str | None]] = []
    target = available[0][0]
    while len(placed) < count:
        minute = first_at_or_after(available, target)
        if minute is None:
            break
        placed.append((minute, "pushed" if minute > target else None))
        target = minute + spacing
    return placed


def _room(regimen: Regimen, day: date, frame: Day, table: RuleTable) -> list[Interval]:
    """The waking day less quiet hours less the course's gap around iron and copper."""
    plan: DayPlan = plan_day(regimen, day, table)
    room = frame.open
    for rule in table.apart:
        if rule.subject != COLD_COURSE:
            continue
        hours = getattr(regimen.policy, rule.policy) if rule.policy else rule.min_hours
        gap = round(hours * 60)
        for slot in plan.slots:
            if any(item.supplement in rule.others for item in slot.items):
                minute = minute_of(slot.at)
                room = subtract(room, minute - gap, minute + gap)
    return room


def _why(
    minute: int,
    number: int,
    onset: int,
    frame: Day,
    reason: str | None,
    table: RuleTable,
    policy: Policy,
    first_day: bool,
) -> tuple[str, ...]:
    rule = table.cold_course
    lines = [
        f"zinc lozenge {number} of the day, cold course of {policy.cold_course_days} days: "
        f"{rule.text} [{rule.label}; the split into lozenges is a default]"
    ]
    if first_day and number == 1:
        lines.append(_first_dose_line(minute, onset, frame))
    if reason == "pushed" or (first_day and number == 1 and frame.start <= onset < minute):
        apart = next(rule for rule in table.apart if rule.subject == COLD_COURSE)
        gap = round(getattr(policy, apart.policy) * 60) if apart.policy else None
        note = default_note(apart, None if gap is None else (gap, gap))
        lines.append(f"moved to keep {apart.text} [{apart.label}{note}]")
    return tuple(lines)


def _first_dose_line(minute: int, onset: int, frame: Day) -> str:
    if minute == onset:
        return "the first lozenge at the reported onset of the cold"
    if onset < frame.start:
        return (
            f"the cold began outside the waking day; the first lozenge at {_clock(minute, frame)}"
        )
    return f"the first lozenge as soon after the onset as the rules allow: {_clock(minute, frame)}"


def _clock(minute: int, frame: Day) -> str:
    return f"{instant_of(minute, frame.zone):%H:%M}"


def course_policy_warnings(regimen: Regimen, table: RuleTable = RULES) -> list[str]:
    """What the regimen's cold-course policy would give, said before any cold: a course whose
    daily zinc falls outside the studied range (enrolment shows it, not only the first COLD)."""
    return [f"a cold course: {warning}" for warning in _total_warnings(regimen, table)]


def _total_warnings(regimen: Regimen, table: RuleTable) -> list[str]:
    policy, rule = regimen.policy, table.cold_course
    course = (policy.lozenge_dose.milligrams or Decimal(0)) * policy.lozenges_per_day
    regular = sum(
        (entry.dose.milligrams or Decimal(0))
        for entry in regimen.supplements
        if entry.key == "zinc"
    )
    low, high = rule.daily_range_mg
    total = course + regular
    if low <= total <= high:
        return []
    return [
        f"zinc during the course totals {format(total.normalize(), 'f')} mg/day; the studies used "
        f"{low} to {high} mg/day [{rule.label}]"
    ]
