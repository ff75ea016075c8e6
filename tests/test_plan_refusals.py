"""Refusals and explanations say what is true, once; pairing many doses stays bounded."""

from __future__ import annotations

import argparse
import itertools
from datetime import date
from pathlib import Path

import pytest

from dosewise.cmd_plan import run
from dosewise.errors import UserError
from planner import day as planner_day
from planner.day import pairings, plan_day
from planner.plan import PlanRefused
from planner.rules import RULES
from tests.plan_checker import check_day_plan, check_refusal
from tests.regimens import IRON, VITAMIN_C, regimen

DAY = date(2026, 11, 23)
ZINC = {"name": "zinc", "dose": "10 mg"}


def _refusal(person: object, day: date = DAY) -> PlanRefused:
    with pytest.raises(PlanRefused) as refused:
        plan_day(person, day)  # type: ignore[arg-type]
    return refused.value


def _names_no_empty_list(reason: str) -> None:
    assert "  " not in reason, reason
    assert not reason.rstrip().endswith("from"), reason
    assert "from ," not in reason and "from [" not in reason, reason


# --- 1. a refusal names what conflicts -------------------------------------------------------
def test_quiet_hours_that_cover_the_waking_window_are_named() -> None:
    refusal = _refusal(regimen([ZINC], timezone="America/Havana", quiet=[("06:00", "23:00")]))
    _names_no_empty_list(refusal.reason)
    assert "quiet hours 06:00-23:00" in refusal.reason
    assert "07:00-22:00" in refusal.reason
    assert refusal.conflicts == (RULES.window.id,)


def test_several_quiet_hours_that_together_cover_the_day_are_all_named() -> None:
    refusal = _refusal(regimen([ZINC], quiet=[("06:00", "15:00"), ("14:00", "23:30")]))
    _names_no_empty_list(refusal.reason)
    assert "06:00-15:00" in refusal.reason and "14:00-23:30" in refusal.reason


def test_quiet_hours_that_leave_no_room_beside_a_meal_are_named_with_it() -> None:
    refusal = _refusal(
        regimen(
            [IRON, VITAMIN_C],
            meals=[{"name": "lunch", "at": "12:00", "contains": ["dairy"]}],
            quiet=[("07:00", "09:30"), ("15:00", "22:30")],
        )
    )
    _names_no_empty_list(refusal.reason)
    assert "quiet hours 07:00-09:30, 15:00-22:30" in refusal.reason
    assert "lunch (dairy) at 12:00" in refusal.reason
    assert RULES.window.id in refusal.conflicts
    assert "iron-apart-from-dairy-calcium-medicines" in refusal.conflicts


def test_quiet_hours_outside_the_waking_window_are_not_blamed() -> None:
    refusal = _refusal(
        regimen(
            [IRON, VITAMIN_C],
            meals=[
                {"name": f"m{hour}", "at": f"{hour:02d}:00", "contains": ["dairy"]}
                for hour in (7, 12, 17, 22)
            ],
            quiet=[("23:00", "06:00")],
        )
    )
    _names_no_empty_list(refusal.reason)
    assert "quiet" not in refusal.reason
    assert "m12 (dairy) at 12:00" in refusal.reason


def test_a_waking_window_the_clocks_skip_is_named_as_such() -> None:
    refusal = _refusal(regimen([ZINC], waking=("02:00", "02:45")), date(2026, 3, 29))
    _names_no_empty_list(refusal.reason)
    assert "02:00-02:45" in refusal.reason and "clocks" in refusal.reason
    assert refusal.conflicts == (RULES.window.id,)


def test_a_fixed_time_in_quiet_hours_names_them() -> None:
    refusal = _refusal(regimen([{**ZINC, "at": "13:30"}], quiet=[("13:00", "14:00")]))
    assert "quiet hours 13:00-14:00" in refusal.reason
    assert "outside the waking window" not in refusal.reason
    assert refusal.conflicts == (RULES.window.id,)


def test_a_fixed_time_outside_the_waking_window_says_so() -> None:
    refusal = _refusal(regimen([{**ZINC, "at": "23:30"}], quiet=[("13:00", "14:00")]))
    assert "outside the waking window 07:00-22:00" in refusal.reason
    assert "quiet" not in refusal.reason


# --- 2. "refused" once ---------------------------------------------------------------------
SELENIUM_OVER = {"name": "selenium", "dose": "400 µg"}


def test_a_refusing_limit_does_not_say_refused_itself() -> None:
    refusal = _refusal(regimen([SELENIUM_OVER]))
    assert "refused" not in str(refusal)
    assert "selenium-upper-limit" in refusal.conflicts
    assert not check_refusal(regimen([SELENIUM_OVER]), refusal.conflicts)


@pytest.mark.parametrize("form", ["text", "json"])
def test_the_cli_says_plan_refused_once(tmp_path: Path, form: str) -> None:
    path = tmp_path / "regimen.yaml"
    path.write_text(
        "person: {name: Bo, phone: '+4520123456', timezone: Europe/Copenhagen}\n"
        "supplements: [{name: selenium, dose: 400 µg}]\n",
        encoding="utf-8",
    )
    arguments = argparse.Namespace(file=str(path), date=DAY, format=form)
    with pytest.raises(UserError) as error:
        run(arguments)
    line = str(error.value).removeprefix(f"{path}: ")  # the path names this test: "refused"
    assert line.startswith("plan refused: selenium 400 µg/day"), line
    assert line.lower().count("refused") == 1, line


# --- 3. the why lines are true -------------------------------------------------------------
def test_a_shared_slot_names_what_it_shares_with_and_does_not_deny_iron_its_rules() -> None:
    person = regimen([IRON, VITAMIN_C, {"name": "selenium", "dose": "100 µg"}])
    plan = plan_day(person, DAY)
    (slot,) = plan.slots
    assert not check_day_plan(person, DAY, plan)
    assert not any("no timing rule" in line for line in slot.why), slot.why
    assert "iron + vitamin C: no rule keeps it apart from selenium, so they share one reminder" in (
        slot.why
    )
    assert "selenium: no rule keeps it apart from iron + vitamin C, so they share one reminder" in (
        slot.why
    )


def test_iron_alone_in_a_day_without_dairy_is_not_said_to_have_no_rules() -> None:
    plan = plan_day(regimen([IRON, VITAMIN_C]), DAY)
    (slot,) = plan.slots
    assert not any("no timing rule applies" in line for line in slot.why), slot.why
    assert any("iron-with-vitamin-c" in line for line in slot.why)


# --- 4. pairing many doses is bounded ------------------------------------------------------
def _many(count: int, fixed: bool = False) -> list[dict[str, object]]:
    doses = []
    for index in range(count):
        iron = {"name": "iron", "dose": f"{index + 1} mg", "deficiency_confirmed": True}
        vitamin_c = {"name": "vitamin C", "dose": f"{100 + index} mg"}
        if fixed:
            iron["at"] = f"{7 + index:02d}:00"
            vitamin_c["at"] = f"{7 + index:02d}:30"
        doses += [iron, vitamin_c]
    return doses


def _dairy_every_two_hours() -> list[dict[str, object]]:
    return [
        {"name": f"meal {hour}", "at": f"{hour:02d}:00", "contains": ["dairy"]}
        for hour in range(7, 23, 2)
    ]


def test_interchangeable_doses_are_paired_one_way_only() -> None:
    person = regimen(_many(8), meals=_dairy_every_two_hours())
    found = list(itertools.islice(pairings(person.supplements, RULES), 2))
    assert len(found) == 1
    (pairing,) = found
    # the regimen's order: the n-th iron with the n-th vitamin C
    assert [[entry.dose for entry in entries] for entries, _ in pairing] == [
        [person.supplements[2 * index].dose, person.supplements[2 * index + 1].dose]
        for index in range(8)
    ]


def test_doses_fixed_at_different_times_are_paired_only_where_they_can_share_a_slot() -> None:
    person = regimen(_many(8, fixed=True))
    found = list(itertools.islice(pairings(person.supplements, RULES), 2))
    assert len(found) == 1  # the regimen's order; every other pairs two different times


def test_the_number_of_pairings_tried_is_capped_and_a_refusal_says_so() -> None:
    """Two irons and sixteen vitamin C doses, each at its own time: 120 ways to choose which
    two vitamin Cs go with the irons, none of which fits beside a dairy meal every hour."""
    vitamin_cs = [{**VITAMIN_C, "at": f"{hour:02d}:15"} for hour in range(6, 22)]
    meals = [
        {"name": f"meal {hour}", "at": f"{hour:02d}:00", "contains": ["dairy"]}
        for hour in range(7, 23)
    ]
    person = regimen([IRON, {**IRON, "dose": "9 mg"}, *vitamin_cs], meals=meals)
    budget = planner_day.PairingBudget()
    found = list(pairings(person.supplements, RULES, budget))
    assert len(found) == planner_day.MAX_PAIRINGS and budget.exhausted
    refusal = _refusal(person)
    assert f"the first {planner_day.MAX_PAIRINGS} were tried" in refusal.reason
    assert not check_refusal(person, refusal.conflicts)
    without_cap = planner_day.PairingBudget(pairings=200)
    assert len(list(pairings(person.supplements, RULES, without_cap))) == 120
    assert not without_cap.exhausted


def test_eight_irons_and_eight_vitamin_cs_with_dairy_every_two_hours_are_decided() -> None:
    person = regimen(_many(8), meals=_dairy_every_two_hours())
    refusal = _refusal(person)
    assert not check_refusal(person, refusal.conflicts)
    _names_no_empty_list(refusal.reason)


def test_a_pairing_that_fits_is_still_found_among_distinct_doses() -> None:
    """Which vitamin C goes with which iron matters when one is fixed: the second one fits."""
    person = regimen(
        [
            {**IRON, "dose": "9 mg"},
            {**VITAMIN_C, "at": "07:30"},
            {**IRON, "dose": "14 mg"},
            {**VITAMIN_C, "dose": "100 mg"},
            {**VITAMIN_C, "dose": "200 mg"},
        ],
        meals=[{"name": "breakfast", "at": "08:00", "contains": ["dairy"]}],
    )
    plan = plan_day(person, DAY)
    assert not check_day_plan(person, DAY, plan)
    assert len(list(pairings(person.supplements, RULES))) == 2


# --- what a regimen says that the rules cannot use, and a course too long --------------------
def test_a_meal_content_no_rule_knows_is_warned_not_silently_ignored() -> None:
    breakfast = {"name": "breakfast", "at": "08:00", "contains": ["diary"]}
    plan = plan_day(regimen([IRON, VITAMIN_C], meals=[breakfast]), DAY)
    warned = [warning for warning in plan.warnings if "'diary'" in warning]
    assert len(warned) == 1 and "meal breakfast" in warned[0] and "dairy" in warned[0]
    milk = {"name": "breakfast", "at": "08:00", "contains": ["milk products"]}
    plan = plan_day(regimen([IRON, VITAMIN_C], meals=[milk]), DAY)
    assert not [warning for warning in plan.warnings if "meal breakfast" in warning]
    assert check_day_plan(regimen([IRON, VITAMIN_C], meals=[milk]), DAY, plan) == []
    assert plan.slots[0].at.hour >= 11  # 3 h at least from the 08:00 milk


def test_a_cold_course_over_14_days_is_refused_when_the_regimen_is_planned() -> None:
    refusal = _refusal(regimen([ZINC], policy={"cold_course_days": 15}))
    assert "zinc-cold-course" in refusal.conflicts and "15 days" in refusal.reason
    assert plan_day(regimen([ZINC], policy={"cold_course_days": 14}), DAY).slots


# --- a waking window until midnight ------------------------------------------------------------
@pytest.mark.parametrize("day", [DAY, date(2026, 10, 25), date(2026, 3, 29)])  # DST both ways
def test_a_waking_window_to_midnight_runs_until_the_days_last_minute(day: date) -> None:
    dinner = {"name": "dinner", "at": "20:30", "contains": ["dairy"]}
    late = {"name": "magnesium citrate", "dose": "300 mg", "at": "23:45"}
    person = regimen([IRON, VITAMIN_C, late, ZINC], waking=("15:00", "00:00"), meals=[dinner])
    plan = plan_day(person, day)
    assert check_day_plan(person, day, plan) == []
    times = sorted(f"{slot.at:%H:%M}" for slot in plan.slots)
    assert times[-1] == "23:45" and all(time >= "15:00" for time in times)


def test_a_waking_window_past_midnight_is_refused_with_what_works_instead() -> None:
    with pytest.raises(ValueError, match='"00:00" \\(until midnight\\)'):
        regimen([ZINC], waking=("20:00", "08:00"))
