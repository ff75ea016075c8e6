"""The planner does not refuse a regimen that has a valid plan (found by an exploratory tester).

The fast search tries each dose at the times it can see from the doses placed before it in
its own order; a dose whose only good time is "another dose's time + a gap" was missed. The
cases below were refused before; a brute force over 5-minute times checks the general case.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from planner.day import plan_day
from planner.plan import DayPlan, PlanRefused
from planner.rules import RULES
from schemas.regimen import Regimen, SupplementEntry
from tests.plan_checker import (
    check_day_plan,
    check_gaps,
    iron_anchors,
    kind_of,
    repeat_minutes,
    slot_is_open,
    wall_instant,
)
from tests.regimens import IRON, VITAMIN_C, regimen

DAY = date(2026, 6, 1)
CALCIUM = {"name": "calcium", "dose": "500 mg"}
CONFIRMED = {"deficiency_confirmed": True}


REFUSED_BUT_FEASIBLE: dict[str, Regimen] = {
    # night shift: awake 16:00-22:00, yogurt at 13:30; calcium 16:00, iron 19:00, calcium 22:00
    "night shift": regimen(
        [IRON, VITAMIN_C, CALCIUM, CALCIUM],
        timezone="Europe/Copenhagen",
        waking=("16:00", "22:00"),
        meals=[{"name": "snack", "at": "13:30", "contains": ["yogurt"]}],
    ),
    "fuzz 2600": regimen(
        [
            {"name": "vitamin C", "dose": "100 mg", **CONFIRMED},
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
            {"name": "vitamin D", "dose": "5 mg", **CONFIRMED},
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "zinc", "dose": "5 mg", **CONFIRMED},
        ],
        timezone="UTC",
        waking=("08:00", "00:00"),
        quiet=[("15:45", "08:45")],
        meals=[
            {"name": "meal0", "at": "02:00", "contains": ["tea"]},
            {"name": "meal1", "at": "03:30", "contains": []},
            {"name": "meal2", "at": "05:30", "contains": []},
            {"name": "meal3", "at": "17:26", "contains": ["dairy", "milk"]},
        ],
        policy={"black_tea_gap_hours": 5, "repeat_gap_hours": 6},
    ),
    "fuzz 1649": regimen(
        [
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "vitamin D", "dose": "5 mg", **CONFIRMED},
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
        ],
        timezone="Australia/Lord_Howe",
        waking=("09:45", "17:30"),
        meals=[
            {"name": "meal0", "at": "05:24", "contains": ["dairy", "tea"]},
            {"name": "meal1", "at": "03:15", "contains": ["milk", "black tea"]},
            {"name": "meal2", "at": "15:06", "contains": []},
            {"name": "meal3", "at": "02:45", "contains": ["calcium", "milk"]},
        ],
        medications=[{"name": "med0", "at": ["01:30", "00:15"]}],
        policy={"black_tea_gap_hours": 5, "repeat_gap_hours": 6},
    ),
    "fuzz 47703": regimen(
        [
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
            {"name": "copper", "dose": "5 mg", **CONFIRMED},
            {"name": "vitamin C", "dose": "100 mg", **CONFIRMED},
        ],
        timezone="America/Santiago",
        waking=("03:30", "22:45"),
        quiet=[("20:30", "01:00"), ("14:00", "07:44")],
    ),
    "fuzz 42127": regimen(
        [
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "iron", "dose": "9 mg", **CONFIRMED},
            {"name": "copper", "dose": "5 mg", **CONFIRMED},
            {"name": "calcium", "dose": "5 mg", **CONFIRMED},
        ],
        timezone="Europe/Copenhagen",
        waking=("07:15", "20:15"),
        quiet=[("18:38", "12:00")],
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED_BUT_FEASIBLE))
def test_a_regimen_with_a_valid_plan_is_planned_and_the_plan_keeps_every_rule(name: str) -> None:
    person = REFUSED_BUT_FEASIBLE[name]
    plan = plan_day(person, DAY)
    assert not check_day_plan(person, DAY, plan), _show(plan)


def test_the_night_shift_gets_calcium_iron_calcium_three_hours_apart() -> None:
    plan = plan_day(REFUSED_BUT_FEASIBLE["night shift"], DAY)
    assert [(f"{slot.at:%H:%M}", slot.label()) for slot in plan.slots] == [
        ("16:00", "calcium 500 mg"),
        ("19:00", "iron 18 mg + vitamin C 250 mg"),
        ("22:00", "calcium 500 mg"),
    ]
    assert all(slot.minimum_gap_only for slot in plan.slots)


def test_a_joint_refusal_names_each_rule_once() -> None:
    # awake 16:00-21:00: no longer room for calcium, iron, calcium 3 h apart
    person = regimen(
        [IRON, VITAMIN_C, CALCIUM, CALCIUM],
        waking=("16:00", "21:00"),
        meals=[{"name": "snack", "at": "13:30", "contains": ["yogurt"]}],
    )
    with pytest.raises(PlanRefused) as refused:
        plan_day(person, DAY)
    conflicts = refused.value.conflicts
    assert len(conflicts) == len(set(conflicts)), conflicts
    assert set(conflicts) == {
        RULES.window.id,
        "iron-with-vitamin-c",
        "iron-apart-from-dairy-calcium-medicines",
        "repeat-doses-apart",
    }


def _show(plan: DayPlan) -> str:
    return "; ".join(f"{slot.at:%H:%M} {slot.label()}" for slot in plan.slots)


# --- brute force over 5-minute times ---------------------------------------------------------
STEP = 5  # minutes: every time, gap and clock change below is a multiple of it
ZONES = ("UTC", "Europe/Copenhagen", "Asia/Kolkata", "America/New_York")
DAYS = (date(2026, 6, 1), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1))
KINDS: dict[str, dict[str, Any]] = {
    "iron": {"name": "iron", "dose": "18 mg", **CONFIRMED},
    "vitamin_c": {"name": "vitamin C", "dose": "250 mg"},
    "calcium": {"name": "calcium", "dose": "500 mg"},
    "zinc": {"name": "zinc", "dose": "10 mg"},
    "copper": {"name": "copper", "dose": "1 mg", **CONFIRMED},
}


class Budget(Exception):
    """The brute force ran out of steps: no verdict."""


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _times(low: int = 0, high: int = 24 * 60 - STEP) -> st.SearchStrategy[int]:
    return st.integers(low // STEP, high // STEP).map(lambda k: k * STEP)


@st.composite
def small_regimens(draw: st.DrawFn) -> tuple[Regimen, date]:
    start = draw(_times(0, 20 * 60))
    length = draw(st.integers(3 * 60 // STEP, 8 * 60 // STEP)) * STEP
    end = min(start + length, 24 * 60)
    kinds = draw(
        st.lists(
            st.sampled_from(["iron", "iron", "vitamin_c", "calcium", "calcium", "zinc"]),
            min_size=2,
            max_size=4,
        )
    )
    supplements: list[dict[str, Any]] = []
    for kind in kinds:
        entry: dict[str, Any] = {**KINDS[kind]}
        if draw(st.integers(0, 9)) == 0:
            entry["at"] = _clock(draw(_times(start, end - STEP)))
        supplements.append(entry)
    meals = [
        {
            "name": f"meal{index}",
            "at": _clock(draw(_times())),
            "contains": draw(st.sampled_from([["dairy"], ["black tea"], [], ["milk", "tea"]])),
        }
        for index in range(draw(st.integers(0, 3)))
    ]
    medications = [
        {"name": "pill", "at": [_clock(draw(_times()))]} for _ in range(draw(st.integers(0, 1)))
    ]
    quiet = []
    if draw(st.booleans()):
        quiet_start = draw(_times(start, end))
        quiet.append(
            (_clock(quiet_start), _clock((quiet_start + draw(_times(STEP, 4 * 60))) % 1440))
        )
    policy = {
        "repeat_gap_hours": draw(st.sampled_from([2, 3, 4, 6])),
        "black_tea_gap_hours": draw(st.sampled_from([1, 2, 3, 5])),
    }
    person = regimen(
        supplements,
        timezone=draw(st.sampled_from(ZONES)),
        waking=(_clock(start), _clock(end % (24 * 60))),
        meals=meals,
        medications=medications,
        quiet=[pair for pair in quiet if pair[0] != pair[1]],
        policy=policy,
    )
    return person, draw(st.sampled_from(DAYS))


def brute_force_feasible(person: Regimen, day: date, budget: int = 30_000) -> bool:
    """Whether some placement on 5-minute times keeps every minimum gap, pairs each iron it
    can with its own vitamin C and keeps fixed times, as the independent checker reads them."""
    zone = ZoneInfo(person.person.timezone)
    at, end = (
        wall_instant(day, time(0, 0), zone),
        wall_instant(day + timedelta(days=1), time(0, 0), zone),
    )
    grid = []
    while at < end:
        if slot_is_open(person, day, at) is None:
            grid.append(at)
        at += timedelta(minutes=STEP)
    anchors, repeat, counter = iron_anchors(person, day), repeat_minutes(person), [budget]
    for groups in _groupings(person.supplements):
        options = []
        for group in groups:
            fixed = {wall_instant(day, entry.at, zone) for entry in group if entry.at is not None}
            options.append(
                [at for at in fixed if slot_is_open(person, day, at) is None]
                if len(fixed) == 1
                else []
                if fixed
                else grid
            )
        # each group alone away from the day's meals and medicines: a smaller search
        options = [
            [at for at in times if not check_gaps([(entry, at) for entry in group], anchors, 1)]
            for group, times in zip(groups, options, strict=True)
        ]
        if all(options) and _search(groups, options, [], anchors, repeat, counter):
            return True
    return False


def _groupings(entries: list[SupplementEntry]) -> Iterator[list[list[SupplementEntry]]]:
    irons = [entry for entry in entries if kind_of(entry.name)[0] == "iron"]
    cs = [entry for entry in entries if kind_of(entry.name)[0] == "vitamin_c"]
    rest = [entry for entry in entries if entry not in irons and entry not in cs]
    pairs = min(len(irons), len(cs))
    for chosen_irons in itertools.combinations(irons, pairs):
        for chosen_cs in itertools.permutations(cs, pairs):
            groups = [[iron, c] for iron, c in zip(chosen_irons, chosen_cs, strict=True)]
            taken = [member for group in groups for member in group]
            groups += [[entry] for entry in irons + cs + rest if not any(entry is t for t in taken)]
            yield groups


def _search(
    groups: list[list[SupplementEntry]],
    options: list[list[datetime]],
    placed: list[tuple[SupplementEntry, datetime]],
    anchors: Any,
    repeat: int,
    counter: list[int],
) -> bool:
    depth = len({id(group) for group in groups[: _depth(groups, placed)]})
    if depth == len(groups):
        return True
    for at in options[depth]:
        counter[0] -= 1
        if counter[0] < 0:
            raise Budget
        trial = placed + [(entry, at) for entry in groups[depth]]
        if not check_gaps(trial, anchors, repeat) and _search(
            groups, options, trial, anchors, repeat, counter
        ):
            return True
    return False


def _depth(
    groups: list[list[SupplementEntry]], placed: list[tuple[SupplementEntry, datetime]]
) -> int:
    count, depth = len(placed), 0
    while count > 0:
        count -= len(groups[depth])
        depth += 1
    return depth


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(small_regimens())
def test_the_planner_does_not_refuse_what_a_brute_force_over_5_minutes_can_place(
    case: tuple[Regimen, date],
) -> None:
    person, day = case
    note(repr(person.model_dump(mode="json", exclude_defaults=True)))
    note(f"day {day}")
    try:
        feasible = brute_force_feasible(person, day)
    except Budget:
        event("brute force: no verdict")
        return
    event(f"brute force: {'feasible' if feasible else 'infeasible'}")
    try:
        plan = plan_day(person, day)
    except PlanRefused as refusal:
        assert not feasible, f"brute force found a placement; the planner refused: {refusal}"
        return
    assert not check_day_plan(person, day, plan), _show(plan)
    assert feasible, f"the brute force found no placement; the planner: {_show(plan)}"
