"""scheduler.reminders: when a reminder's window closes. Two hours after it is due, or at the
end of the waking day if sooner, but never less than half an hour: a dose the planner put at
the waking window's last minute must still be sent and answerable, not expired unsent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.reminders import ReminderTiming, dose_reminders, lozenge_reminders
from tests.regimens import IRON, VITAMIN_C, regimen

DAY_START = datetime(2026, 12, 2, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def _windows(**kwargs: object) -> dict[str, tuple[datetime, datetime]]:
    person = regimen(timezone="UTC", **kwargs)  # type: ignore[arg-type]
    made = dose_reminders(1, None, person, DAY_START, DAY_END)
    assert made.refusals == []
    return {
        "+".join(item["supplement"] for item in each.items): (each.due_at, each.window_closes_at)
        for each in made.reminders
    }


def test_a_dose_at_the_end_of_the_waking_day_keeps_half_an_hour_to_answer() -> None:
    windows = _windows(
        supplements=[{"name": "magnesium", "dose": "200 mg", "at": "19:50"}],
        waking=("07:00", "19:50"),
    )
    due, closes = windows["magnesium"]
    assert due == DAY_START.replace(hour=19, minute=50)
    assert closes == due + timedelta(minutes=30)


def test_a_dose_near_the_end_of_the_waking_day_closes_with_it_or_half_an_hour_on() -> None:
    windows = _windows(
        supplements=[
            {"name": "magnesium", "dose": "200 mg", "at": "21:00"},
            {"name": "vitamin D", "dose": "10 mcg", "at": "21:45"},
            {"name": "omega-3", "dose": "1 g", "at": "09:00"},
        ],
        waking=("07:00", "22:00"),
    )
    end_of_day = DAY_START.replace(hour=22)
    assert windows["magnesium"][1] == end_of_day  # 1 h left: the waking day's end
    assert windows["vitamin_d"][1] == DAY_START.replace(hour=22, minute=15)  # at least 30 min
    assert windows["omega_3"][1] == DAY_START.replace(hour=11)  # the usual two hours


def test_iron_planned_at_the_waking_days_last_minute_is_answerable() -> None:
    # dairy all day long leaves iron only the waking day's last minute (as in a real plan)
    dairy = [
        {"name": name, "at": at, "contains": ["dairy"]}
        for name, at in (("breakfast", "07:00"), ("lunch", "12:30"), ("tea", "16:50"))
    ]
    windows = _windows(supplements=[IRON, VITAMIN_C], waking=("07:00", "19:50"), meals=dairy)
    due, closes = windows["iron+vitamin_c"]
    assert due == DAY_START.replace(hour=19, minute=50)
    assert closes - due == timedelta(minutes=30)


def test_a_lozenge_at_the_end_of_the_waking_day_keeps_half_an_hour_too() -> None:
    person = regimen([VITAMIN_C], timezone="UTC", waking=("07:00", "22:00"))
    onset = DAY_START.replace(hour=21, minute=50)
    lozenges = lozenge_reminders(1, 7, person, onset, DAY_START, DAY_END + timedelta(days=1))
    assert lozenges, "a course starts at onset"
    for each in lozenges:
        assert each.window_closes_at - each.due_at >= timedelta(minutes=30)


def test_closes_is_the_sooner_of_the_window_and_waking_end_but_not_below_the_least() -> None:
    timing = ReminderTiming()
    due = DAY_START.replace(hour=12)
    assert timing.closes(due, due + timedelta(hours=5)) == due + timedelta(hours=2)
    assert timing.closes(due, due + timedelta(hours=1)) == due + timedelta(hours=1)
    assert timing.closes(due, due) == due + timedelta(minutes=30)
    assert timing.closes(due, due - timedelta(minutes=5)) == due + timedelta(minutes=30)
