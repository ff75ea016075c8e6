"""A cold course gives days x lozenges_per_day lozenges, never more than lozenges_per_day on a
local day, and keeps its rules against lozenges already given by an earlier course."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from planner.cold_course import plan_cold_course
from planner.day import plan_day
from scheduler.reminders import lozenge_reminders
from tests.plan_checker import check_cold_course
from tests.regimens import regimen

CARL: list[dict[str, Any]] = [  # the tester's Carl: fixed doses around 12:48, no iron
    {"name": "vitamin D", "dose": "1000 IU", "at": "12:46"},
    {"name": "magnesium citrate", "dose": "300 mg", "at": "12:47"},
    {"name": "vitamin B12", "dose": "500 µg", "at": "12:48"},
]
ONSET = datetime(2026, 12, 1, 12, 48, tzinfo=UTC)


def _carl(**policy: Any) -> Any:
    return regimen(CARL, timezone="UTC", waking=("06:00", "23:30"), policy=policy)


def _per_day(ats: list[datetime], zone: Any = UTC) -> dict[str, int]:
    return {
        f"{day}": count for day, count in Counter(at.astimezone(zone).date() for at in ats).items()
    }


def _assert_keeps_rules(person: Any, onset: datetime, ats: list[datetime]) -> None:
    days = {at.date() for at in ats}
    plans = {day: plan_day(person, day) for day in days}
    assert not check_cold_course(person, onset, ats, plans)


def test_the_default_course_is_thirty_lozenges_of_14_mg_whatever_the_onset_time() -> None:
    person = _carl()
    course = plan_cold_course(person, ONSET)
    ats = [dose.at for dose in course.doses]
    assert len(ats) == 30
    assert sum(Decimal(dose.dose.split()[0]) for dose in course.doses) == 420  # 5 x 84 mg
    assert _per_day(ats) == {f"2026-12-0{day}": 6 for day in range(1, 6)}
    assert ats[0] == ONSET
    _assert_keeps_rules(person, ONSET, ats)
    for before, after in itertools.pairwise(ats):
        if before.date() == after.date():  # one every 2 to 3 h while awake
            assert timedelta(hours=2) <= after - before <= timedelta(hours=3), (before, after)


@pytest.mark.parametrize("hour", [0, 6, 12, 20, 22, 23])
@pytest.mark.parametrize(("days", "per_day"), [(5, 6), (1, 6), (3, 4), (14, 8)])
def test_a_late_onset_gets_the_rest_of_the_course_on_the_last_day(
    hour: int, days: int, per_day: int
) -> None:
    person = _carl(cold_course_days=days, lozenges_per_day=per_day)
    onset = datetime(2026, 12, 1, hour, 5, tzinfo=UTC)
    ats = [dose.at for dose in plan_cold_course(person, onset).doses]
    assert len(ats) == days * per_day
    assert max(_per_day(ats).values()) <= per_day
    assert all(onset <= at < onset + timedelta(days=days) for at in ats)
    _assert_keeps_rules(person, onset, ats)


def test_a_course_started_the_day_an_earlier_one_ended_counts_its_lozenges() -> None:
    person = _carl()
    first = plan_cold_course(person, datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    well = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)  # WELL: the lozenges due before it count
    given = [dose.at for dose in first.doses if dose.at < well]
    assert len(given) == 3  # 06:00, 09:00, 12:00
    onset = given[-1] + timedelta(minutes=24)
    course = plan_cold_course(person, onset, given=given)
    ats = [dose.at for dose in course.doses]
    assert ats[0] == given[-1] + timedelta(hours=2)  # the shortest interval from the last one
    assert _per_day([*given, *ats])["2026-12-01"] == 6
    assert [dose.number for dose in course.doses if dose.at.date() == onset.date()] == [4, 5, 6]
    assert len(ats) == 30


def test_lozenge_reminders_pass_the_lozenges_already_given_on() -> None:
    person = _carl()
    given = [datetime(2026, 12, 1, hour, 0, tzinfo=UTC) for hour in (6, 9, 12)]
    onset = datetime(2026, 12, 1, 12, 24, tzinfo=UTC)
    reminders = lozenge_reminders(
        1, 2, person, onset, onset, onset + timedelta(days=6), given=given
    )
    due = [reminder.due_at for reminder in reminders]
    assert due[0] == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert _per_day(due)["2026-12-01"] == 3
    with pytest.raises(ValueError):
        lozenge_reminders(1, 2, person, onset, onset, onset, given=[datetime(2026, 12, 1, 6)])


def test_a_course_with_fewer_lozenges_a_day_than_asked_warns_with_the_daily_zinc() -> None:
    iron = {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True, "at": "18:30"}
    squeezed = regimen(
        [iron, {"name": "vitamin C", "dose": "250 mg"}], timezone="UTC", waking=("14:00", "00:00")
    )
    course = plan_cold_course(squeezed, datetime(2026, 12, 2, 10, tzinfo=UTC))
    per_day = Counter(dose.day for dose in course.doses)
    assert max(per_day.values()) == 4  # 14:00-16:30 and 20:30-00:00 around the iron
    assert course.warnings == (
        "only 4 of the 6 lozenges a day fit around the other doses and the waking day: 56 mg "
        "of zinc a day, below the 80 to 92 mg/day the studies used [zinc-cold-course (stated)]",
    )
    roomy = regimen([{"name": "vitamin C", "dose": "250 mg"}], timezone="UTC")
    assert plan_cold_course(roomy, datetime(2026, 12, 2, 6, tzinfo=UTC)).warnings == ()
