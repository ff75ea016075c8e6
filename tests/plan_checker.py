"""An independent checker of day plans and cold courses, written from domain-rules.md.

It shares no code path with the planner: it does not import planner.day, planner.explain or
planner.timeline, it hard-codes the facts of domain-rules.md, recognises supplement names
itself and turns wall-clock times into instants with zoneinfo on its own. It reads only the
planner's output types (planner.plan) and the regimen (schemas).

Conventions the checker assumes (domain-rules.md and issue 2):
- a wall time the clocks skip means the first valid instant after the gap; a wall time that
  happens twice means its first occurrence (a fixed dose may use either occurrence);
- a slot is inside the waking window when its wall time is between `from` and `to`, both
  included, and inside quiet hours when its wall time is in [from, to) (to excluded);
- gaps are real elapsed time and a gap of exactly the minimum is kept.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from planner.plan import DayPlan
from schemas.regimen import Regimen, SupplementEntry, TimeWindow

# --- the facts of domain-rules.md, hard-coded -------------------------------------------
IRON_APART_MINUTES = 180  # dairy, calcium supplements and meals, medical drugs: min 3 h
SELENIUM_LIMIT_UG = Decimal(300)  # refuse above
ZINC_LIMIT_MG = Decimal(25)  # warn above, outside a cold course
IRON_LIMIT_MG = Decimal(18)  # warn above without a confirmed deficiency (policy default)
COURSE_MAX_DAYS = 14
IRON_APART_FROM_MEAL = frozenset({"dairy", "calcium"})

RULE_IDS = frozenset(
    {
        "iron-with-vitamin-c",
        "iron-apart-from-dairy-calcium-medicines",
        "iron-apart-from-black-tea",
        "cold-course-zinc-apart-from-iron-copper",
        "repeat-doses-apart",
        "selenium-upper-limit",
        "zinc-upper-limit",
        "iron-excess",
        "iron-needs-confirmed-deficiency",
        "copper-needs-confirmed-deficiency",
        "magnesium-oxide-poorly-absorbed",
        "zinc-cold-course",
        "waking-window",
    }
)

# the first words people write for the supplements the rules speak of
_CANONICAL_WORDS: tuple[tuple[str, str], ...] = (
    ("vitamin c", "vitamin_c"),
    ("ascorbic acid", "vitamin_c"),
    ("iron", "iron"),
    ("ferrous", "iron"),
    ("ferric", "iron"),
    ("calcium", "calcium"),
    ("zinc", "zinc"),
    ("copper", "copper"),
    ("selenomethionine", "selenium"),
    ("selenium", "selenium"),
    ("magnesium", "magnesium"),
)


def kind_of(name: str) -> tuple[str | None, str]:
    """(canonical supplement or None for a custom item, the rest of the words: the form)."""
    words = " ".join(re.sub(r"[^0-9a-z]+", " ", name.lower()).split())
    for phrase, canonical in _CANONICAL_WORDS:
        if words == phrase or words.startswith(phrase + " "):
            return canonical, words[len(phrase) :].strip()
    return None, words


def repeat_key(entry: SupplementEntry) -> str:
    """What counts as "the same supplement" for the repeat gap: the canonical name, or for a
    custom item the name as written, in lower case."""
    kind, rest = kind_of(entry.name)
    return kind or rest


def milligrams(entry: SupplementEntry) -> Decimal | None:
    unit, value = entry.dose.unit, entry.dose.value
    if unit == "mg":
        return value
    if unit == "µg":
        return value / 1000
    return None


# --- wall clock to instants ---------------------------------------------------------------
def wall_instants(day: date, clock: time, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant that wall time names on `day` (one, two on fall-back); a skipped
    time gives the first valid instant after the gap."""
    naive = datetime.combine(day, clock)
    found = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == naive and instant not in found:
            found.append(instant)
    if found:
        return sorted(found)
    # skipped: walk forward in real time until the wall clock reaches or passes it
    probe = naive.replace(tzinfo=zone, fold=1).astimezone(UTC) - timedelta(hours=3)
    probe = probe.replace(second=0, microsecond=0)
    while probe.astimezone(zone).replace(tzinfo=None) < naive:
        probe += timedelta(minutes=1)
    return [probe]


def wall_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return wall_instants(day, clock, zone)[0]


def in_window(window: TimeWindow, clock: time, end_included: bool) -> bool:
    start, end = window.start, window.end
    if end <= start:  # across midnight
        return clock >= start or clock < end or (end_included and clock == end)
    return start <= clock < end or (end_included and clock == end)


def slot_is_open(regimen: Regimen, day: date, instant: datetime) -> str | None:
    """None when a reminder may fall at `instant`, else what is wrong."""
    person = regimen.person
    local = instant.astimezone(ZoneInfo(person.timezone))
    if local.date() != day:
        return f"{local} is not on {day}"
    clock = local.time().replace(tzinfo=None)
    waking_start = wall_instant(day, person.waking.start, ZoneInfo(person.timezone))
    if utc(instant) < waking_start or not in_window(person.waking, clock, end_included=True):
        return f"{local:%H:%M} outside the waking window"
    for quiet in person.quiet:
        if in_window(quiet, clock, end_included=False):
            return f"{local:%H:%M} in quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M}"
    return None


# --- what a day holds ---------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """A meal or a medicine time: what iron keeps away from."""

    label: str
    at: datetime
    gap_minutes: int
    keeps: str = "iron"  # the kind of dose that keeps this gap from it


def iron_anchors(regimen: Regimen, day: date) -> list[Anchor]:
    """What the day's doses keep away from: the meals and medicines of the day, and those and
    the fixed-time calcium and iron doses of the day before and after (they happen every day,
    and a gap is real elapsed time across midnight too)."""
    zone = ZoneInfo(regimen.person.timezone)
    tea = round(regimen.policy.black_tea_gap_hours * 60)
    anchors = []
    for offset, whose in ((-1, " (the day before)"), (0, ""), (1, " (the next day)")):
        other = day + timedelta(days=offset)
        for meal in regimen.meals:
            at = wall_instant(other, meal.at, zone)
            if IRON_APART_FROM_MEAL & set(meal.contains):
                anchors.append(Anchor(meal.name + whose, at, IRON_APART_MINUTES))
            if "black_tea" in meal.contains and tea:
                anchors.append(Anchor(f"{meal.name} (black tea){whose}", at, tea))
        anchors += [
            Anchor(medication.name + whose, wall_instant(other, at, zone), IRON_APART_MINUTES)
            for medication in regimen.medications
            for at in medication.at
        ]
        if offset:
            anchors += [
                Anchor(
                    entry.name + whose,
                    wall_instant(other, entry.at, zone),
                    IRON_APART_MINUTES,
                    keeps="calcium" if kind == "iron" else "iron",
                )
                for entry in regimen.supplements
                if entry.at is not None and (kind := kind_of(entry.name)[0]) in ("iron", "calcium")
            ]
    return anchors


def utc(instant: datetime) -> datetime:
    """Aware datetimes that share a tzinfo subtract and compare as wall times: use UTC."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant} is naive, not an instant")
    return instant.astimezone(UTC)


def minutes_between(a: datetime, b: datetime) -> float:
    return abs((utc(a) - utc(b)).total_seconds()) / 60


# --- the day plan ---------------------------------------------------------------------------
Placed = list[tuple[SupplementEntry, datetime]]


def check_day_plan(regimen: Regimen, day: date, plan: DayPlan) -> list[str]:
    """Every rule the plan breaks, in words; an empty list means the plan keeps them all."""
    problems: list[str] = []
    if plan.date != day or plan.timezone != regimen.person.timezone:
        problems.append(f"plan is for {plan.date} {plan.timezone}")
    for slot in plan.slots:
        wrong = slot_is_open(regimen, day, slot.at)
        if wrong:
            problems.append(f"slot {slot.label()}: {wrong}")
    instants = [utc(slot.at) for slot in plan.slots]
    if len(set(instants)) != len(instants) or instants != sorted(instants):
        problems.append("slots are not distinct and in time order")
    placed = placements(regimen, plan, problems)
    if placed is not None:
        problems += check_fixed(regimen, day, placed)
        problems += check_iron_with_vitamin_c(placed)
        problems += check_gaps(placed, iron_anchors(regimen, day), repeat_minutes(regimen))
    problems += check_warnings(regimen, plan.warnings)
    if selenium_micrograms(regimen) > SELENIUM_LIMIT_UG:
        problems.append("selenium above 300 µg/day was planned instead of refused")
    return problems


def placements(regimen: Regimen, plan: DayPlan, problems: list[str]) -> Placed | None:
    """Each regimen dose with the instant of its slot; every dose exactly once."""
    wanted = Counter((entry.name, str(entry.dose)) for entry in regimen.supplements)
    got = Counter((item.name, item.dose) for slot in plan.slots for item in slot.items)
    if wanted != got:
        problems.append(f"doses differ: missing {wanted - got}, extra {got - wanted}")
        return None
    free: dict[tuple[str, str], list[datetime]] = {}
    for slot in plan.slots:
        for item in slot.items:
            free.setdefault((item.name, item.dose), []).append(utc(slot.at))
    zone = ZoneInfo(regimen.person.timezone)
    placed: Placed = []
    # doses with the same name and dose are interchangeable; fixed ones claim their time first
    for entry in sorted(regimen.supplements, key=lambda entry: entry.at is None):
        options = free[(entry.name, str(entry.dose))]
        fits = [
            at
            for at in options
            if entry.at is None or at in wall_instants(plan.date, entry.at, zone)
        ]
        choice = (fits or options)[0]
        options.remove(choice)
        placed.append((entry, choice))
    return placed


def check_fixed(regimen: Regimen, day: date, placed: Placed) -> list[str]:
    zone = ZoneInfo(regimen.person.timezone)
    return [
        f"{entry.name} fixed at {entry.at:%H:%M} is planned at {at.astimezone(zone):%H:%M}"
        for entry, at in placed
        if entry.at is not None and at not in wall_instants(day, entry.at, zone)
    ]


def check_iron_with_vitamin_c(placed: Placed) -> list[str]:
    kinds = [(kind_of(entry.name)[0], at) for entry, at in placed]
    irons = [at for kind, at in kinds if kind == "iron"]
    vitamin_cs = [at for kind, at in kinds if kind == "vitamin_c"]
    paired = sum(min(irons.count(at), vitamin_cs.count(at)) for at in set(irons))
    if paired < min(len(irons), len(vitamin_cs)):
        return [
            f"only {paired} of {min(len(irons), len(vitamin_cs))} iron doses share a slot "
            "with their own vitamin C"
        ]
    return []


def repeat_minutes(regimen: Regimen) -> int:
    """The policy's repeat gap, never below an hour (two doses a minute apart are one)."""
    return max(60, round(regimen.policy.repeat_gap_hours * 60))


def check_gaps(placed: Placed, anchors: list[Anchor], repeat: int) -> list[str]:
    """Iron away from dairy, calcium, medicines, black tea; repeated doses apart."""
    problems = []
    away = [(anchor.keeps, anchor.label, anchor.at, anchor.gap_minutes) for anchor in anchors] + [
        ("iron", entry.name, at, IRON_APART_MINUTES)
        for entry, at in placed
        if kind_of(entry.name)[0] == "calcium"
    ]
    for entry, at in placed:
        kind = kind_of(entry.name)[0]
        problems += [
            f"{entry.name} only {minutes_between(at, other):.0f} min from {label}"
            for keeps, label, other, gap in away
            if keeps == kind and minutes_between(at, other) < gap
        ]
    for index, (first, first_at) in enumerate(placed):
        for second, second_at in placed[index + 1 :]:
            key = repeat_key(first)
            if key == repeat_key(second) and minutes_between(first_at, second_at) < repeat:
                problems.append(f"two doses of {key} less than {repeat} min apart")
    return problems


def selenium_micrograms(regimen: Regimen) -> Decimal:
    return sum(
        (
            (milligrams(entry) or Decimal(0)) * 1000
            for entry in regimen.supplements
            if kind_of(entry.name)[0] == "selenium"
        ),
        Decimal(0),
    )


def daily_mg(regimen: Regimen, kind: str) -> Decimal:
    return sum(
        (
            milligrams(entry) or Decimal(0)
            for entry in regimen.supplements
            if kind_of(entry.name)[0] == kind
        ),
        Decimal(0),
    )


def expected_warnings(regimen: Regimen) -> list[tuple[str, str]]:
    """(rule id, name the warning must mention) for every warning domain-rules.md asks for."""
    wanted: list[tuple[str, str]] = []
    for entry in regimen.supplements:
        kind, form = kind_of(entry.name)
        if kind == "iron" and not entry.deficiency_confirmed:
            wanted.append(("iron-needs-confirmed-deficiency", entry.name))
        if kind == "copper" and not entry.deficiency_confirmed:
            wanted.append(("copper-needs-confirmed-deficiency", entry.name))
        if kind == "magnesium" and form.startswith("oxide"):
            wanted.append(("magnesium-oxide-poorly-absorbed", entry.name))
    if daily_mg(regimen, "zinc") > ZINC_LIMIT_MG:
        wanted.append(("zinc-upper-limit", "zinc"))
    irons = [entry for entry in regimen.supplements if kind_of(entry.name)[0] == "iron"]
    confirmed = all(entry.deficiency_confirmed for entry in irons)
    if (
        daily_mg(regimen, "iron") > Decimal(str(regimen.policy.iron_daily_warn_mg))
        and not confirmed
    ):
        wanted.append(("iron-excess", "iron"))
    return wanted


def check_warnings(regimen: Regimen, warnings: Iterable[str]) -> list[str]:
    texts = list(warnings)
    return [
        f"no warning {rule_id} for {name}"
        for rule_id, name in expected_warnings(regimen)
        if not any(rule_id in text and name in text for text in texts)
    ]


def check_refusal(regimen: Regimen, conflicts: tuple[str, ...]) -> list[str]:
    """A refusal names the rules in conflict: known rule ids, at least one."""
    problems = []
    if not conflicts:
        problems.append("a refusal that names no rule")
    problems += [
        f"unknown rule id {rule!r} in a refusal" for rule in conflicts if rule not in RULE_IDS
    ]
    if selenium_micrograms(regimen) > SELENIUM_LIMIT_UG and "selenium-upper-limit" not in conflicts:
        problems.append("selenium above 300 µg/day refused without naming selenium-upper-limit")
    return problems


# --- the cold course ------------------------------------------------------------------------
COURSE_APART_MINUTES = 120  # default policy.course_zinc_gap_hours


def check_cold_course(
    regimen: Regimen,
    onset: datetime,
    lozenges: list[datetime],
    day_plans: dict[date, DayPlan],
) -> list[str]:
    """Lozenges: at most days x the policy count in all and the policy count a day, 2 h
    apart, 2 h from that day's iron and copper, inside the waking day and outside quiet hours,
    from onset to onset + days."""
    policy = regimen.policy
    zone = ZoneInfo(regimen.person.timezone)
    lozenges = [utc(at) for at in lozenges]
    onset = utc(onset)
    problems = []
    shortest = policy.lozenge_min_interval_hours * 60
    apart = policy.course_zinc_gap_hours * 60
    end = onset + timedelta(days=policy.cold_course_days)
    onset_minute = onset.replace(second=0, microsecond=0)
    if lozenges != sorted(lozenges):
        problems.append("lozenges out of time order")
    total = policy.cold_course_days * policy.lozenges_per_day
    if len(lozenges) > total:
        problems.append(f"{len(lozenges)} lozenges, more than the course's {total}")
    per_day = Counter(at.astimezone(zone).date() for at in lozenges)
    problems += [
        f"{count} lozenges on {day}"
        for day, count in per_day.items()
        if count > policy.lozenges_per_day
    ]
    for before, after in itertools.pairwise(lozenges):
        if minutes_between(before, after) < shortest:
            problems.append(f"lozenges at {before} and {after} closer than {shortest} min")
    for at in lozenges:
        day = at.astimezone(zone).date()
        wrong = slot_is_open(regimen, day, at)
        if wrong:
            problems.append(f"lozenge {wrong}")
        if at < onset_minute or at >= end:
            problems.append(f"lozenge at {at} outside the course {onset} to {end}")
        plan = day_plans.get(day)
        if plan is None:
            problems.append(f"no day plan for {day}")
            continue
        problems += [
            f"lozenge at {at.astimezone(zone):%H:%M} only {minutes_between(at, slot.at):.0f} min "
            f"from {slot.label()}"
            for slot in plan.slots
            if any(kind_of(item.name)[0] in {"iron", "copper"} for item in slot.items)
            and minutes_between(at, slot.at) < apart
        ]
    return problems
