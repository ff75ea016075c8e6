"""Two doses of one supplement go into different slots at least an hour apart, whatever the
policy says: repeat_gap_hours 0 does not plan zinc at 07:00 and 07:01."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from planner.day import plan_day
from tests.regimens import regimen

DAY = date(2026, 6, 1)
ZINC = {"name": "zinc", "dose": "10 mg"}


@pytest.mark.parametrize("hours", [0, 0.25, 0.99])
def test_a_repeat_gap_below_an_hour_is_kept_at_an_hour_and_said_so(hours: float) -> None:
    person = regimen([ZINC, ZINC, {"name": "vitamin D", "dose": "1000 IU"}], timezone="UTC")
    # the schema refuses such a policy in a file; the planner must still not take it literally
    policy = person.policy.model_copy(update={"repeat_gap_hours": hours})
    person = person.model_copy(update={"policy": policy})
    plan = plan_day(person, DAY)
    zinc = [slot.at for slot in plan.slots if "zinc" in slot.label()]
    assert len(zinc) == 2 and zinc[1] - zinc[0] == timedelta(hours=1), plan.slots
    assert any(
        "below 1 h" in warning and "repeat_gap_hours" in warning for warning in plan.warnings
    )


def test_an_hour_or_more_is_kept_as_the_policy_says_without_a_warning() -> None:
    plan = plan_day(regimen([ZINC, ZINC], timezone="UTC", policy={"repeat_gap_hours": 1.5}), DAY)
    assert [f"{slot.at:%H:%M}" for slot in plan.slots] == ["07:00", "08:30"]
    assert not [warning for warning in plan.warnings if "repeat_gap_hours" in warning]
