"""Regimens stored by an earlier dosewise that today's rules refuse (a name of two
supplements, say): the scheduler plans nothing for that person, says why, and goes on with
everyone else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from schemas.files import load_regimen
from services.scheduling import materialise
from store.models import RegimenRow, ReminderRow
from store.reports import SqlAdherenceQueries
from store.unit_of_work import SqlUnitOfWork
from tests.test_scheduler_usecases import CONFIG, EXAMPLE, NOW, enrol

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


def test_a_stored_regimen_refused_today_stops_only_its_person(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    ana = enrol(unit_of_work)
    ana_regimen = load_regimen(EXAMPLE)
    other = ana_regimen.model_copy(
        update={"person": ana_regimen.person.model_copy(update={"phone": "+4520999999"})}
    )
    bo = enrol(unit_of_work, other)
    with engine.begin() as connection:
        body = connection.execute(
            select(RegimenRow.body).where(RegimenRow.person_id == bo)
        ).scalar_one()
        # as an earlier dosewise let it in; today it names two supplements
        body["supplements"][0]["name"] = "Iron with vitamin C"
        connection.execute(update(RegimenRow).where(RegimenRow.person_id == bo).values(body=body))

    done = materialise(unit_of_work(), NOW, CONFIG)

    assert [reason for reason in done.refusals if reason.startswith(f"person {bo}:")] == [
        f"person {bo}: the stored regimen is not accepted any more (supplements.0: "
        + "Value error, 'Iron with vitamin C' names more than one supplement"
        + " (iron, vitamin C): list each as its own entry, with its own dose);"
        + " nothing is planned until `dosewise people add` enrols a corrected file"
    ]
    with engine.connect() as connection:
        planned = connection.execute(select(ReminderRow.person_id).distinct()).scalars().all()
    assert planned == [ana]


def test_the_report_reads_past_such_a_regimen(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    ana = enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    with engine.begin() as connection:
        # her day's doses taken on time: the report judges the iron's gaps from her regimen
        connection.execute(
            update(ReminderRow)
            .values(status="confirmed", confirmed_at=ReminderRow.due_at)
            .where(ReminderRow.due_at < NOW + timedelta(hours=18))
        )
        body = connection.execute(
            select(RegimenRow.body).where(RegimenRow.person_id == ana)
        ).scalar_one()
        body["person"]["timezone"] = "localtime"  # once let in, now refused
        connection.execute(update(RegimenRow).where(RegimenRow.person_id == ana).values(body=body))
    day = NOW.date()
    for rollup in (True, False):
        report = SqlAdherenceQueries(engine, rollup=rollup).report(day, day, NOW)
        assert [line.id for line in report.people] == [ana]
        assert report.people[0].iron_timing.taken == 1
