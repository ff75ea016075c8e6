"""Property-based tests: random regimens, every plan checked by an independent checker.

The checker (tests/plan_checker.py) is written from domain-rules.md and shares no code path
with the planner. On regimens whose times all lie on a 15-minute grid, a brute-force search
over that grid decides feasibility on its own, and must agree with the planner: every wall
time, gap and clock change of the zones used is a whole multiple of 15 minutes, so the grid
holds a solution whenever any minute does (difference constraints with grid bounds).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from planner.cold_course import plan_cold_course
from planner.day import Pairing, pairings, plan_day
from planner.plan import DayPlan, PlanRefused
from planner.rules import RULES
from schemas.regimen import Regimen, SupplementEntry, TimeWindow
from tests.plan_checker import (
    Anchor,
    check_cold_course,
    check_day_plan,
    check_gaps,
    check_iron_with_vitamin_c,
    check_refusal,
    iron_anchors,
    kind_of,
    repeat_minutes,
    selenium_micrograms,
    slot_is_open,
    wall_instant,
)

ZONES = ("Europe/Copenhagen", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC")
CLOCK_CHANGE_DAYS = (
    date(2026, 3, 29),  # Copenhagen springs forward
    date(2026, 10, 25),  # Copenhagen falls back
    date(2026, 3, 8),  # New York springs forward
    date(2026, 11, 1),  # New York falls back
    date(2026, 4, 5),  # Lord Howe falls back 30 min
    date(2026, 10, 4),  # Lord Howe springs forward 30 min
)
NAMES: dict[str, tuple[str, ...]] = {
    "iron": ("iron", "Iron bisglycinate", "ferrous sulfate", "ferrous fumarate"),
    "vitamin_c": ("vitamin C", "Vitamin C", "ascorbic acid"),
    "calcium": ("calcium", "calcium carbonate", "Calcium citrate"),
    "zinc": ("zinc", "zinc picolinate", "zinc gluconate"),
    "copper": ("copper", "copper gluconate"),
    "selenium": ("selenium", "selenomethionine"),
    "magnesium": ("magnesium citrate", "magnesium oxide", "magnesium glycinate", "magnesium"),
    "custom": ("ashwagandha", "beetroot powder", "coenzyme Q10"),
}
DOSES: dict[str, st.SearchStrategy[str]] = {
    "iron": st.sampled_from(["9 mg", "14 mg", "18 mg", "25 mg", "65 mg"]),
    "vitamin_c": st.sampled_from(["100 mg", "250 mg", "0.5 g", "1000 mg"]),
    "calcium": st.sampled_from(["200 mg", "500 mg", "1 g"]),
    "zinc": st.sampled_from(["5 mg", "10 mg", "15 mg", "25 mg", "30 mg"]),
    "copper": st.sampled_from(["1 mg", "2 mg", "500 µg"]),
    "selenium": st.sampled_from(["50 µg", "100 mcg", "200 µg", "0.2 mg", "350 µg"]),
    "magnesium": st.sampled_from(["100 mg", "300 mg", "375 mg"]),
    "custom": st.sampled_from(["1 g", "200 mg", "100 mg"]),
}
GRID = 15  # minutes: the brute-force grid


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def clocks(step: int, low: int = 0, high: int = 24 * 60 - 1) -> st.SearchStrategy[int]:
    return st.integers(-(-low // step), high // step).map(lambda k: k * step)


def mostly(usual: st.SearchStrategy[int], rare: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    return st.one_of(usual, usual, usual, rare)


@st.composite
def supplements(
    draw: st.DrawFn, step: int, count: tuple[int, int], fixed_chance: float, awake: tuple[int, int]
) -> list[dict[str, Any]]:
    entries = []
    for _ in range(draw(st.integers(*count))):
        kind = draw(st.sampled_from(sorted(NAMES)))
        entry: dict[str, Any] = {
            "name": draw(st.sampled_from(NAMES[kind])),
            "dose": draw(DOSES[kind]),
            "deficiency_confirmed": draw(st.booleans()),
        }
        if draw(st.floats(0, 1)) < fixed_chance:
            entry["at"] = _clock(draw(mostly(clocks(step, *awake), clocks(step))))
        entries.append(entry)
    return entries


def quiet_hours(step: int) -> st.SearchStrategy[tuple[int, int]]:
    night = st.tuples(clocks(step, 20 * 60, 23 * 60 + 59), clocks(step, 0, 8 * 60))
    nap = st.tuples(clocks(step, 0, 22 * 60), clocks(step, step, 3 * 60)).map(
        lambda pair: (pair[0], min(pair[0] + pair[1], 23 * 60 + 59))
    )
    small_hours = st.tuples(clocks(step, 0, 4 * 60), clocks(step, 0, 4 * 60))
    anywhere = st.tuples(clocks(step), clocks(step))
    return st.one_of(night, nap, small_hours, anywhere).filter(lambda pair: pair[0] != pair[1])


@dataclass(frozen=True)
class Case:
    regimen: Regimen
    day: date
    step: int  # every time of the regimen is a multiple of this many minutes

    def __repr__(self) -> str:
        data = self.regimen.model_dump(mode="json", exclude_defaults=True)
        return f"Case(day={self.day!r}, step={self.step}, regimen={data!r})"


@st.composite
def cases(
    draw: st.DrawFn,
    supplement_count: tuple[int, int] = (1, 6),
    fixed_chance: float = 0.25,
    step: int | None = None,
) -> Case:
    step = step or draw(st.sampled_from([1, GRID, GRID, 30]))
    wake = draw(
        st.one_of(clocks(step, 5 * 60, 9 * 60), clocks(step, 0, 3 * 60), clocks(step, 0, 12 * 60))
    )
    sleep = draw(
        mostly(clocks(step, max(wake + step, 20 * 60), 23 * 60 + 59), clocks(step, wake + step))
    )
    quiet = [
        {"from": _clock(start), "to": _clock(end)}
        for start, end in draw(st.lists(quiet_hours(step), max_size=2))
    ]
    contents = st.lists(st.sampled_from(["dairy", "calcium", "black_tea", "other"]), unique=True)
    meals = [
        {
            "name": f"meal {index}",
            "at": _clock(draw(mostly(clocks(step, wake, sleep), clocks(step)))),
            "contains": draw(contents),
        }
        for index in range(draw(st.integers(0, 4)))
    ]
    medications = [
        {
            "name": f"medicine {index}",
            "at": [
                _clock(minute) for minute in draw(st.lists(clocks(step), min_size=1, max_size=2))
            ],
        }
        for index in range(draw(st.integers(0, 3)))
    ]
    policy = draw(
        st.sampled_from(
            [
                {},
                {},
                {},
                {"black_tea_gap_hours": 2},
                {"repeat_gap_hours": 3},
                {"repeat_gap_hours": 6},
            ]
        )
    )
    regimen = Regimen.model_validate(
        {
            "person": {
                "name": "Random Person",
                "phone": "+4520123456",
                "timezone": draw(st.sampled_from(ZONES)),
                "waking": {"from": _clock(wake), "to": _clock(sleep)},
                "quiet": quiet,
            },
            "meals": meals,
            "medications": medications,
            "supplements": draw(supplements(step, supplement_count, fixed_chance, (wake, sleep))),
            "policy": policy,
        }
    )
    day = draw(
        st.one_of(
            st.sampled_from(CLOCK_CHANGE_DAYS), st.dates(date(2026, 1, 1), date(2027, 12, 31))
        )
    )
    return Case(regimen, day, step)


def _fall_back_night(quiet: tuple[str, str]) -> Case:
    """Copenhagen falls back at 03:00 CEST on 2026-10-25: 02:00-03:00 happens twice. A
    medicine at 00:00 and a dairy breakfast at 05:30 leave iron only 02:00 to 02:30 CET."""
    regimen = Regimen.model_validate(
        {
            "person": {
                "name": "Night Owl",
                "phone": "+4520123456",
                "timezone": "Europe/Copenhagen",
                "waking": {"from": "01:00", "to": "05:00"},
                "quiet": [{"from": quiet[0], "to": quiet[1]}],
            },
            "meals": [{"name": "breakfast", "at": "05:30", "contains": ["dairy"]}],
            "medications": [{"name": "levothyroxine", "at": "00:00"}],
            "supplements": [
                {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True},
                {"name": "vitamin C", "dose": "250 mg"},
            ],
        }
    )
    return Case(regimen, date(2026, 10, 25), GRID)


# --- brute force over a grid ---------------------------------------------------------------
class Budget(Exception):
    """The search ran out of its node budget: no verdict."""


def brute_force_feasible(regimen: Regimen, day: date, budget: int = 50_000) -> bool:
    """Whether some placement of every dose on the 15-minute grid keeps every minimum gap,
    pairs iron with vitamin C (any iron with any vitamin C), keeps fixed times and falls in the
    open day as the checker reads it. Raises Budget."""
    if selenium_micrograms(regimen) > 300:
        return False
    grid = [at for at in _grid(regimen, day) if slot_is_open(regimen, day, at) is None]
    anchors = iron_anchors(regimen, day)
    repeat = repeat_minutes(regimen)
    counter = [budget]
    for groups in _groupings(regimen.supplements):
        options = [_options(group, regimen, day, grid) for group in groups]
        if all(options) and _search(groups, options, [], anchors, repeat, counter):
            return True
    return False


def _grid(regimen: Regimen, day: date) -> Iterator[datetime]:
    zone = ZoneInfo(regimen.person.timezone)
    at = wall_instant(day, time(0, 0), zone)
    end = wall_instant(day + timedelta(days=1), time(0, 0), zone)
    while at < end:
        yield at
        at += timedelta(minutes=GRID)


def _groupings(entries: list[SupplementEntry]) -> Iterator[list[list[SupplementEntry]]]:
    """Every way of pairing each iron with its own vitamin C (as many pairs as possible)."""
    irons = [entry for entry in entries if kind_of(entry.name)[0] == "iron"]
    vitamin_cs = [entry for entry in entries if kind_of(entry.name)[0] == "vitamin_c"]
    rest = [entry for entry in entries if entry not in irons and entry not in vitamin_cs]
    pairs = min(len(irons), len(vitamin_cs))
    for chosen_irons in itertools.combinations(irons, pairs):
        for chosen_cs in itertools.permutations(vitamin_cs, pairs):
            groups = [[iron, c] for iron, c in zip(chosen_irons, chosen_cs, strict=True)]
            groups += [[entry] for entry in irons + vitamin_cs + rest if not _in(entry, groups)]
            yield groups


def _in(entry: SupplementEntry, groups: list[list[SupplementEntry]]) -> bool:
    return any(member is entry for group in groups for member in group)


def _options(
    group: list[SupplementEntry], regimen: Regimen, day: date, grid: list[datetime]
) -> list[datetime]:
    zone = ZoneInfo(regimen.person.timezone)
    fixed = {wall_instant(day, entry.at, zone) for entry in group if entry.at is not None}
    if len(fixed) > 1:
        return []
    if fixed:
        return [at for at in fixed if slot_is_open(regimen, day, at) is None]
    return grid


def _search(
    groups: list[list[SupplementEntry]],
    options: list[list[datetime]],
    placed: list[tuple[SupplementEntry, datetime]],
    anchors: list[Anchor],
    repeat: int,
    counter: list[int],
) -> bool:
    """Depth-first: place group number len(done) at each of its options in turn."""
    index = _next_group(groups, placed)
    if index is None:
        return True
    for at in options[index]:
        counter[0] -= 1
        if counter[0] < 0:
            raise Budget
        trial = placed + [(entry, at) for entry in groups[index]]
        if not check_gaps(trial, anchors, repeat) and _search(
            groups, options, trial, anchors, repeat, counter
        ):
            return True
    return False


def _next_group(
    groups: list[list[SupplementEntry]], placed: list[tuple[SupplementEntry, datetime]]
) -> int | None:
    count = len(placed)
    for index, group in enumerate(groups):
        if count <= 0:
            return index
        count -= len(group)
    return None


# --- the properties ---------------------------------------------------------------------------
def _plan(case: Case) -> DayPlan | PlanRefused:
    note(repr(case))
    try:
        return plan_day(case.regimen, case.day)
    except PlanRefused as refusal:
        return refusal


def _assert_sound(case: Case, outcome: DayPlan | PlanRefused) -> None:
    event("refused" if isinstance(outcome, PlanRefused) else "planned")
    if isinstance(outcome, PlanRefused):
        assert not check_refusal(case.regimen, outcome.conflicts), outcome
        # it names what conflicts: never an empty list of things a dose keeps from
        reason = outcome.reason
        assert "  " not in reason and "from ," not in reason, reason
        assert not reason.endswith(("from", "from ")) and "refused" not in reason, reason
    else:
        problems = check_day_plan(case.regimen, case.day, outcome)
        assert not problems, _show(outcome)


def _show(plan: DayPlan) -> str:
    zone = ZoneInfo(plan.timezone)
    return "; ".join(f"{slot.at.astimezone(zone):%H:%M%z} {slot.label()}" for slot in plan.slots)


def _assert_agrees_with_brute_force(case: Case, outcome: DayPlan | PlanRefused) -> None:
    if case.step % GRID:
        return
    try:
        feasible = brute_force_feasible(case.regimen, case.day)
    except Budget:
        event("brute force: no verdict")
        return
    event(f"brute force: {'feasible' if feasible else 'infeasible'}")
    if feasible:
        assert isinstance(outcome, DayPlan), f"brute force found a placement; planner: {outcome}"
    else:
        assert isinstance(outcome, PlanRefused), f"brute force found none: {_show(outcome)}"


PROPERTY_SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPERTY_SETTINGS
@given(cases())
@example(_fall_back_night(("02:00", "02:30")))
@example(_fall_back_night(("02:30", "04:00")))
def test_every_plan_keeps_every_rule_or_names_the_conflict(case: Case) -> None:
    outcome = _plan(case)
    _assert_sound(case, outcome)
    _assert_agrees_with_brute_force(case, outcome)


@PROPERTY_SETTINGS
@given(cases(supplement_count=(1, 3), fixed_chance=0.15, step=GRID))
def test_brute_force_on_small_regimens_agrees_on_feasibility(case: Case) -> None:
    outcome = _plan(case)
    _assert_sound(case, outcome)
    _assert_agrees_with_brute_force(case, outcome)


# --- the cold course ---------------------------------------------------------------------------
@st.composite
def course_cases(draw: st.DrawFn) -> tuple[Case, datetime]:
    case = draw(cases(supplement_count=(1, 3), fixed_chance=0.1))
    zone = ZoneInfo(case.regimen.person.timezone)
    local = datetime.combine(case.day, time(0, 0)) + timedelta(minutes=draw(st.integers(0, 1439)))
    onset = local.replace(tzinfo=zone).astimezone(UTC)
    days = draw(st.sampled_from([None, None, 1, 3, 14, 15, 30]))
    if days is not None:
        policy = case.regimen.policy.model_copy(update={"cold_course_days": days})
        case = Case(case.regimen.model_copy(update={"policy": policy}), case.day, case.step)
    return case, onset


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(course_cases())
def test_cold_course_keeps_its_rules(course: tuple[Case, datetime]) -> None:
    case, onset = course
    regimen = case.regimen
    if regimen.policy.cold_course_days > 14:
        with pytest.raises(PlanRefused) as refused:
            plan_cold_course(regimen, onset)
        assert "zinc-cold-course" in refused.value.conflicts
        return
    try:
        plan = plan_cold_course(regimen, onset)
    except PlanRefused as refusal:
        assert not check_refusal(regimen, refusal.conflicts)
        return
    zone = ZoneInfo(regimen.person.timezone)
    lozenges = [dose.at for dose in plan.doses]
    days = {at.astimezone(zone).date() for at in lozenges}
    day_plans = {day: plan_day(regimen, day) for day in days}
    for day, day_plan in day_plans.items():
        assert not check_day_plan(regimen, day, day_plan)
    assert not check_cold_course(regimen, onset, lozenges, day_plans), plan


def test_checker_catches_iron_next_to_dairy() -> None:
    """The checker is not vacuous: a hand-made plan that breaks a rule fails it."""
    case = _ana()
    plan = plan_day(case.regimen, case.day)
    assert not check_day_plan(case.regimen, case.day, plan)
    breakfast = wall_instant(case.day, time(7, 30), ZoneInfo("Europe/Copenhagen"))
    moved = [slot for slot in plan.slots if any(i.supplement == "iron" for i in slot.items)]
    broken = DayPlan(
        plan.date,
        plan.timezone,
        tuple(
            type(slot)(breakfast, slot.items, slot.why, slot.rules) if slot in moved else slot
            for slot in plan.slots
        ),
        plan.warnings,
    )
    problems = check_day_plan(case.regimen, case.day, broken)
    assert any("from breakfast" in problem for problem in problems)
    assert check_iron_with_vitamin_c([]) == []


def _ana() -> Case:
    regimen = Regimen.model_validate(
        {
            "person": {
                "name": "Ana",
                "phone": "+4520123456",
                "timezone": "Europe/Copenhagen",
            },
            "meals": [{"name": "breakfast", "at": "07:30", "contains": ["dairy"]}],
            "supplements": [
                {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True},
                {"name": "vitamin C", "dose": "250 mg"},
            ],
        }
    )
    return Case(regimen, date(2026, 3, 29), GRID)


# --- regressions the properties found ---------------------------------------------------------
@pytest.mark.parametrize(
    ("quiet", "expected"),
    [
        # quiet hours hold for both passes of the repeated hour: the planner used to put iron
        # at the second 02:00, a wall time inside 02:00-02:30
        (("02:00", "02:30"), "02:30+0100"),
        (("01:00", "02:30"), "02:30+0100"),
        # and the second 02:00-02:30 is not in quiet hours 02:30-04:00: it used to refuse
        (("02:30", "04:00"), "02:00+0100"),
    ],
)
def test_quiet_hours_are_wall_clock_hours_on_a_fall_back_night(
    quiet: tuple[str, str], expected: str
) -> None:
    case = _fall_back_night(quiet)
    plan = plan_day(case.regimen, case.day)
    assert not check_day_plan(case.regimen, case.day, plan)
    assert [f"{slot.at:%H:%M%z}" for slot in plan.slots] == [expected]
    assert brute_force_feasible(case.regimen, case.day)


def test_a_waking_window_inside_the_skipped_hour_has_no_room() -> None:
    case = _ana()
    person = case.regimen.person.model_copy(
        update={"waking": TimeWindow(start=time(2, 0), end=time(2, 45))}
    )
    regimen = case.regimen.model_copy(update={"person": person})
    with pytest.raises(PlanRefused) as refused:
        plan_day(regimen, date(2026, 3, 29))
    assert "waking-window" in refused.value.conflicts


def test_lozenges_stay_two_hours_apart_across_midnight() -> None:
    """Each course day used to start afresh at waking time: with a waking day from 00:00 the
    last lozenge at 22:01 was followed by one at 00:00, 1 h 59 min later."""
    regimen = Regimen.model_validate(
        {
            "person": {
                "name": "Night Owl",
                "phone": "+4520123456",
                "timezone": "Europe/Copenhagen",
                "waking": {"from": "00:00", "to": "23:59"},
            },
            "supplements": [{"name": "magnesium citrate", "dose": "300 mg"}],
        }
    )
    zone = ZoneInfo("Europe/Copenhagen")
    onset = datetime(2026, 11, 23, 7, 1, tzinfo=zone)
    course = plan_cold_course(regimen, onset)
    lozenges = [dose.at for dose in course.doses]
    day_plans = {
        day: plan_day(regimen, day) for day in {at.astimezone(zone).date() for at in lozenges}
    }
    assert not check_cold_course(regimen, onset, lozenges, day_plans)


def test_iron_pairs_with_the_vitamin_c_that_fits() -> None:
    """Iron used to pair with the first vitamin C in the file; when that one is fixed next to
    a dairy meal the plan was refused, although the second vitamin C fits."""
    case = Case(
        Regimen.model_validate(
            {
                "person": {
                    "name": "Random Person",
                    "phone": "+4520123456",
                    "timezone": "Europe/Copenhagen",
                    "waking": {"from": "05:00", "to": "20:00"},
                },
                "meals": [{"name": "breakfast", "at": "05:00", "contains": ["dairy"]}],
                "supplements": [
                    {"name": "iron", "dose": "9 mg"},
                    {"name": "vitamin C", "dose": "100 mg", "at": "05:00"},
                    {"name": "calcium", "dose": "200 mg"},
                    {"name": "vitamin C", "dose": "100 mg"},
                ],
            }
        ),
        date(2026, 3, 29),
        GRID,
    )
    plan = plan_day(case.regimen, case.day)
    assert not check_day_plan(case.regimen, case.day, plan)
    assert brute_force_feasible(case.regimen, case.day)


# --- pairings: interchangeable doses are paired one way only, in the order they were -------
def _all_pairings(entries: list[SupplementEntry]) -> Iterator[Pairing]:
    """Every pairing, the way the planner once tried them: each combination of irons with
    each permutation of vitamin Cs, the regimen's order first."""
    irons = [entry for entry in entries if entry.key == "iron"]
    vitamin_cs = [entry for entry in entries if entry.key == "vitamin_c"]
    count = min(len(irons), len(vitamin_cs))
    for chosen in itertools.combinations(irons, count):
        for matched in itertools.permutations(vitamin_cs, count):
            pairing: Pairing = [
                ([iron, c], ("iron-with-vitamin-c",))
                for iron, c in zip(chosen, matched, strict=True)
            ]
            taken = [entry for entries, _ in pairing for entry in entries]
            pairing += [([entry], ()) for entry in entries if not _in(entry, [taken])]
            yield pairing


def _timing(pairing: Pairing) -> list[tuple[tuple[tuple[str, str], ...], tuple[str, ...]]]:
    return sorted(
        (tuple((entry.key, f"{entry.at}") for entry in entries), rules)
        for entries, rules in pairing
    )


def _fits(pairing: Pairing) -> bool:
    """Whether a pairing could be planned at all: no pair fixed at two different times."""
    return all(len({entry.at for entry in entries if entry.at}) <= 1 for entries, _ in pairing)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["iron", "vitamin C", "zinc"]),
            st.sampled_from([None, None, "08:00", "09:00"]),
        ),
        max_size=8,
    )
)
def test_pairings_are_the_first_of_each_kind_in_the_order_once_tried(
    doses: list[tuple[str, str | None]],
) -> None:
    """The planner tries the pairings that differ in timing, in the order it once tried every
    pairing: so it finds the same first one that fits, and so the same plan."""
    entries = [
        SupplementEntry.model_validate(
            {"name": name, "dose": f"{index + 1} mg", **({"at": at} if at else {})}
        )
        for index, (name, at) in enumerate(doses)
    ]
    expected: list[Pairing] = []
    keys: list[object] = []
    for index, pairing in enumerate(_all_pairings(entries)):
        key = _timing(pairing)
        if key not in keys and (index == 0 or _fits(pairing)):
            keys.append(key)
            expected.append(pairing)
    found = list(pairings(entries, RULES))
    assert [_identities(pairing) for pairing in found] == [
        _identities(pairing) for pairing in expected
    ]


def _identities(pairing: Pairing) -> list[tuple[int, ...]]:
    return [tuple(id(entry) for entry in entries) for entries, _ in pairing]
