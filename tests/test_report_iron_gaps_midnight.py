"""The report's iron timing keeps the gap across midnight, as the planner does: a dose is
judged against the meals, medicines and fixed-time calcium doses of its own day and of the day
before and the day after, in real elapsed time (clock changes included)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from reports.timing import IronGaps
from schemas.regimen import Regimen
from store.models import PersonRow, RegimenRow, ReminderRow
from store.report_rollup import SqlReportRollup
from store.reports import SqlAdherenceQueries

CPH = ZoneInfo("Europe/Copenhagen")
DAY = date(2026, 11, 3)
IRON = {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True}
MEDICINE_AFTER_MIDNIGHT = [{"name": "levothyroxine", "at": "00:15"}]
LATE_DAIRY = [{"name": "late snack", "at": "23:30", "contains": ["dairy"]}]


def _regimen(phone: str = "+4520123456", **parts: Any) -> Regimen:
    person = {"name": "Dee", "phone": phone, "timezone": "Europe/Copenhagen"}
    return Regimen.model_validate({"person": person, "supplements": [IRON], **parts})


def _local(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), CPH).astimezone(UTC)


def _gaps(*regimens: Regimen) -> IronGaps:
    gaps = IronGaps()
    for regimen_id, regimen in enumerate(regimens, start=1):
        gaps.add_regimen(regimen_id, regimen)
    return gaps


# -- IronGaps ------------------------------------------------------------------------------


def test_a_dose_late_in_the_evening_keeps_its_gap_from_the_next_mornings_medicine() -> None:
    gaps = _gaps(_regimen(medications=MEDICINE_AFTER_MIDNIGHT))
    # the medicine at 00:15 the next day is 1 h 15 min after this dose
    assert not gaps.kept(1, DAY, _local(DAY, 23, 0))


def test_a_dose_confirmed_after_midnight_keeps_its_gap_from_that_nights_medicine() -> None:
    gaps = _gaps(_regimen(medications=MEDICINE_AFTER_MIDNIGHT))
    # the reminder of DAY, confirmed at 00:10 the next day: 5 minutes before the medicine
    assert not gaps.kept(1, DAY, _local(DAY + timedelta(days=1), 0, 10))


def test_a_dose_just_after_midnight_keeps_its_gap_from_the_evening_befores_dairy() -> None:
    gaps = _gaps(_regimen(meals=LATE_DAIRY))
    # taken at 00:30 of its own day, an hour after the dairy snack of the day before
    assert not gaps.kept(1, DAY, _local(DAY, 0, 30))


def test_a_fixed_calcium_dose_of_the_day_before_counts_though_its_reminder_is_not_given() -> None:
    calcium = {"name": "calcium carbonate", "dose": "500 mg", "at": "22:30"}
    gaps = _gaps(_regimen(supplements=[IRON, calcium]))
    own_day_calcium = [_local(DAY, 22, 30)]
    assert not gaps.kept(1, DAY, _local(DAY, 0, 45), own_day_calcium)
    assert gaps.kept(1, DAY, _local(DAY, 12, 0), own_day_calcium)


def test_people_sharing_meals_and_medicines_but_not_a_fixed_calcium_dose_are_judged_apart() -> None:
    calcium = {"name": "calcium carbonate", "dose": "500 mg", "at": "22:30"}
    gaps = _gaps(_regimen(supplements=[IRON, calcium]), _regimen(phone="+4520123457"))
    # 01:20 is 2 h 50 min after the calcium at 22:30 the day before: only its taker breaks
    assert not gaps.kept(1, DAY, _local(DAY, 1, 20))
    assert gaps.kept(2, DAY, _local(DAY, 1, 20))


def test_a_dose_clear_of_both_nights_references_is_kept() -> None:
    gaps = _gaps(_regimen(meals=LATE_DAIRY, medications=MEDICINE_AFTER_MIDNIGHT))
    assert gaps.kept(1, DAY, _local(DAY, 12, 0))
    assert gaps.kept(1, DAY, _local(DAY, 3, 15))  # 3 h after the medicine at 00:15
    assert gaps.kept(1, DAY, _local(DAY, 20, 30))  # 3 h before the dairy snack


@pytest.mark.parametrize(
    ("parts", "hour", "minute", "kept"),
    [
        ({"medications": MEDICINE_AFTER_MIDNIGHT}, 21, 15, True),  # 3 h before 00:15
        ({"medications": MEDICINE_AFTER_MIDNIGHT}, 21, 16, False),
        ({"meals": LATE_DAIRY}, 2, 30, True),  # 3 h after 23:30 the day before
        ({"meals": LATE_DAIRY}, 2, 29, False),
    ],
)
def test_the_gap_across_midnight_is_the_rules_minimum(
    parts: dict[str, Any], hour: int, minute: int, kept: bool
) -> None:
    gaps = _gaps(_regimen(**parts))
    assert gaps.kept(1, DAY, _local(DAY, hour, minute)) is kept


def test_spring_forward_night_counts_the_hour_the_clocks_skip_as_not_elapsed() -> None:
    # Copenhagen, 2026-03-29: 02:00 CET becomes 03:00 CEST
    saturday = date(2026, 3, 28)
    gaps = _gaps(_regimen(medications=[{"name": "levothyroxine", "at": "03:00"}]))
    # 23:50 CET to 03:00 CEST is 2 h 10 min of real time, though the clock moves 3 h 10 min
    assert not gaps.kept(1, saturday, _local(saturday, 23, 50))
    assert gaps.kept(1, saturday, _local(saturday, 23, 0))  # 3 h real time


@pytest.mark.parametrize(
    ("taken_at", "kept"),
    [
        # 02:15 CEST, before the clocks fall back: 2 h 45 min after the dairy at 23:30 CEST
        (datetime(2026, 10, 25, 0, 15, tzinfo=UTC), False),
        # 02:15 CET, the second time the clock shows it: 3 h 45 min after the dairy
        (datetime(2026, 10, 25, 1, 15, tzinfo=UTC), True),
    ],
)
def test_fall_back_night_measures_real_time_from_the_evening_before(
    taken_at: datetime, kept: bool
) -> None:
    # Copenhagen, 2026-10-25: 03:00 CEST becomes 02:00 CET
    gaps = _gaps(_regimen(meals=LATE_DAIRY))
    assert gaps.kept(1, date(2026, 10, 25), taken_at) is kept


# -- through the report --------------------------------------------------------------------

START, END = date(2026, 11, 2), date(2026, 11, 4)
NOW = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
CALCIUM_AT_NIGHT = {"name": "calcium carbonate", "dose": "500 mg", "at": "22:30"}
# (id, name, regimen parts, [(slot day, due, taken)]): every dose confirmed
PEOPLE: list[tuple[int, str, dict[str, Any], list[tuple[date, datetime, datetime]]]] = [
    (
        1,
        "Dee",
        {"medications": MEDICINE_AFTER_MIDNIGHT},
        [
            # 1 h 15 min before the next day's medicine: broken
            (START, _local(START, 22, 55), _local(START, 23, 0)),
            (
                START + timedelta(days=1),
                _local(START + timedelta(days=1), 12, 0),
                _local(START + timedelta(days=1), 12, 5),
            ),
        ],
    ),
    (
        2,
        "Eli",
        {"meals": LATE_DAIRY},
        [
            # an hour after the day before's dairy snack: broken
            (
                START + timedelta(days=1),
                _local(START + timedelta(days=1), 0, 25),
                _local(START + timedelta(days=1), 0, 30),
            ),
            (END, _local(END, 14, 0), _local(END, 14, 0)),
        ],
    ),
    # Fay and Gus have one routine of meals and medicines (none); only Fay takes calcium at
    # 22:30 every night: her iron at 01:20 is 2 h 50 min after the day before's
    (
        3,
        "Fay",
        {"supplements": [IRON, CALCIUM_AT_NIGHT]},
        [(END, _local(END, 1, 15), _local(END, 1, 20))],
    ),
    (4, "Gus", {}, [(END, _local(END, 1, 15), _local(END, 1, 20))]),
]
EXPECTED = {1: (2, 1), 2: (2, 1), 3: (1, 0), 4: (1, 1)}


def _seed(engine: Engine) -> None:
    people, regimens, reminders = [], [], []
    for person_id, name, parts, doses in PEOPLE:
        phone = f"+452012345{person_id}"
        people.append(
            {
                "id": person_id,
                "name": name,
                "phone": phone,
                "email": None,
                "channel": "sms",
                "timezone": "Europe/Copenhagen",
                "active": True,
                "opted_out": False,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        body = _regimen(phone=phone, **parts).model_dump(mode="json")
        regimens.append(
            {"id": person_id, "person_id": person_id, "version": 1, "body": body, "created_at": NOW}
        )
        reminders += [_reminder(person_id, day, due, taken, "iron") for day, due, taken in doses]
    # Fay's calcium the night before her iron: a reminder of that day, not of the iron's
    calcium_due = _local(END - timedelta(days=1), 22, 30)
    reminders.append(_reminder(3, END - timedelta(days=1), calcium_due, calcium_due, "calcium"))
    with engine.begin() as connection:
        connection.execute(insert(PersonRow), people)
        connection.execute(insert(RegimenRow), regimens)
        connection.execute(insert(ReminderRow), reminders)


def _reminder(
    person_id: int, day: date, due: datetime, taken: datetime, supplement: str
) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "regimen_id": person_id,
        "slot_key": f"{day.isoformat()}#{supplement}",
        "kind": "dose",
        "items": [{"supplement": supplement, "dose": "1 mg", "name": supplement}],
        "due_at": due,
        "window_closes_at": due + timedelta(hours=2),
        "followup_due_at": None,
        "status": "confirmed",
        "confirmed_at": taken,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _iron(queries: SqlAdherenceQueries) -> dict[int, tuple[int, int]]:
    report = queries.report(START, END, NOW)
    return {
        person.id: (person.iron_timing.taken, person.iron_timing.gap_kept)
        for person in report.people
    }


def test_the_report_judges_iron_across_midnight_directly_queued_and_rolled_up(
    engine: Engine,
) -> None:
    _seed(engine)
    # the days are queued: the rollup-backed report reads them live
    assert _iron(SqlAdherenceQueries(engine)) == EXPECTED
    assert _iron(SqlAdherenceQueries(engine, rollup=False)) == EXPECTED
    SqlReportRollup(engine).refresh_all()
    assert _iron(SqlAdherenceQueries(engine)) == EXPECTED
    report = SqlAdherenceQueries(engine).report(START, END, NOW)
    assert (report.iron_timing.taken, report.iron_timing.gap_kept) == (6, 3)
