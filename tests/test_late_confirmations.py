"""A TAKEN after the reminder's window closed: the dose is taken late, not lost.

Through the tracker's use case (receive_sms) on SQLite and PostgreSQL, with reminders as the
scheduler plans them and moved on as the notifier and the scheduler's window closing would.
The person takes magnesium at 21:00 in Copenhagen; the window closes at 22:00, the end of
their waking day.
"""

from __future__ import annotations

import itertools
import threading
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine as sqlalchemy_engine
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.ports import ReminderPlan
from services.replies import InboundSms, SmsAnswer, receive_sms
from services.scheduling import close_windows
from store.engine import create_engine, session_factory
from store.models import ConfirmationRow, ReminderRow
from store.report_rollup import SqlReportRollup
from store.reports import SqlAdherenceQueries
from store.unit_of_work import SqlUnitOfWork
from tests.regimens import IRON, VITAMIN_C, regimen
from tests.seeding import events

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]

PHONE = "+4520123456"
ZONE = ZoneInfo("Europe/Copenhagen")
DAY = date(2026, 11, 23)  # a Monday; Copenhagen is UTC+1
DUE = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 21:00 in Copenhagen
CLOSES = DUE + timedelta(hours=1)  # 22:00, the end of the waking day
REPLY_AT = DUE + timedelta(minutes=69)  # 22:09
MAGNESIUM = [{"supplement": "magnesium", "dose": "300 mg", "name": "magnesium citrate"}]
IRON_ITEMS = [
    {"supplement": "iron", "dose": "18 mg", "name": "iron"},
    {"supplement": "vitamin_c", "dose": "250 mg", "name": "vitamin C"},
]
_sids = itertools.count(1)


def person(unit_of_work: UnitOfWorkFactory, language: str = "en") -> int:
    body = regimen(
        [IRON, VITAMIN_C, {"name": "magnesium citrate", "dose": "300 mg", "at": "21:00"}]
    ).model_dump(mode="json", by_alias=True)
    body["person"].update(phone=PHONE, language=language)
    enrolled = enrol_person(unit_of_work(), Regimen.model_validate(body), DUE - timedelta(days=1))
    return enrolled.person_id


def add_reminder(
    unit_of_work: UnitOfWorkFactory,
    engine: Engine,
    person_id: int,
    due_at: datetime,
    *,
    items: list[dict[str, Any]] | None = None,
    status: str = "sent",
    closes: datetime | None = None,
) -> int:
    """A reminder as the scheduler plans it (its slot key names its local day, which the
    report counts it on), moved on to `status` as the notifier or the scheduler would."""
    items = items or MAGNESIUM
    day = due_at.astimezone(ZONE).date()
    plan = ReminderPlan(
        person_id=person_id,
        slot_key=f"{day.isoformat()}#" + "+".join(item["supplement"] for item in items),
        kind="dose",
        due_at=due_at,
        window_closes_at=closes or due_at + timedelta(hours=1),
        items=items,
    )
    with unit_of_work() as uow:
        uow.reminders.upsert([plan], due_at - timedelta(hours=6))
        uow.commit()
    with engine.begin() as connection:
        reminder_id = connection.scalars(
            select(ReminderRow.id).where(
                ReminderRow.person_id == person_id,
                ReminderRow.due_at == due_at,
                ReminderRow.slot_key == plan.slot_key,
            )
        ).one()
        connection.execute(
            update(ReminderRow).where(ReminderRow.id == reminder_id).values(status=status)
        )
    return reminder_id


def reply(
    unit_of_work: UnitOfWorkFactory, body: str, now: datetime, sid: str | None = None
) -> SmsAnswer:
    sms = InboundSms(sid or f"SMlate{next(_sids):028d}", PHONE, body)
    return receive_sms(unit_of_work(), sms, now)


def reminder_row(engine: Engine, reminder_id: int) -> ReminderRow:
    with Session(engine) as session:
        return session.scalars(select(ReminderRow).where(ReminderRow.id == reminder_id)).one()


def confirmations(engine: Engine) -> list[tuple[int, str, datetime]]:
    with Session(engine) as session:
        rows = session.execute(
            select(ConfirmationRow.reminder_id, ConfirmationRow.outcome, ConfirmationRow.at)
        )
        return [(row.reminder_id, row.outcome, row.at) for row in rows]


@pytest.fixture
def ana(unit_of_work: UnitOfWorkFactory) -> int:
    return person(unit_of_work)


# -- what a late TAKEN records ---------------------------------------------------------------


def test_a_taken_after_the_window_closed_confirms_the_missed_dose_late(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE)
    assert close_windows(unit_of_work(), CLOSES) == 1  # the scheduler: sent -> missed
    assert reminder_row(engine, reminder).status == "missed"
    answer = reply(unit_of_work, "TAKEN", REPLY_AT)
    assert answer.text == (
        "Noted: magnesium citrate 300 mg taken late, at 22:09 (the 21:00 reminder)."
    )
    row = reminder_row(engine, reminder)
    assert (row.status, row.confirmed_at) == ("confirmed", REPLY_AT)
    assert confirmations(engine) == [(reminder, "taken", REPLY_AT)]
    assert events(engine)[-1] == (
        "DoseConfirmed",
        {"reminder_id": reminder, "at": REPLY_AT.isoformat(), "late": True},
    )


def test_a_late_taken_counts_late_not_missed_in_the_report(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    add_reminder(unit_of_work, engine, ana, DUE)
    close_windows(unit_of_work(), CLOSES)
    rollup = SqlReportRollup(engine)
    rollup.refresh_all()
    before = SqlAdherenceQueries(engine).report(DAY, DAY, CLOSES).as_dict()["people"][0]
    assert (before["late"], before["missed"]) == (0, 1)
    reply(unit_of_work, "took it", REPLY_AT)
    after = REPLY_AT + timedelta(minutes=1)
    # the rollup's triggers queue the day the status change touched; read before and after
    # the refresh, and directly, the report says the same
    for refreshed in (False, True):
        if refreshed:
            assert rollup.refresh_all() >= 1
        for queries in (SqlAdherenceQueries(engine), SqlAdherenceQueries(engine, rollup=False)):
            line = queries.report(DAY, DAY, after).as_dict()["people"][0]
            assert (line["on_time"], line["late"], line["missed"]) == (0, 1, 0), refreshed
            assert line["supplements"]["magnesium"]["late"] == 1
    mine = SqlAdherenceQueries(engine).report(DAY, DAY, after, ana)
    assert [dose.outcome for dose in mine.doses] == ["late"]


def test_a_window_closed_before_the_scheduler_closed_it_is_confirmed_late_and_stays(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    # still `sent`: the scheduler has not run since the window closed
    reminder = add_reminder(unit_of_work, engine, ana, DUE)
    answer = reply(unit_of_work, "Done ✅", REPLY_AT)
    assert answer.text is not None and "taken late, at 22:09" in answer.text
    assert close_windows(unit_of_work(), REPLY_AT + timedelta(minutes=1)) == 0
    assert reminder_row(engine, reminder).status == "confirmed"


def test_a_dose_never_sent_may_be_confirmed_late_too(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    # expired: the notifier could not send it inside its window; the person took it anyway
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status="expired")
    reply(unit_of_work, "taken", REPLY_AT)
    assert reminder_row(engine, reminder).status == "confirmed"


def test_the_late_answer_keeps_dairy_away_from_a_late_iron_dose(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    iron_due = DUE - timedelta(hours=8)  # 13:00
    add_reminder(unit_of_work, engine, ana, iron_due, items=IRON_ITEMS, status="missed")
    answer = reply(unit_of_work, "taken", iron_due + timedelta(hours=2, minutes=5))
    assert answer.text == (
        "Noted: iron 18 mg + vitamin C 250 mg taken late, at 15:05 (the 13:00 reminder). "
        "Dairy, calcium and medicines from 18:05."
    )


# -- the time the reply says -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "taken_at", "said"),
    [
        ("taken at 21:45", DUE + timedelta(minutes=45), "taken late, at 21:45"),
        ("taken at 9.45 pm", DUE + timedelta(minutes=45), "taken late, at 21:45"),
        # on time by the report's 30 minutes: no "late"
        ("TAGET kl 21.10", DUE + timedelta(minutes=10), "taken at 21:10 (the 21:00 reminder)"),
        # 08:00 and 20:00 are both before the dose was due: the reply's own instant
        ("taken at 8", REPLY_AT, "taken late, at 22:09"),
        ("taken at 23:00", REPLY_AT, "taken late, at 22:09"),  # after the reply: not yet
    ],
)
def test_a_time_said_between_the_due_time_and_the_reply_is_recorded(
    engine: Engine,
    unit_of_work: UnitOfWorkFactory,
    ana: int,
    body: str,
    taken_at: datetime,
    said: str,
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status="missed")
    answer = reply(unit_of_work, body, REPLY_AT)
    assert answer.text is not None and said in answer.text, answer.text
    row = reminder_row(engine, reminder)
    assert row.confirmed_at == taken_at
    # the confirmation is recorded when the person said it
    assert confirmations(engine) == [(reminder, "taken", REPLY_AT)]


def test_a_time_said_while_the_window_is_open_is_recorded_too(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE)
    answer = reply(unit_of_work, "taken at 21:05", DUE + timedelta(minutes=40))
    assert answer.text == "Logged at 21:05: magnesium citrate 300 mg."
    assert reminder_row(engine, reminder).confirmed_at == DUE + timedelta(minutes=5)


# -- when a late TAKEN records nothing -------------------------------------------------------

NOTHING = "There is no reminder waiting for an answer right now, so nothing was recorded."


def test_a_taken_once_the_same_supplements_next_reminder_is_due_records_nothing(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    # the 13:00 iron went unanswered; the 17:00 iron came due (and was answered): which
    # iron dose would a TAKEN at 19:30 be?
    first = add_reminder(unit_of_work, engine, ana, DUE - timedelta(hours=8), items=IRON_ITEMS)
    close_windows(unit_of_work(), DUE - timedelta(hours=5))
    add_reminder(
        unit_of_work, engine, ana, DUE - timedelta(hours=4), items=IRON_ITEMS, status="skipped"
    )
    assert reply(unit_of_work, "TAKEN", DUE - timedelta(minutes=90)).text == NOTHING
    assert reminder_row(engine, first).status == "missed"
    assert confirmations(engine) == []


def test_another_supplements_reminder_since_does_not_stop_a_late_taken(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    # the 13:00 iron missed, a 14:00 magnesium answered since: the iron is still the most
    # recent reminder that closed unanswered, and no iron came due after it
    iron = add_reminder(
        unit_of_work, engine, ana, DUE - timedelta(hours=8), items=IRON_ITEMS, status="missed"
    )
    add_reminder(unit_of_work, engine, ana, DUE - timedelta(hours=7), status="confirmed")
    reply(unit_of_work, "TAKEN", DUE - timedelta(hours=5))
    assert reminder_row(engine, iron).status == "confirmed"


def test_a_taken_more_than_12_hours_after_the_due_time_records_nothing(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status="missed")
    assert reply(unit_of_work, "TAKEN", DUE + timedelta(hours=12, minutes=1)).text == NOTHING
    assert reminder_row(engine, reminder).status == "missed"
    reply(unit_of_work, "TAKEN", DUE + timedelta(hours=11, minutes=59))
    assert reminder_row(engine, reminder).status == "confirmed"


@pytest.mark.parametrize("status", ["skipped", "confirmed", "cancelled", "planned"])
def test_answered_cancelled_and_unsent_reminders_are_not_confirmed_late(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int, status: str
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status=status)
    assert reply(unit_of_work, "TAKEN", REPLY_AT).text == NOTHING
    assert reminder_row(engine, reminder).status == status
    assert confirmations(engine) == []


def test_a_reminder_with_an_outcome_recorded_is_never_confirmed_again(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE)
    reply(unit_of_work, "SKIP", DUE + timedelta(minutes=5))
    with engine.begin() as connection:  # whatever moved its status on, its answer stands
        connection.execute(
            update(ReminderRow).where(ReminderRow.id == reminder).values(status="missed")
        )
    assert reply(unit_of_work, "TAKEN", REPLY_AT).text == NOTHING
    assert [row[:2] for row in confirmations(engine)] == [(reminder, "skipped")]


@pytest.mark.parametrize("body", ["SKIP", "LATER 20", "SPRING OVER"])
def test_skip_and_later_after_the_window_record_nothing_as_before(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int, body: str
) -> None:
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status="missed")
    assert reply(unit_of_work, body, REPLY_AT).text == NOTHING
    assert reminder_row(engine, reminder).status == "missed"
    assert [kind for kind, _ in events(engine)][-1] == "ReplyReceived"


def test_an_open_reminder_is_answered_before_a_closed_one(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    missed = add_reminder(
        unit_of_work, engine, ana, DUE - timedelta(hours=8), items=IRON_ITEMS, status="missed"
    )
    open_one = add_reminder(unit_of_work, engine, ana, DUE)
    reply(unit_of_work, "TAKEN", DUE + timedelta(minutes=5))
    assert reminder_row(engine, open_one).status == "confirmed"
    assert reminder_row(engine, missed).status == "missed"


def test_a_redelivered_late_taken_confirms_once(
    engine: Engine, unit_of_work: UnitOfWorkFactory, ana: int
) -> None:
    add_reminder(unit_of_work, engine, ana, DUE - timedelta(hours=8), status="missed")
    reminder = add_reminder(unit_of_work, engine, ana, DUE, status="missed")
    first = reply(unit_of_work, "TAKEN", REPLY_AT, sid="SMlateagain")
    again = reply(unit_of_work, "TAKEN", REPLY_AT + timedelta(minutes=1), sid="SMlateagain")
    assert (again.text, again.duplicate) == (first.text, True)
    assert [row[0] for row in confirmations(engine)] == [reminder]
    assert [kind for kind, _ in events(engine)].count("DoseConfirmed") == 1


def test_a_danish_person_is_told_in_danish(engine: Engine, unit_of_work: UnitOfWorkFactory) -> None:
    mette = person(unit_of_work, language="da")
    add_reminder(unit_of_work, engine, mette, DUE, status="missed")
    assert reply(unit_of_work, "taget", REPLY_AT).text == (
        "Noteret: magnesium citrate 300 mg taget sent, kl. 22:09 (påmindelsen kl. 21:00)."
    )


# -- closing windows leaves a late confirmation alone ----------------------------------------


def test_closing_windows_meanwhile_does_not_overwrite_a_late_confirmation(
    postgres_url: str,
) -> None:
    """The scheduler selects the reminder as `sent` (window closed) while the tracker holds
    it; once the tracker commits its confirmation, the scheduler's update must not make it
    `missed`. PostgreSQL: SQLite's writers never overlap."""
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)

    def unit_of_work() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    try:
        ana = person(unit_of_work)
        reminder = add_reminder(unit_of_work, engine, ana, DUE)
        tracker = unit_of_work()
        with tracker:
            held = tracker.replies.reminder_for_update(reminder)
            assert held is not None
            closing = threading.Thread(target=close_windows, args=(unit_of_work(), REPLY_AT))
            closing.start()
            _wait_for_a_lock_wait(postgres_url)
            tracker.replies.record_outcome(held, "taken", REPLY_AT, "sms", None)
            tracker.commit()
        closing.join(timeout=30)
        assert not closing.is_alive()
        assert reminder_row(engine, reminder).status == "confirmed"
    finally:
        engine.dispose()


def _wait_for_a_lock_wait(url: str) -> None:
    """Until another session of the database waits for a row lock (the scheduler's UPDATE)."""
    watcher = sqlalchemy_engine(url)
    try:
        deadline = clock.monotonic() + 10
        while clock.monotonic() < deadline:
            with watcher.connect() as connection:
                waiting = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            if waiting:
                return
            clock.sleep(0.02)
        raise AssertionError("the scheduler never waited for the reminder's lock")
    finally:
        watcher.dispose()
