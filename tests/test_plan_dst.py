"""Days when the clocks change: gaps are real elapsed time, skipped times move forward."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from planner.cold_course import plan_cold_course
from planner.day import plan_day
from tests.regimens import IRON, VITAMIN_C, regimen

COPENHAGEN = "Europe/Copenhagen"
NEW_YORK = "America/New_York"


def _local(day: date, clock: str, zone: str, fold: int = 0) -> datetime:
    hour, minute = map(int, clock.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def _elapsed(later: datetime, earlier: datetime) -> timedelta:
    return later.astimezone(UTC) - earlier.astimezone(UTC)


@pytest.mark.parametrize(
    ("zone", "day", "expected_wall"),
    [
        # spring forward: an hour vanishes, so 4 h of real time ends one wall hour later
        (COPENHAGEN, date(2026, 3, 29), "06:30"),
        (NEW_YORK, date(2026, 3, 8), "06:30"),
        # fall back: an hour repeats, so 4 h of real time ends one wall hour earlier
        (COPENHAGEN, date(2026, 10, 25), "04:30"),
        (NEW_YORK, date(2026, 11, 1), "04:30"),
        # an ordinary day for contrast
        (COPENHAGEN, date(2026, 11, 23), "05:30"),
    ],
)
def test_iron_keeps_four_real_hours_from_a_medicine_across_a_clock_change(
    zone: str, day: date, expected_wall: str
) -> None:
    person = regimen(
        [IRON, VITAMIN_C],
        timezone=zone,
        waking=("01:00", "22:00"),
        medications=[{"name": "levothyroxine", "at": "01:30"}],
    )
    plan = plan_day(person, day)
    (slot,) = plan.slots
    medicine = _local(day, "01:30", zone)
    assert _elapsed(slot.at, medicine) == timedelta(hours=4)
    assert slot.at.strftime("%H:%M") == expected_wall
    assert slot.at.tzinfo is not None and slot.at.date() == day


@pytest.mark.parametrize(
    ("zone", "day"), [(COPENHAGEN, date(2026, 3, 29)), (NEW_YORK, date(2026, 3, 8))]
)
def test_a_meal_in_the_skipped_hour_moves_to_the_first_valid_instant_with_a_warning(
    zone: str, day: date
) -> None:
    person = regimen(
        [IRON, VITAMIN_C],
        timezone=zone,
        waking=("01:00", "22:00"),
        meals=[{"name": "night milk", "at": "02:30", "contains": ["dairy"]}],
    )
    plan = plan_day(person, day)
    (slot,) = plan.slots
    first_valid = _local(day, "03:00", zone)
    assert _elapsed(slot.at, first_valid) == timedelta(hours=4)
    assert slot.at.strftime("%H:%M") == "07:00"
    assert any("night milk at 02:30 does not exist" in warning for warning in plan.warnings)


def test_a_fixed_supplement_in_the_skipped_hour_is_kept_at_the_first_valid_instant() -> None:
    day = date(2026, 3, 29)
    person = regimen(
        [{"name": "selenium", "dose": "100 µg", "at": "02:15"}],
        timezone=COPENHAGEN,
        waking=("01:00", "22:00"),
    )
    plan = plan_day(person, day)
    (slot,) = plan.slots
    assert slot.at == _local(day, "03:00", COPENHAGEN)
    assert slot.fixed
    assert any("selenium at 02:15 does not exist" in warning for warning in plan.warnings)


def test_a_time_that_happens_twice_means_its_first_occurrence() -> None:
    day = date(2026, 11, 1)
    person = regimen(
        [IRON, VITAMIN_C],
        timezone=NEW_YORK,
        waking=("00:30", "22:00"),
        medications=[{"name": "levothyroxine", "at": "01:30"}],
    )
    (slot,) = plan_day(person, day).slots
    first_occurrence = _local(day, "01:30", NEW_YORK, fold=0)
    assert first_occurrence.utcoffset() == timedelta(hours=-4)  # still daylight time
    assert _elapsed(slot.at, first_occurrence) == timedelta(hours=4)


@pytest.mark.parametrize(
    ("zone", "day", "lozenges"),
    [
        # iron at 01:00 blocks until 04:00 wall (03:00 real); 9 h left hold only 5 lozenges
        (COPENHAGEN, date(2026, 3, 29), 5),
        # the repeated hour gives 13 real hours: room for all 6
        (NEW_YORK, date(2026, 11, 1), 6),
    ],
)
def test_cold_course_lozenges_keep_real_gaps_on_a_clock_change_day(
    zone: str, day: date, lozenges: int
) -> None:
    person = regimen([IRON, VITAMIN_C], timezone=zone, waking=("01:00", "13:00"))
    onset = _local(day, "01:00", zone)
    course = plan_cold_course(person, onset)
    first_day = [dose.at for dose in course.doses if dose.at.date() == day]
    assert len(first_day) == lozenges
    iron = plan_day(person, day).slots[0].at
    for earlier, later in itertools.pairwise(first_day):
        assert _elapsed(later, earlier) >= timedelta(hours=2)
    for lozenge in first_day:
        assert abs(_elapsed(lozenge, iron)) >= timedelta(hours=2)
