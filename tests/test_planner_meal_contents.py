"""A meal content the timing rules do not use is warned about, and one they use is not: the
warning says exactly what the planner does with the meal."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from planner.day import plan_day
from tests.regimens import IRON, VITAMIN_C, regimen

DAY = date(2026, 6, 1)
CALCIUM: dict[str, Any] = {"name": "calcium", "dose": "500 mg"}


def _content_warnings(warnings: tuple[str, ...]) -> list[str]:
    return [warning for warning in warnings if "is not a content the timing rules know" in warning]


def _breakfast(*contents: str) -> list[dict[str, object]]:
    return [{"name": "b", "at": "08:00", "contains": list(contents)}]


def test_a_meal_containing_medication_is_kept_from_like_a_medicine_and_not_warned() -> None:
    plan = plan_day(regimen([IRON, VITAMIN_C], meals=_breakfast("medication")), DAY)
    assert not _content_warnings(plan.warnings), plan.warnings
    assert [f"{slot.at:%H:%M}" for slot in plan.slots] == ["12:00"]  # 4 h after 08:00


@pytest.mark.parametrize("content", ["iron", "copper", "vitamin_c", "zinc"])
def test_a_content_no_rule_keeps_a_dose_from_is_warned_and_changes_nothing(content: str) -> None:
    supplements: list[dict[str, Any]] = [IRON, VITAMIN_C, CALCIUM]
    plan = plan_day(regimen(supplements, meals=_breakfast(content)), DAY)
    (warning,) = _content_warnings(plan.warnings)
    assert f"{content!r}" in warning and "nothing is kept away from it" in warning
    plain = plan_day(regimen(supplements, meals=_breakfast()), DAY)
    assert [(slot.at, slot.label()) for slot in plan.slots] == [
        (slot.at, slot.label()) for slot in plain.slots
    ]


def test_the_iron_and_copper_meal_of_the_tester_warns_for_both() -> None:
    plan = plan_day(regimen([IRON, VITAMIN_C], meals=_breakfast("iron", "copper")), DAY)
    warned = _content_warnings(plan.warnings)
    assert len(warned) == 2 and "'iron'" in warned[0] and "'copper'" in warned[1], warned
    assert "black tea, calcium, dairy, medication" in warned[0]


@pytest.mark.parametrize("content", ["dairy", "calcium", "black_tea", "medication"])
def test_every_content_a_rule_uses_moves_iron_and_is_not_warned(content: str) -> None:
    plan = plan_day(regimen([IRON, VITAMIN_C], meals=_breakfast(content)), DAY)
    assert not _content_warnings(plan.warnings)
    assert plan.slots[0].at.hour >= 11  # at least 3 h from the 08:00 meal
