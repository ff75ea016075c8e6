"""A regimen's policy sets a gap: the plan keeps that gap (minimum and preferred) and the
explanation says the gap it used, not the rule's default."""

from __future__ import annotations

from datetime import date

import pytest

from planner.day import plan_day
from tests.plan_checker import check_day_plan
from tests.regimens import IRON, VITAMIN_C, regimen

DAY = date(2026, 6, 1)


def _tea_morning(**policy: float) -> object:
    return regimen(
        [IRON, VITAMIN_C],
        timezone="Europe/London",
        waking=("07:00", "13:00"),
        meals=[{"name": "breakfast", "at": "07:00", "contains": ["black tea"]}],
        policy=policy,
    )


@pytest.mark.parametrize(
    ("hours", "planned", "used"),
    [
        (1, "08:00", "the gap used is 1 h, as this regimen's policy.black_tea_gap_hours sets"),
        (2.5, "09:30", "the gap used is 2 h 30 min, as this regimen's policy"),
        (3.5, "11:00", "the gap used is 3 h 30 min (preferably 4 h), as this regimen's policy"),
        (5, "12:00", "the gap used is 5 h, as this regimen's policy.black_tea_gap_hours sets"),
    ],
)
def test_a_policy_tea_gap_is_the_gap_kept_and_the_gap_explained(
    hours: float, planned: str, used: str
) -> None:
    person = _tea_morning(black_tea_gap_hours=hours)
    plan = plan_day(person, DAY)  # type: ignore[arg-type]
    assert not check_day_plan(person, DAY, plan)  # type: ignore[arg-type]
    (slot,) = plan.slots
    assert f"{slot.at:%H:%M}" == planned
    tea_lines = [line for line in slot.why if "black tea" in line]
    assert len(tea_lines) == 1 and used in tea_lines[0], slot.why
    assert not slot.minimum_gap_only  # the person's own gap is not a fallback


def test_the_default_tea_gap_is_kept_like_dairy_and_said_to_be_a_default() -> None:
    tea = plan_day(_tea_morning(), DAY)  # type: ignore[arg-type]
    dairy = plan_day(
        regimen(
            [IRON, VITAMIN_C],
            timezone="Europe/London",
            waking=("07:00", "13:00"),
            meals=[{"name": "breakfast", "at": "07:00", "contains": ["dairy"]}],
        ),
        DAY,
    )
    assert [f"{slot.at:%H:%M}" for slot in tea.slots] == ["11:00"]  # the preferred 4 h
    assert [slot.at for slot in tea.slots] == [slot.at for slot in dairy.slots]
    (line,) = [line for line in tea.slots[0].why if "black tea" in line]
    assert "a default: policy.black_tea_gap_hours" in line and "gap used" not in line


def test_a_policy_repeat_gap_is_named_in_the_explanation() -> None:
    zinc = {"name": "zinc", "dose": "10 mg"}
    plan = plan_day(regimen([zinc, zinc], policy={"repeat_gap_hours": 6}), DAY)
    assert [f"{slot.at:%H:%M}" for slot in plan.slots] == ["07:00", "13:00"]
    assert any("the gap used is 6 h" in line for line in plan.slots[1].why), plan.slots[1].why
