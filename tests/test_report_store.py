"""The adherence read model on SQLite and PostgreSQL against a history known by construction."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from store.reports import SqlAdherenceQueries
from tests.report_seed import ANA, ANA_PHONE, BO, CY, END, EXPECTED, NOW, START, seed


@pytest.fixture
def queries(engine: Engine) -> SqlAdherenceQueries:
    seed(engine)
    return SqlAdherenceQueries(engine)


def _subset(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if isinstance(value, dict):
            _subset(actual[key], value)
        else:
            assert actual[key] == value, (key, actual[key], value)


def test_everyone(queries: SqlAdherenceQueries) -> None:
    report = queries.report(START, END, NOW).as_dict()
    _subset(report["totals"], EXPECTED["totals"])
    people = {person["id"]: person for person in report["people"]}
    for person_id in (ANA, BO, CY):
        _subset(people[person_id], EXPECTED[person_id])
    assert [person["id"] for person in report["people"]] == EXPECTED["order"]
    days = {day["day"]: day for day in report["days"]}
    assert len(days) == 10
    for day, expected in EXPECTED["days"].items():
        _subset(days[day], expected)
    assert report["doses"] == []
    assert report["iron_timing"]["taken"] == 8
    assert report["supplements"]["selenium"]["planned"] == 10


def test_one_person(queries: SqlAdherenceQueries) -> None:
    report = queries.report(START, END, NOW, person_id=ANA).as_dict()
    assert [person["id"] for person in report["people"]] == [ANA]
    _subset(report["people"][0], EXPECTED[ANA])
    _subset(report["totals"], {k: EXPECTED[ANA][k] for k in ("planned", "taken", "missed")})
    outcomes = [dose["outcome"] for dose in report["doses"]]
    assert len(outcomes) == 18
    assert outcomes.count("on_time") == 12
    assert outcomes.count("late") == 2
    assert report["doses"][0]["due_at"].startswith("2026-11-01T11:30:00+01:00")


def test_narrow_window_and_lookup(queries: SqlAdherenceQueries) -> None:
    report = queries.report(START, START, NOW, person_id=BO)
    assert report.people[0].counts.planned == 1
    assert report.people[0].streaks.longest == 1
    assert queries.find_person(ANA_PHONE) is not None
    assert queries.find_person(str(BO)) is not None
    assert queries.find_person("999") is None
