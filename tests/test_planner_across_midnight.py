"""Gaps are kept across midnight: the meals, medicines and fixed doses of the day before and
the day after happen too, and count in real elapsed time (clock-change nights included)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from planner.day import plan_day
from planner.plan import PlanRefused
from tests.plan_checker import check_day_plan
from tests.regimens import IRON, VITAMIN_C, regimen

DAY = date(2026, 6, 1)
PILL = {"name": "sleeping pill", "at": ["00:15"]}


def _night_owl(**changes: object) -> object:
    return regimen(
        [IRON, VITAMIN_C],
        waking=("09:00", "00:00"),
        meals=[
            {"name": "breakfast", "at": "09:30", "contains": ["dairy"]},
            {"name": "lunch", "at": "13:30", "contains": ["cheese"]},
            {"name": "dinner", "at": "18:00", "contains": ["milk"]},
        ],
        medications=[PILL],
    )


def test_iron_keeps_three_hours_from_the_next_nights_medicine() -> None:
    person = _night_owl()
    plan = plan_day(person, DAY)  # type: ignore[arg-type]
    assert not check_day_plan(person, DAY, plan)  # type: ignore[arg-type]
    (slot,) = plan.slots
    pill = datetime(2026, 6, 1, 22, 15, tzinfo=UTC)  # 00:15 on 2 June in Copenhagen (CEST)
    assert pill - slot.at >= timedelta(hours=3), slot.at
    assert f"{slot.at:%H:%M}" == "21:00"  # 3 h after dinner, 3 h 15 min before the pill
    assert any("sleeping pill (medicine), the next day" in line for line in slot.why), slot.why


def test_iron_keeps_its_gap_from_the_medicine_taken_late_the_evening_before() -> None:
    person = regimen(
        [IRON, VITAMIN_C],
        waking=("00:30", "20:00"),
        medications=[{"name": "pill", "at": ["23:00"]}],
    )
    plan = plan_day(person, DAY)
    assert not check_day_plan(person, DAY, plan)
    (slot,) = plan.slots
    assert f"{slot.at:%H:%M}" == "03:00"  # the preferred 4 h after the pill of 31 May 23:00


def test_a_dose_fixed_too_close_to_the_next_days_medicine_is_refused() -> None:
    fixed_iron = {**IRON, "at": "22:00"}
    person = regimen(
        [fixed_iron, {**VITAMIN_C, "at": "22:00"}], waking=("09:00", "00:00"), medications=[PILL]
    )
    with pytest.raises(PlanRefused) as refused:
        plan_day(person, DAY)
    assert "sleeping pill (medicine), the next day" in refused.value.reason
    assert "iron-apart-from-dairy-calcium-medicines" in refused.value.conflicts


def test_a_fixed_calcium_just_after_midnight_keeps_iron_from_the_evening_before() -> None:
    person = regimen(
        [IRON, VITAMIN_C, {"name": "calcium", "dose": "500 mg", "at": "00:30"}],
        waking=("00:30", "00:00"),
        quiet=[("01:00", "21:30")],
        meals=[{"name": "dinner", "at": "19:00", "contains": ["dairy"]}],
    )
    # today's calcium closes the night, dinner keeps iron to 22:00 or later, and the next
    # day's 00:30 calcium to 21:30 or earlier
    with pytest.raises(PlanRefused) as refused:
        plan_day(person, DAY)
    assert "calcium, the next day at 00:30" in refused.value.reason, refused.value.reason


@pytest.mark.parametrize(("dinner", "planned"), [("20:30", "23:30"), ("20:45", None)])
def test_the_gap_to_the_next_days_medicine_is_real_time_on_a_spring_forward_night(
    dinner: str, planned: str | None
) -> None:
    # Copenhagen springs forward at 02:00 on 29 March: 03:30 that night is 2 h 30 min of real
    # time after midnight, so iron must be taken by 23:30, not by 00:30 as the wall clock says
    person = regimen(
        [IRON, VITAMIN_C],
        waking=("20:00", "00:00"),
        meals=[{"name": "dinner", "at": dinner, "contains": ["dairy"]}],
        medications=[{"name": "pill", "at": ["03:30"]}],
    )
    day = date(2026, 3, 28)
    if planned is None:
        with pytest.raises(PlanRefused) as refused:
            plan_day(person, day)
        assert "pill (medicine), the next day at 03:30" in refused.value.reason
        return
    plan = plan_day(person, day)
    assert not check_day_plan(person, day, plan)
    assert [f"{slot.at:%H:%M}" for slot in plan.slots] == [planned]
