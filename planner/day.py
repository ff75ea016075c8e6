"""The day planner: (regimen, date) -> the day's reminder slots, each with its reasons.

A pure function. Every dose lands inside the waking window, outside quiet hours, and at least
the minimum gap of every `Apart` rule from the meals, medicines and other doses it concerns;
doses a `Together` rule pairs share a slot. Among the placements that keep every rule, it
takes the one with (1) fewest doses on a minimum instead of a preferred gap, (2) fewest
reminders, (3) earliest times. If there is none, it refuses and names the rules.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from planner.checks import regimen_warnings
from planner.explain import explain_slot
from planner.plan import DayPlan, PlannedItem, PlanRefused, Slot
from planner.rules import MEDICATION, RULES, Apart, RuleTable, Together
from planner.timeline import (
    Interval,
    contains,
    duration_text,
    instant_of,
    subtract,
    wall_minute,
    wall_spans,
)
from schemas.regimen import Policy, Regimen, SupplementEntry, TimeWindow


@dataclass(frozen=True)
class Gap:
    """What the Apart rules ask between two things: minutes, and which rules."""

    minimum: int
    preferred: int
    rules: tuple[str, ...]


NO_GAP = Gap(0, 0, ())


@dataclass(frozen=True)
class Reference:
    """A meal or a medicine: at a fixed time, never reminded, but doses keep away from it."""

    label: str
    minute: int
    tags: frozenset[str]
    dose: bool = False  # a supplement fixed at this time on the day before or after

    def gap_from(self, gaps: GapRules, tags: frozenset[str]) -> Gap:
        """What the rules ask between a dose tagged `tags` and this."""
        return gaps.between(tags, self.tags, both_doses=False, either_way=self.dose)


@dataclass
class Group:
    """Doses that go into one slot together (a `Together` pair, or a single dose)."""

    entries: list[SupplementEntry]
    tags: frozenset[str]
    fixed: int | None = None
    rules: tuple[str, ...] = ()
    allowed: list[Interval] = field(default_factory=list)  # minimum gaps kept
    preferred: list[Interval] = field(default_factory=list)  # preferred gaps kept too

    @property
    def label(self) -> str:
        return " + ".join(entry.name for entry in self.entries)


@dataclass(frozen=True)
class Day:
    """The day's frame, in epoch minutes."""

    zone: ZoneInfo
    start: int
    end: int
    open: list[Interval]  # waking window less quiet hours
    warnings: tuple[str, ...]
    awake: list[Interval]  # the waking window
    waking_text: str  # "07:00-22:00"
    quiet: tuple[tuple[str, list[Interval]], ...]  # quiet hours that fall in the waking window
    day: date

    def quiet_text(self, minute: int | None = None) -> str:
        """The quiet hours in the waking window ("06:00-23:00, ..."), or those at `minute`."""
        return ", ".join(
            label for label, spans in self.quiet if minute is None or contains(spans, minute)
        )

    def room_text(self) -> str:
        """What the day's open time is made of, for a refusal."""
        waking = f"the waking window {self.waking_text}"
        return f"{waking} less the quiet hours {self.quiet_text()}" if self.quiet else waking


class GapRules:
    """The Apart and RepeatApart rules of the table with the regimen's policy applied."""

    def __init__(self, regimen: Regimen, table: RuleTable = RULES) -> None:
        self._apart = [(rule, _minutes(rule, regimen)) for rule in table.apart]
        self._repeat = (table.repeat.id, table.repeat.minutes(regimen.policy))
        self.longest = max([minutes for _, pair in self._apart for minutes in pair] + [0])
        self._cache: dict[tuple[frozenset[str], frozenset[str], bool, bool], Gap] = {}

    def used(self, rule_id: str) -> tuple[int, int] | None:
        """The (minimum, preferred) minutes a gap rule asks for this regimen, if it is one."""
        for rule, minutes in self._apart:
            if rule.id == rule_id:
                return minutes
        if rule_id == self._repeat[0]:
            return self._repeat[1], self._repeat[1]
        return None

    def between(
        self,
        a: frozenset[str],
        b: frozenset[str],
        both_doses: bool = True,
        either_way: bool = True,
    ) -> Gap:
        """The gap between a dose tagged `a` and `b`: a dose (`both_doses`, the repeat rule
        applies), or a meal or a medicine (`either_way` False: a rule applies when `a` is its
        subject and `b` holds one of its others; what a meal contains is never a subject)."""
        key = (a, b, both_doses, either_way)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._compute(a, b, both_doses, either_way or both_doses)
        return found

    def _compute(
        self, a: frozenset[str], b: frozenset[str], both_doses: bool, either_way: bool
    ) -> Gap:
        minimum = preferred = 0
        rules: list[str] = []
        for rule, (rule_min, rule_pref) in self._apart:
            if (rule.subject in a and rule.others & b) or (
                either_way and rule.subject in b and rule.others & a
            ):
                minimum, preferred = max(minimum, rule_min), max(preferred, rule_pref)
                rules.append(rule.id)
        if both_doses and a & b - _NON_SUPPLEMENT_TAGS:
            rule_id, repeat = self._repeat
            minimum, preferred = max(minimum, repeat), max(preferred, repeat)
            rules.append(rule_id)
        return Gap(minimum, preferred, tuple(rules)) if rules else NO_GAP


_NON_SUPPLEMENT_TAGS = frozenset({MEDICATION})

# one GapRules (and its memo of answers) per policy and table: most regimens share the defaults
_GAP_RULES: dict[tuple[Policy, int], tuple[RuleTable, GapRules]] = {}


def gap_rules(regimen: Regimen, table: RuleTable = RULES) -> GapRules:
    key = (regimen.policy, id(table))
    found = _GAP_RULES.get(key)
    if found is None or found[0] is not table:
        if len(_GAP_RULES) > 256:  # bounded: policies are few, but nothing grows without end
            _GAP_RULES.clear()
        found = _GAP_RULES[key] = (table, GapRules(regimen, table))
    return found[1]


def _minutes(rule: Apart, regimen: Regimen) -> tuple[int, int]:
    """(minimum, preferred) minutes of an Apart rule under the regimen's policy.

    A policy that sets the gap replaces the minimum. Where it lowers it below the rule's own
    minimum, the person's gap is all that is asked (the preferred gap too): a preferred gap
    above what they chose would move their doses for nothing. Where it keeps or raises it, the
    preferred gap is the rule's, or the policy's when that is more (dairy's 3 h, preferably 4,
    is the same rule without a policy).
    """
    if not rule.policy:
        return round(rule.min_hours * 60), round(max(rule.min_hours, rule.preferred_hours) * 60)
    hours = getattr(regimen.policy, rule.policy)
    preferred = hours if hours < rule.min_hours else max(hours, rule.preferred_hours)
    return round(hours * 60), round(preferred * 60)


def plan_day(regimen: Regimen, day: date, table: RuleTable = RULES) -> DayPlan:
    """Plan one local calendar day of a regimen. Raises PlanRefused.

    When a Together rule could pair its doses in more than one way (two vitamin C doses for
    one iron), each pairing is tried in turn: the regimen's order first (see `pairings`).
    """
    warnings = regimen_warnings(regimen, table)
    frame = day_frame(regimen, day)
    gaps = gap_rules(regimen, table)
    references = day_references(regimen, day, frame.zone)
    references += adjacent_references(regimen, day, frame, gaps)
    first_refusal: PlanRefused | None = None
    budget = PairingBudget()
    tried = 0
    for pairing in pairings(regimen.supplements, table, budget):
        tried += 1
        try:
            groups = _place(pairing, day, frame, gaps, references, table, budget)
        except PlanRefused as refusal:
            first_refusal = first_refusal or refusal
            continue
        slots = build_slots(groups, references, gaps, frame, table)
        shifted = skipped_time_warnings(regimen, day, frame.zone)
        return DayPlan(day, regimen.person.timezone, slots, (*frame.warnings, *shifted, *warnings))
    assert first_refusal is not None  # there is always at least one pairing
    if budget.exhausted:
        raise PlanRefused(
            f"{first_refusal.reason} (of the many ways to pair these doses, the first {tried} "
            "were tried and none fits)",
            first_refusal.conflicts,
        )
    raise first_refusal


def _place(
    pairing: list[tuple[list[SupplementEntry], tuple[str, ...]]],
    day: date,
    frame: Day,
    gaps: GapRules,
    references: list[Reference],
    table: RuleTable,
    budget: PairingBudget,
) -> list[Group]:
    """Every group of the pairing with its minute, or PlanRefused."""
    groups = [_group(entries, rules, day, frame) for entries, rules in pairing]
    for group in groups:
        _check_group(group, gaps, frame, table)
    fixed = [group for group in groups if group.fixed is not None]
    _check_fixed(fixed, references, gaps, frame, table)
    movable = [group for group in groups if group.fixed is None]
    for group in movable:
        _restrict(group, references, fixed, gaps, frame, table)
    chosen = Search(movable, fixed, gaps).run()
    if chosen is None:  # the fast search is not complete: look in time order before refusing
        complete = CompleteSearch(movable, fixed, gaps, budget.search_steps)
        chosen = complete.run()
        budget.search_steps = max(complete.steps, 0)  # one budget for all the pairings tried
        if chosen is None:
            raise _joint_refusal(movable, gaps, frame, table, complete.exhausted)
    for group, minute in zip(movable, chosen, strict=True):
        group.fixed = minute
    return groups


def skipped_time_warnings(regimen: Regimen, day: date, zone: ZoneInfo) -> list[str]:
    """A fixed time the clocks skip on this day moves to the first valid instant: say so."""
    fixed = [(meal.name, meal.at) for meal in regimen.meals]
    fixed += [(medication.name, at) for medication in regimen.medications for at in medication.at]
    fixed += [(entry.name, entry.at) for entry in regimen.supplements if entry.at is not None]
    warnings = []
    for name, clock in fixed:
        minute, moved = wall_minute(day, clock, zone)
        if moved:
            warnings.append(
                f"{name} at {clock:%H:%M} does not exist on {day} (the clocks go forward); "
                f"taken as {instant_of(minute, zone):%H:%M}"
            )
    return warnings


def day_frame(regimen: Regimen, day: date) -> Day:
    """The day's open time: instants whose wall-clock time is in the waking window (both ends
    included) and in no quiet hours (their end excluded), in real time on clock-change days."""
    person = regimen.person
    zone = ZoneInfo(person.timezone)
    start, start_moved = wall_minute(day, person.waking.start, zone)
    warnings = (
        (
            f"the waking time {person.waking.start:%H:%M} does not exist on {day} (clocks "
            f"change); the day starts at {instant_of(start, zone):%H:%M}",
        )
        if start_moved
        else ()
    )
    waking = wall_spans(day, _of_day(person.waking.start), _waking_end(person.waking) + 1, zone)
    open_intervals = waking
    quiet_in_waking: list[tuple[str, list[Interval]]] = []
    for quiet in person.quiet:
        spans = _quiet_spans(quiet, day, zone)
        within = waking
        for low, high in spans:
            open_intervals = subtract(open_intervals, low - 1, high + 1)
            within = subtract(within, low - 1, high + 1)
        if within != waking:
            quiet_in_waking.append((f"{quiet.start:%H:%M}-{quiet.end:%H:%M}", spans))
    if not waking:  # the whole waking window falls in the hour the clocks skip
        written = f"{person.waking.start:%H:%M}-{person.waking.end:%H:%M}"
        return Day(zone, start, start, [], warnings, [], written, (), day)
    waking_text = f"{instant_of(waking[0][0], zone):%H:%M}-{instant_of(waking[-1][1], zone):%H:%M}"
    return Day(
        zone,
        waking[0][0],
        waking[-1][1],
        open_intervals,
        warnings,
        waking,
        waking_text,
        tuple(quiet_in_waking),
        day,
    )


def _of_day(clock: time) -> int:
    return clock.hour * 60 + clock.minute


def _waking_end(waking: TimeWindow) -> int:
    # a waking window "to 00:00" runs until midnight: its last minute is the day's last
    return 24 * 60 if waking.crosses_midnight() else _of_day(waking.end)


def _quiet_spans(quiet: TimeWindow, day: date, zone: ZoneInfo) -> list[Interval]:
    """Quiet hours as closed spans of this day; a span across midnight is split."""
    begin, finish = _of_day(quiet.start), _of_day(quiet.end)
    if not quiet.crosses_midnight():
        return wall_spans(day, begin, finish, zone)
    return [*wall_spans(day, 0, finish, zone), *wall_spans(day, begin, 24 * 60, zone)]


def day_references(regimen: Regimen, day: date, zone: ZoneInfo) -> list[Reference]:
    references = [
        Reference(
            _meal_label(meal.name, meal.contains),
            wall_minute(day, meal.at, zone)[0],
            frozenset(meal.contains),
        )
        for meal in regimen.meals
    ]
    references += [
        Reference(
            f"{medication.name} (medicine)", wall_minute(day, at, zone)[0], frozenset({MEDICATION})
        )
        for medication in regimen.medications
        for at in medication.at
    ]
    return references


def fixed_dose_references(regimen: Regimen, day: date, zone: ZoneInfo) -> list[Reference]:
    """The doses fixed at a time (`at`) on `day`, as references: what they are to the day
    before and the day after, which plan their own doses around them."""
    return [
        Reference(
            entry.name, wall_minute(day, entry.at, zone)[0], frozenset({entry.key}), dose=True
        )
        for entry in regimen.supplements
        if entry.at is not None
    ]


def neighbour_references(regimen: Regimen, day: date, zone: ZoneInfo) -> list[Reference]:
    """Everything of `day` a dose of the day before or after keeps its gaps from: the meals,
    the medicines and the fixed-time doses."""
    return day_references(regimen, day, zone) + fixed_dose_references(regimen, day, zone)


def adjacent_references(regimen: Regimen, day: date, frame: Day, gaps: GapRules) -> list[Reference]:
    """The meals, medicines and fixed-time doses of the day before and the day after that are
    near enough to this day's waking window for a gap to reach into it: they happen every day,
    and gaps are real elapsed time across midnight (and clock changes) too."""
    if not frame.awake:
        return []
    reach = gaps.longest
    found: list[Reference] = []
    for other, whose in (
        (day - timedelta(days=1), "the day before"),
        (day + timedelta(days=1), "the next day"),
    ):
        candidates = [
            replace(reference, label=f"{reference.label}, {whose}")
            for reference in neighbour_references(regimen, other, frame.zone)
        ]
        found += [
            reference
            for reference in candidates
            if frame.start - reach < reference.minute < frame.end + reach
        ]
    return found


def _meal_label(name: str, contains: list[str]) -> str:
    return f"{name} ({', '.join(tag.replace('_', ' ') for tag in contains)})" if contains else name


Pairing = list[tuple[list[SupplementEntry], tuple[str, ...]]]
TimingClass = tuple[str, str]  # a dose's supplement and its fixed time ("" when it has none)

# Pairings that differ in timing are few for any regimen a person takes; a regimen with many
# doses that each have their own fixed time could have factorially many, so the planner tries
# at most this many, and looks at most MAX_PAIRING_STEPS partial pairings to find them.
MAX_PAIRINGS = 64
# the complete search looks at most this many placements before it gives up (and says so)
MAX_SEARCH_STEPS = 50_000
MAX_PAIRING_STEPS = 20_000


@dataclass
class PairingBudget:
    """How much of the pairing search is left, and whether it ran out with pairings untried."""

    pairings: int = MAX_PAIRINGS
    steps: int = MAX_PAIRING_STEPS
    exhausted: bool = False
    first_given: bool = False  # the regimen's own order has been given
    search_steps: int = MAX_SEARCH_STEPS  # what is left of the complete search's steps

    def step(self) -> bool:
        """Whether the search may take one more step; the regimen's own order always may."""
        if not self.first_given:
            return True
        self.steps -= 1
        if self.steps < 0:
            self.exhausted = True
        return not self.exhausted


def pairings(
    supplements: list[SupplementEntry], table: RuleTable, budget: PairingBudget | None = None
) -> Iterator[Pairing]:
    """Every way to pair doses per the Together rules that differs in timing, each subject dose
    with its own partner dose, as many pairs as the doses allow: the regimen's order first.

    Doses of one supplement with the same fixed time (or none) are interchangeable for timing,
    so of the pairings that differ only in which of them goes where, only the first (in the
    order of trying every combination and permutation) is given: a pairing fits exactly when
    such a twin of it does. At most `budget.pairings` are given; `budget.exhausted` then says
    whether more were left.
    """
    budget = budget or PairingBudget()
    seen: set[tuple[tuple[tuple[TimingClass, ...], tuple[str, ...]], ...]] = set()
    for choice in _choices(supplements, list(table.together), budget):
        paired = [(pair, rule_id) for pairs, rule_id in choice for pair in pairs]
        taken = [entry for pair, _ in paired for entry in pair]
        pairing: Pairing = [(list(pair), (rule_id,)) for pair, rule_id in paired]
        pairing += [([entry], ()) for entry in supplements if not _among(entry, taken)]
        key = tuple(
            sorted((tuple(map(_timing_class, entries)), rules) for entries, rules in pairing)
        )
        if key in seen or (budget.first_given and any(map(_pair_fixed_apart, paired))):
            continue
        if len(seen) >= budget.pairings:
            budget.exhausted = True
            return
        seen.add(key)
        yield pairing
        budget.first_given = True


def _pair_fixed_apart(paired: tuple[tuple[SupplementEntry, SupplementEntry], str]) -> bool:
    (first, second), _ = paired
    return _fixed_apart(_timing_class(first), _timing_class(second))


RulePairs = tuple[list[tuple[SupplementEntry, SupplementEntry]], str]


def _choices(
    supplements: list[SupplementEntry], rules: list[Together], budget: PairingBudget
) -> Iterator[list[RulePairs]]:
    """itertools.product of each rule's pairings, lazily: the first rule varies slowest."""
    if not rules:
        yield []
        return
    for first in _rule_pairings(supplements, rules[0], budget):
        for rest in _choices(supplements, rules[1:], budget):
            yield [first, *rest]


def _rule_pairings(
    supplements: list[SupplementEntry], rule: Together, budget: PairingBudget
) -> Iterator[RulePairs]:
    """The rule's pairs, in the order of combinations of subjects and permutations of
    partners, leaving out those that only swap interchangeable doses."""
    subjects = [entry for entry in supplements if entry.key == rule.subject]
    partners = [entry for entry in supplements if entry.key == rule.partner]
    count = min(len(subjects), len(partners))
    for chosen in _distinct_combinations(subjects, count, budget):
        for matched in _distinct_matchings(list(map(_timing_class, chosen)), partners, budget):
            yield list(zip(chosen, matched, strict=True)), rule.id


def _timing_class(entry: SupplementEntry) -> TimingClass:
    return entry.key, entry.at.isoformat() if entry.at is not None else ""


def _fixed_apart(first: TimingClass, second: TimingClass) -> bool:
    """Whether two doses are fixed at two different times: no plan has them in one slot.

    Pairings with such a pair are left out, after the regimen's own order: that one is
    always tried, as its refusal is the one a person reads when nothing fits."""
    return bool(first[1] and second[1]) and first[1] != second[1]


def _distinct_combinations(
    entries: list[SupplementEntry], count: int, budget: PairingBudget
) -> Iterator[list[SupplementEntry]]:
    """itertools.combinations(entries, count), less those that choose a dose while leaving out
    an earlier one it is interchangeable with."""
    classes = [_timing_class(entry) for entry in entries]

    def extend(
        start: int, chosen: list[int], skipped: frozenset[TimingClass]
    ) -> Iterator[list[int]]:
        if len(chosen) == count:
            yield chosen
            return
        for index in range(start, len(entries) - (count - len(chosen)) + 1):
            if classes[index] not in skipped:
                if not budget.step():
                    return
                yield from extend(index + 1, [*chosen, index], skipped)
            skipped |= {classes[index]}

    for chosen in extend(0, [], frozenset()):
        yield [entries[index] for index in chosen]


def _distinct_matchings(
    subject_classes: list[TimingClass], partners: list[SupplementEntry], budget: PairingBudget
) -> Iterator[list[SupplementEntry]]:
    """itertools.permutations(partners, len(subject_classes)), less those that differ from an
    earlier one only by swapping interchangeable partners, or the partners of two
    interchangeable subjects: interchangeable partners go in their order, and interchangeable
    subjects take partners in their order."""
    classes = [_timing_class(entry) for entry in partners]
    used = [False] * len(partners)
    matched: list[int] = []
    last_of: dict[TimingClass, int] = {}  # the partner last given to a subject of a class
    apart = [0]  # pairs so far fixed at two times: only the regimen's own order has any

    def extend() -> Iterator[list[SupplementEntry]]:
        if len(matched) == len(subject_classes):
            yield [partners[index] for index in matched]
            return
        subject = subject_classes[len(matched)]
        floor = last_of.get(subject, -1)
        offered: set[TimingClass] = set()
        for index, partner_class in enumerate(classes):
            if budget.first_given and apart[0]:
                return  # every pairing from here on has a pair that cannot share a slot
            if used[index] or partner_class in offered:
                continue
            offered.add(partner_class)  # only the first unused partner of each class
            fixed_apart = _fixed_apart(subject, partner_class)
            if index <= floor or (fixed_apart and budget.first_given) or not budget.step():
                continue
            used[index], last_of[subject] = True, index
            matched.append(index)
            apart[0] += fixed_apart
            yield from extend()
            apart[0] -= fixed_apart
            matched.pop()
            used[index] = False
            if floor < 0:
                del last_of[subject]
            else:
                last_of[subject] = floor

    yield from extend()


def _among(entry: SupplementEntry, entries: list[SupplementEntry]) -> bool:
    return any(entry is other for other in entries)


def _group(entries: list[SupplementEntry], rules: tuple[str, ...], day: date, frame: Day) -> Group:
    tags = frozenset(entry.key for entry in entries)
    group = Group(entries, tags, rules=rules)
    times = {entry.at for entry in entries if entry.at is not None}
    if len(times) > 1:
        wanted = ", ".join(f"{entry.name} at {entry.at:%H:%M}" for entry in entries if entry.at)
        raise PlanRefused(f"{group.label} go together, but the regimen fixes {wanted}", rules)
    if times:
        group.fixed = wall_minute(day, times.pop(), frame.zone)[0]
    return group


def _check_group(group: Group, gaps: GapRules, frame: Day, table: RuleTable) -> None:
    for first_index, first in enumerate(group.entries):
        for second in group.entries[first_index + 1 :]:
            gap = gaps.between(frozenset({first.key}), frozenset({second.key}))
            if gap.minimum:
                raise PlanRefused(
                    f"{first.name} and {second.name} must share a slot and also be apart",
                    (*group.rules, *gap.rules),
                )
    if group.fixed is not None and not contains(frame.open, group.fixed):
        at = instant_of(group.fixed, frame.zone)
        where = (
            f"in the quiet hours {frame.quiet_text(group.fixed)}"
            if contains(frame.awake, group.fixed)
            else f"outside the waking window {frame.waking_text}"
            if frame.awake
            else f"and the waking window {frame.waking_text} does not exist on {frame.day} "
            "(the clocks skip it)"
        )
        raise PlanRefused(f"{group.label} is fixed at {at:%H:%M}, {where}", (table.window.id,))


def _check_fixed(
    fixed: list[Group], references: list[Reference], gaps: GapRules, frame: Day, table: RuleTable
) -> None:
    """A fixed time is kept, or the plan is refused with the rule it would break."""
    others: list[tuple[str, int, Reference | Group]] = [
        (ref.label, ref.minute, ref) for ref in references
    ]
    others += [(group.label, group.fixed or 0, group) for group in fixed]
    for group in fixed:
        minute = group.fixed or 0
        for label, at, other in others:
            if other is group:
                continue  # itself
            gap = _gap(gaps, group, other)
            if gap.minimum and abs(at - minute) < gap.minimum:
                raise PlanRefused(
                    f"{group.label} is fixed at {instant_of(minute, frame.zone):%H:%M}, less "
                    f"than {duration_text(gap.minimum)} from {label}",
                    gap.rules,
                )


def _restrict(
    group: Group,
    references: list[Reference],
    fixed: list[Group],
    gaps: GapRules,
    frame: Day,
    table: RuleTable,
) -> None:
    """The times a movable group may take: its minimum gaps kept, and its preferred gaps."""
    allowed = preferred = frame.open
    blockers: list[str] = []
    targets: list[tuple[int, Reference | Group, str]] = [
        (ref.minute, ref, ref.label) for ref in references
    ]
    targets += [(other.fixed or 0, other, other.label) for other in fixed]
    for minute, target, label in targets:
        gap = _gap(gaps, group, target)
        if not gap.minimum:
            continue
        allowed = subtract(allowed, minute - gap.minimum, minute + gap.minimum)
        preferred = subtract(preferred, minute - gap.preferred, minute + gap.preferred)
        blockers.append(f"{label} at {instant_of(minute, frame.zone):%H:%M}")
        group.rules = (*group.rules, *(rule for rule in gap.rules if rule not in group.rules))
    if not allowed:
        raise PlanRefused(
            f"no time of day fits {group.label}: {_no_room(frame, blockers)}",
            (table.window.id, *group.rules),
        )
    group.allowed, group.preferred = allowed, preferred


def _gap(gaps: GapRules, group: Group, other: Reference | Group) -> Gap:
    if isinstance(other, Reference):
        return other.gap_from(gaps, group.tags)
    return gaps.between(group.tags, other.tags)


def _no_room(frame: Day, blockers: list[str]) -> str:
    """Why the open day has no room for a dose: what closes it, and what the dose keeps from."""
    if not frame.awake:
        return (
            f"the waking window {frame.waking_text} does not exist on {frame.day} "
            "(the clocks skip it)"
        )
    if not frame.open:
        return (
            f"the quiet hours {frame.quiet_text()} cover the whole waking window "
            f"{frame.waking_text}"
        )
    # the open day is not empty, so something a rule keeps the dose from closed it
    return f"{frame.room_text()} has no room far enough from {', '.join(blockers)}"


def _joint_refusal(
    movable: list[Group], gaps: GapRules, frame: Day, table: RuleTable, cut: bool = False
) -> PlanRefused:
    rules: list[str] = [table.window.id]
    involved: list[str] = []
    for index, first in enumerate(movable):
        for second in movable[index + 1 :]:
            gap = gaps.between(first.tags, second.tags)
            if gap.minimum:
                rules += [*first.rules, *gap.rules]
                involved += [first.label, second.label]
    if not involved:  # cannot happen: each group alone has room, so only a conflict can fail
        involved = [group.label for group in movable]
    labels = ", ".join(dict.fromkeys(involved))
    note = f" (the search stopped after {MAX_SEARCH_STEPS} steps)" if cut else ""
    return PlanRefused(
        f"no placement of {labels} keeps them apart within {frame.room_text()}{note}",
        tuple(dict.fromkeys(rules)),  # each rule once
    )


class Search:
    """Branch and bound over slot times for the movable groups.

    Candidate times are the ends of each group's allowed intervals, the times already taken
    by other slots (so doses can share), and the edges of the gaps kept from doses placed
    before: the vertices of the feasible region, where an optimum always lies.
    """

    def __init__(self, movable: list[Group], fixed: list[Group], gaps: GapRules) -> None:
        # identical groups sit side by side, so the search can try them in one order only
        self.order = sorted(
            range(len(movable)),
            key=lambda i: (_measure(movable[i].allowed), sorted(movable[i].tags), i),
        )
        self.groups = movable
        self.gaps = gaps
        self.fixed_times = [group.fixed or 0 for group in fixed]
        self.points = sorted(
            {point for group in movable for interval in group.allowed for point in interval}
            | {point for group in movable for interval in group.preferred for point in interval}
            | set(self.fixed_times)
        )
        self.best: tuple[int, int, int] | None = None
        self.best_times: list[int] = []
        self.times: list[int] = [0] * len(movable)
        self._prepare()

    def _prepare(self) -> None:
        """What does not change during the search: conflicts, static candidates, bounds."""
        groups, order = self.groups, self.order
        self.conflicts: list[list[tuple[int, Gap]]] = []
        self.static: list[list[tuple[int, int]]] = []
        self.twin_before: list[bool] = []
        for depth, index in enumerate(order):
            group = groups[index]
            placed = [
                (other, self.gaps.between(group.tags, groups[other].tags))
                for other in order[:depth]
            ]
            self.conflicts.append([(other, gap) for other, gap in placed if gap.minimum])
            inside = points_within(group.allowed, self.points)
            kept = set(points_within(group.preferred, inside))
            self.static.append([(minute, 0 if minute in kept else 1) for minute in inside])
            previous = groups[order[depth - 1]] if depth else None
            self.twin_before.append(previous is not None and _same_choices(previous, group))
        # lower bounds of what the groups from a depth on still add (fallbacks, minutes)
        self.rest_fallbacks = [0] * (len(order) + 1)
        self.rest_minutes = [0] * (len(order) + 1)
        for depth in range(len(order) - 1, -1, -1):
            group = groups[order[depth]]
            self.rest_fallbacks[depth] = self.rest_fallbacks[depth + 1] + (not group.preferred)
            self.rest_minutes[depth] = self.rest_minutes[depth + 1] + group.allowed[0][0]

    def run(self) -> list[int] | None:
        slot_members: dict[int, int] = dict.fromkeys(self.fixed_times, 1)
        self._place(0, slot_members, 0, 0)
        return self.best_times if self.best is not None else None

    def _place(self, depth: int, slots: dict[int, int], fallbacks: int, total: int) -> None:
        if depth == len(self.order):
            cost = (fallbacks, len(slots), total)
            if self.best is None or cost < self.best:
                self.best, self.best_times = cost, list(self.times)
            return
        index = self.order[depth]
        later_fallbacks = self.rest_fallbacks[depth + 1]
        later_minutes = self.rest_minutes[depth + 1]
        for minute, is_fallback in self._candidates(depth, slots):
            cost = (fallbacks + is_fallback, len(slots) + (minute not in slots), total + minute)
            bound = (cost[0] + later_fallbacks, cost[1], cost[2] + later_minutes)
            if self.best is not None and bound >= self.best:
                continue
            self.times[index] = minute
            slots[minute] = slots.get(minute, 0) + 1
            self._place(depth + 1, slots, cost[0], cost[2])
            slots[minute] -= 1
            if not slots[minute]:
                del slots[minute]

    def _candidates(self, depth: int, slots: dict[int, int]) -> list[tuple[int, int]]:
        found = self._dynamic(depth) if self.conflicts[depth] else list(self.static[depth])
        if self.twin_before[depth]:
            earliest = self.times[self.order[depth - 1]]
            found = [item for item in found if item[0] >= earliest]
        # shared slots and preferred gaps first, then earliest: good answers come first
        found.sort(key=lambda item: (item[1], item[0] not in slots, item[0]))
        return found

    def _dynamic(self, depth: int) -> list[tuple[int, int]]:
        """Candidates of a group that a rule keeps apart from groups already placed."""
        group = self.groups[self.order[depth]]
        allowed, preferred = group.allowed, group.preferred
        points = set(self.points)
        for placed, gap in self.conflicts[depth]:
            minute = self.times[placed]
            allowed = subtract(allowed, minute - gap.minimum, minute + gap.minimum)
            preferred = subtract(preferred, minute - gap.preferred, minute + gap.preferred)
            points |= {minute - gap.minimum, minute + gap.minimum}
            points |= {minute - gap.preferred, minute + gap.preferred}
        if not allowed:
            return []
        inside = points_within(allowed, sorted(points))
        kept = set(points_within(preferred, inside))
        return [(minute, 0 if minute in kept else 1) for minute in inside]


class CompleteSearch:
    """Branch and bound over slot times in time order: complete where `Search` is not.

    `Search` tries each group at the vertices it can see from the groups placed before it in
    its own order, so a dose whose only good time is "another dose's time + a gap" is missed
    when that other dose comes later in the order. This search places the groups in the order
    of their times instead. Among the placements of a given order, choice of intervals and
    sharing of slots, the earliest (every time as small as it can be) is the best; each of its
    times is the start of a piece of what is still open to that group when the groups before
    it are placed, or the time of a slot it shares. So trying, at each step, every group
    at every such start (and every fixed slot) from the last time on finds the best plan, if
    there is one, within `steps` placements (MAX_SEARCH_STEPS for all the pairings of a day).
    """

    def __init__(
        self, movable: list[Group], fixed: list[Group], gaps: GapRules, steps: int
    ) -> None:
        self.groups = movable
        self.fixed_times = sorted({group.fixed or 0 for group in fixed})
        count = len(movable)
        self.gap = [
            [gaps.between(movable[i].tags, movable[j].tags) for j in range(count)]
            for i in range(count)
        ]
        # identical groups are placed in their order only: a twin waits for the one before it
        self.twin_of: list[int | None] = [
            next((j for j in range(i - 1, -1, -1) if _same_choices(movable[j], movable[i])), None)
            for i in range(count)
        ]
        self.times = [0] * count
        self.best: tuple[int, int, int] | None = None
        self.best_times: list[int] = []
        self.steps = steps
        self.exhausted = False

    def run(self) -> list[int] | None:
        count = len(self.groups)
        allowed = [list(group.allowed) for group in self.groups]
        preferred = [list(group.preferred) for group in self.groups]
        slots: dict[int, int] = dict.fromkeys(self.fixed_times, 1)
        self._place([False] * count, count, allowed, preferred, slots, 0, 0)
        return self.best_times if self.best is not None else None

    def _place(
        self,
        placed: list[bool],
        left: int,
        allowed: list[list[Interval]],
        preferred: list[list[Interval]],
        slots: dict[int, int],
        fallbacks: int,
        total: int,
    ) -> None:
        if not left:
            cost = (fallbacks, len(slots), total)
            if self.best is None or cost < self.best:
                self.best, self.best_times = cost, list(self.times)
            return
        forced = sum(1 for i, done in enumerate(placed) if not done and not preferred[i])
        options: list[tuple[int, bool, int, int]] = []  # (fallback, new slot, minute, group)
        for index, done in enumerate(placed):
            twin = self.twin_of[index]
            if done or (twin is not None and not placed[twin]):
                continue
            starts = {low for low, _ in allowed[index]} | {low for low, _ in preferred[index]}
            starts |= {
                minute
                for minute in self.fixed_times
                if minute >= allowed[index][0][0] and contains(allowed[index], minute)
            }
            options += [
                (0 if contains(preferred[index], minute) else 1, minute not in slots, minute, index)
                for minute in starts
            ]
        options.sort()
        for is_fallback, new_slot, minute, index in options:
            later_forced = forced - (not preferred[index])
            cost = (fallbacks + is_fallback, len(slots) + new_slot, total + minute)
            bound = (cost[0] + later_forced, cost[1], cost[2] + minute * (left - 1))
            if self.best is not None and bound >= self.best:
                continue
            self.steps -= 1
            if self.steps < 0:
                self.exhausted = True
                return
            next_allowed, next_preferred = self._restrict(index, minute, placed, allowed, preferred)
            if next_allowed is None or next_preferred is None:
                continue
            self.times[index], placed[index] = minute, True
            slots[minute] = slots.get(minute, 0) + 1
            self._place(placed, left - 1, next_allowed, next_preferred, slots, *cost[::2])
            placed[index] = False
            slots[minute] -= 1
            if not slots[minute]:
                del slots[minute]
            if self.exhausted:
                return

    def _restrict(
        self,
        index: int,
        minute: int,
        placed: list[bool],
        allowed: list[list[Interval]],
        preferred: list[list[Interval]],
    ) -> tuple[list[list[Interval]] | None, list[list[Interval]] | None]:
        """What stays open to the other groups, from `minute` on, once `index` is there."""
        next_allowed: list[list[Interval]] = []
        next_preferred: list[list[Interval]] = []
        for other, done in enumerate(placed):
            if done or other == index:
                next_allowed.append(allowed[other])
                next_preferred.append(preferred[other])
                continue
            gap = self.gap[index][other]
            room, liked = _from(allowed[other], minute), _from(preferred[other], minute)
            if gap.minimum:
                room = subtract(room, minute - gap.minimum, minute + gap.minimum)
                liked = subtract(liked, minute - gap.preferred, minute + gap.preferred)
            if not room:
                return None, None  # a group left with no time at all: nothing below fits
            next_allowed.append(room)
            next_preferred.append(liked)
        return next_allowed, next_preferred


def _from(intervals: list[Interval], minute: int) -> list[Interval]:
    """The part of the sorted intervals at or after `minute`."""
    return [(max(low, minute), high) for low, high in intervals if high >= minute]


def _same_choices(first: Group, second: Group) -> bool:
    return (
        first.tags == second.tags
        and first.allowed == second.allowed
        and first.preferred == second.preferred
    )


def points_within(intervals: list[Interval], points: list[int]) -> list[int]:
    """The sorted `points` that fall in the sorted, disjoint closed `intervals`."""
    found: list[int] = []
    for start, end in intervals:
        found += points[bisect_left(points, start) : bisect_right(points, end)]
    return found


def _measure(intervals: list[Interval]) -> int:
    return sum(end - start + 1 for start, end in intervals)


def build_slots(
    groups: list[Group],
    references: list[Reference],
    gaps: GapRules,
    frame: Day,
    table: RuleTable,
) -> tuple[Slot, ...]:
    by_minute: dict[int, list[Group]] = {}
    for group in groups:
        assert group.fixed is not None  # every group is placed by now
        by_minute.setdefault(group.fixed, []).append(group)
    slots = []
    for minute in sorted(by_minute):
        members = by_minute[minute]
        items = tuple(_item(entry) for group in members for entry in group.entries)
        why, rules, fallback = explain_slot(minute, members, references, groups, gaps, frame, table)
        is_fixed = any(entry.at is not None for group in members for entry in group.entries)
        slots.append(Slot(instant_of(minute, frame.zone), items, why, rules, is_fixed, fallback))
    return tuple(slots)


def _item(entry: SupplementEntry) -> PlannedItem:
    return PlannedItem(entry.key, str(entry.dose), entry.name, entry.identity.form)


def slot_instant(minute: int, zone: ZoneInfo) -> datetime:
    return instant_of(minute, zone)
