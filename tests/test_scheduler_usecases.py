"""The scheduler's use cases on SQLite and PostgreSQL: materialise, events, follow-ups, hand-off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from notifier.segments import count_segments
from schemas.files import load_regimen
from schemas.regimen import Regimen
from services.enrolment import enrol_person
from services.ports import Event
from services.scheduling import (
    SchedulerConfig,
    close_windows,
    consume_events,
    hand_off,
    materialise,
    send_followups,
    tick,
)
from services.texts import email_text, sms_body, unpack_email
from store.models import ColdCourseRow, ConfirmTokenRow, OutgoingMessageRow, PersonRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
EXAMPLE = Path(__file__).parent.parent / "examples" / "ana.yaml"
# Monday 23 November 2026, 07:00 in Copenhagen (UTC+1)
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
CONFIG = SchedulerConfig(public_url="https://dosewise.example")


def enrol(
    unit_of_work: UnitOfWorkFactory, regimen: Regimen | None = None, at: datetime = NOW
) -> int:
    return enrol_person(unit_of_work(), regimen or load_regimen(EXAMPLE), at).person_id


def reminders(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(
                    ReminderRow.id, ReminderRow.slot_key, ReminderRow.due_at, ReminderRow.status
                ).order_by(ReminderRow.due_at, ReminderRow.slot_key)
            )
        )


def messages(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(
                    OutgoingMessageRow.reminder_id,
                    OutgoingMessageRow.purpose,
                    OutgoingMessageRow.status,
                    OutgoingMessageRow.due_at,
                    OutgoingMessageRow.body,
                    OutgoingMessageRow.not_after,
                ).order_by(OutgoingMessageRow.id)
            )
        )


def set_status(engine: Engine, status: str, *reminder_ids: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(ReminderRow).where(ReminderRow.id.in_(reminder_ids)).values(status=status)
        )


def append(unit_of_work: UnitOfWorkFactory, event: Event) -> None:
    with unit_of_work() as uow:
        uow.events.append(event)
        uow.commit()


def test_materialising_twice_stores_the_same_rows(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work)
    first = materialise(unit_of_work(), NOW, CONFIG)
    before = reminders(engine)
    second = materialise(unit_of_work(), NOW + timedelta(minutes=5), CONFIG)
    assert reminders(engine) == before
    # Ana's plan: iron + vitamin C + selenium at 11:30, magnesium at 21:00, two days of it
    assert (first.people, first.reminders, second.reminders) == (1, 4, 4)
    assert [row.slot_key for row in before] == [
        "2026-11-23#iron+vitamin_c+selenium",
        "2026-11-23#magnesium",
        "2026-11-24#iron+vitamin_c+selenium",
        "2026-11-24#magnesium",
    ]


def test_the_horizon_is_48_hours(unit_of_work: UnitOfWorkFactory, engine: Engine) -> None:
    enrol(unit_of_work)
    start = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # past Monday's 11:30 slot
    materialise(unit_of_work(), start, CONFIG)
    due = [row.due_at for row in reminders(engine)]
    assert all(start <= at < start + timedelta(hours=48) for at in due)
    # Monday 21:00, Tuesday 11:30 and 21:00, Wednesday 11:30 (10:30 UTC < 11:00 + 48 h)
    assert len(due) == 4


def test_a_dst_day_is_materialised_in_real_time(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work)
    # Sunday 29 March 2026: Copenhagen goes from UTC+1 to UTC+2 at 02:00
    materialise(unit_of_work(), datetime(2026, 3, 28, 23, 0, tzinfo=UTC), CONFIG)
    rows = {row.slot_key: row.due_at for row in reminders(engine)}
    assert rows["2026-03-29#iron+vitamin_c+selenium"] == datetime(2026, 3, 29, 9, 30, tzinfo=UTC)
    assert rows["2026-03-29#magnesium"] == datetime(2026, 3, 29, 19, 0, tzinfo=UTC)
    assert rows["2026-03-30#magnesium"] == datetime(2026, 3, 30, 19, 0, tzinfo=UTC)


def test_a_changed_regimen_replans_and_cancels_what_left_the_plan(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work)
    consume_events(unit_of_work(), NOW, CONFIG)
    assert {row.status for row in reminders(engine)} == {"planned"}
    body = load_regimen(EXAMPLE).model_dump(mode="json", by_alias=True)
    body["supplements"] = [s for s in body["supplements"] if s["name"] != "magnesium citrate"]
    enrol(unit_of_work, Regimen.model_validate(body), NOW + timedelta(minutes=1))
    consume_events(unit_of_work(), NOW + timedelta(minutes=1), CONFIG)
    states = {row.slot_key: row.status for row in reminders(engine)}
    assert states == {
        "2026-11-23#iron+vitamin_c+selenium": "planned",
        "2026-11-23#magnesium": "cancelled",
        "2026-11-24#iron+vitamin_c+selenium": "planned",
        "2026-11-24#magnesium": "cancelled",
    }


def start_course(
    unit_of_work: UnitOfWorkFactory, engine: Engine, person_id: int, onset: datetime
) -> int:
    with engine.begin() as connection:
        course_id = connection.execute(
            ColdCourseRow.__table__.insert()
            .values(person_id=person_id, onset_at=onset, ends_at=onset + timedelta(days=5))
            .returning(ColdCourseRow.id)
        ).scalar_one()
    payload = {"cold_course_id": course_id, "onset_at": onset.isoformat()}
    append(unit_of_work, Event("ColdOnset", person_id, onset, payload))
    return int(course_id)


def test_cold_onset_materialises_lozenges_and_cold_ended_cancels_them(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    person_id = enrol(unit_of_work)
    onset = NOW + timedelta(hours=1)  # 08:00 in Copenhagen
    course_id = start_course(unit_of_work, engine, person_id, onset)
    consume_events(unit_of_work(), onset + timedelta(seconds=1), CONFIG)
    lozenges = [row for row in reminders(engine) if "cold-course" in row.slot_key]
    assert len(lozenges) >= 6
    assert lozenges[0].due_at == onset  # the first lozenge at onset

    ended = onset + timedelta(hours=10)
    with engine.begin() as connection:
        connection.execute(
            update(ColdCourseRow).where(ColdCourseRow.id == course_id).values(ended_at=ended)
        )
    append(unit_of_work, Event("ColdEnded", person_id, ended, {"cold_course_id": course_id}))
    consume_events(unit_of_work(), ended, CONFIG)
    after = {row.id: row for row in reminders(engine) if "cold-course" in row.slot_key}
    assert {row.status for row in after.values() if row.due_at >= ended} == {"cancelled"}
    assert {row.status for row in after.values() if row.due_at < ended} == {"planned"}


def test_a_changed_regimen_moves_the_lozenges_of_a_running_course(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    person_id = enrol(unit_of_work)
    onset = NOW + timedelta(hours=1)
    start_course(unit_of_work, engine, person_id, onset)
    consume_events(unit_of_work(), onset + timedelta(seconds=1), CONFIG)
    before = {row.due_at for row in reminders(engine) if "cold-course" in row.slot_key}
    # iron and vitamin C now at a fixed 08:00: the lozenges must keep 2 h from it
    body = load_regimen(EXAMPLE).model_dump(mode="json", by_alias=True)
    body["meals"] = []
    body["medications"] = []
    for supplement in body["supplements"]:
        if supplement["name"] in {"iron", "vitamin C"}:
            supplement["at"] = "15:00"
    later = onset + timedelta(minutes=5)
    enrol(unit_of_work, Regimen.model_validate(body), later)
    consume_events(unit_of_work(), later, CONFIG)
    rows = [row for row in reminders(engine) if "cold-course" in row.slot_key]
    planned = {row.due_at for row in rows if row.status == "planned" and row.due_at >= later}
    cancelled = {row.due_at for row in rows if row.status == "cancelled"}
    assert planned != before and cancelled
    iron_at = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 15:00 in Copenhagen
    assert all(
        abs(due - iron_at) >= timedelta(hours=2) for due in planned if due.date() == iron_at.date()
    )
    assert not planned & cancelled


def sent_reminder(unit_of_work: UnitOfWorkFactory, engine: Engine) -> tuple[int, datetime]:
    """Ana's Monday 11:30 reminder, handed off and marked sent by the notifier."""
    enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    first = reminders(engine)[0]
    hand_off(unit_of_work(), first.due_at, CONFIG)
    set_status(engine, "sent", first.id)
    with engine.begin() as connection:
        connection.execute(update(OutgoingMessageRow).values(status="sent"))
    return int(first.id), first.due_at


@pytest.mark.parametrize(
    ("minutes", "enqueued"),
    [(30, True), (11 * 60, False)],  # 12:00 is inside the waking window; 22:30 is past it
)
def test_a_snooze_resends_inside_the_waking_window_only(
    unit_of_work: UnitOfWorkFactory, engine: Engine, minutes: int, enqueued: bool
) -> None:
    reminder_id, due = sent_reminder(unit_of_work, engine)
    asked = due + timedelta(minutes=2)
    payload = {"reminder_id": reminder_id, "minutes": minutes}
    append(unit_of_work, Event("Snoozed", 1, asked, payload))
    consume_events(unit_of_work(), asked + timedelta(seconds=1), CONFIG)
    snoozes = [m for m in messages(engine) if m.purpose.startswith("snooze-")]
    if enqueued:
        assert [(m.purpose, m.due_at) for m in snoozes] == [
            ("snooze-1", asked + timedelta(minutes=minutes))
        ]
        assert "again" in snoozes[0].body
    else:
        assert snoozes == []


def test_a_second_snooze_replaces_the_first_still_waiting(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    reminder_id, due = sent_reminder(unit_of_work, engine)
    for asked, minutes in ((due + timedelta(minutes=2), 60), (due + timedelta(minutes=5), 20)):
        append(
            unit_of_work,
            Event("Snoozed", 1, asked, {"reminder_id": reminder_id, "minutes": minutes}),
        )
        consume_events(unit_of_work(), asked + timedelta(seconds=1), CONFIG)
    waiting = [
        (m.purpose, m.due_at)
        for m in messages(engine)
        if m.purpose.startswith("snooze-") and m.status == "due"
    ]
    assert waiting == [("snooze-2", due + timedelta(minutes=25))]


def test_an_unanswered_reminder_gets_one_followup_then_is_missed(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    _reminder_id, due = sent_reminder(unit_of_work, engine)
    send_followups(unit_of_work(), due + timedelta(minutes=29), CONFIG)
    assert [m.purpose for m in messages(engine)] == ["initial"]
    for minutes in (30, 31, 60):
        send_followups(unit_of_work(), due + timedelta(minutes=minutes), CONFIG)
    followups = [m for m in messages(engine) if m.purpose == "followup"]
    assert len(followups) == 1
    assert followups[0].due_at == due + timedelta(minutes=30)
    close_windows(unit_of_work(), due + timedelta(minutes=119))
    assert reminders(engine)[0].status == "sent"
    close_windows(unit_of_work(), due + timedelta(hours=2))
    assert reminders(engine)[0].status == "missed"


def test_a_confirmation_cancels_the_followup(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    reminder_id, due = sent_reminder(unit_of_work, engine)
    later = due + timedelta(minutes=30)
    send_followups(unit_of_work(), later, CONFIG)
    set_status(engine, "confirmed", reminder_id)
    append(unit_of_work, Event("DoseConfirmed", 1, later, {"reminder_id": reminder_id}))
    consume_events(unit_of_work(), later, CONFIG)
    assert {(m.purpose, m.status) for m in messages(engine)} == {
        ("initial", "sent"),
        ("followup", "cancelled"),
    }


def test_opting_out_cancels_everything_pending_and_opting_in_resumes(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    person_id = enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    first = reminders(engine)[0]
    hand_off(unit_of_work(), first.due_at, CONFIG)
    with engine.begin() as connection:
        connection.execute(update(PersonRow).values(opted_out=True))
    append(unit_of_work, Event("OptedOut", person_id, first.due_at, {"source": "sms"}))
    consume_events(unit_of_work(), first.due_at, CONFIG)
    assert {row.status for row in reminders(engine)} == {"cancelled"}
    assert {m.status for m in messages(engine)} == {"cancelled"}
    materialise(unit_of_work(), first.due_at, CONFIG)  # an opted-out person is not planned
    assert {row.status for row in reminders(engine)} == {"cancelled"}

    back = first.due_at + timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(update(PersonRow).values(opted_out=False))
    append(unit_of_work, Event("OptedIn", person_id, back, {}))
    consume_events(unit_of_work(), back, CONFIG)
    states = [row.status for row in reminders(engine)]
    assert states[0] == "cancelled"  # in the past: not revived
    assert states[1:] == ["planned"] * (len(states) - 1)


def test_an_opt_out_read_after_the_opt_in_that_followed_it_cancels_nothing(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    # STOP then START, committed in that order, can be read START first (store.events): the
    # person is opted in now, so the OptedOut read last must not cancel their reminders
    person_id = enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    append(unit_of_work, Event("OptedIn", person_id, NOW, {}))
    append(unit_of_work, Event("OptedOut", person_id, NOW, {"source": "sms"}))
    consume_events(unit_of_work(), NOW, CONFIG)
    assert {row.status for row in reminders(engine)} == {"planned"}


def test_a_snooze_read_after_the_dose_was_confirmed_sends_nothing(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    reminder_id, due = sent_reminder(unit_of_work, engine)
    asked = due + timedelta(minutes=2)
    set_status(engine, "confirmed", reminder_id)  # LATER, then TAKEN, read in the other order
    append(unit_of_work, Event("DoseConfirmed", 1, asked, {"reminder_id": reminder_id}))
    append(unit_of_work, Event("Snoozed", 1, asked, {"reminder_id": reminder_id, "minutes": 30}))
    consume_events(unit_of_work(), asked + timedelta(seconds=1), CONFIG)
    assert [m.purpose for m in messages(engine)] == ["initial"]


def test_hand_off_writes_exactly_one_initial_message(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    first = reminders(engine)[0]
    for seconds in (0, 1, 2):
        tick(unit_of_work, first.due_at + timedelta(seconds=seconds), CONFIG)
    sent = messages(engine)
    assert [(m.reminder_id, m.purpose, m.status) for m in sent] == [(first.id, "initial", "due")]
    assert sent[0].body == (
        "dosewise 11:30: iron 18 mg + vitamin C 250 mg + selenium 100 mcg."
        " Keep dairy away until 14:30. Reply TAKEN, SKIP or LATER"
    )
    assert sent[0].not_after == first.due_at + timedelta(hours=2)
    assert reminders(engine)[0].status == "queued"


def test_a_reminder_found_after_its_window_expires(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    enrol(unit_of_work)
    materialise(unit_of_work(), NOW, CONFIG)
    first = reminders(engine)[0]
    hand_off(unit_of_work(), first.due_at + timedelta(hours=3), CONFIG)
    assert reminders(engine)[0].status == "expired"
    assert messages(engine) == []


def test_email_reminders_carry_a_confirm_link_whose_hash_is_stored(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    body = load_regimen(EXAMPLE).model_dump(mode="json", by_alias=True)
    body["person"]["channel"] = "email"
    enrol(unit_of_work, Regimen.model_validate(body))
    materialise(unit_of_work(), NOW, CONFIG)
    first = reminders(engine)[0]
    hand_off(unit_of_work(), first.due_at, CONFIG)
    plain, html = unpack_email(messages(engine)[0].body)
    link = next(line for line in plain.splitlines() if line.startswith("Taken: "))[7:]
    assert link.startswith("https://dosewise.example/confirm/")
    assert html is not None and f"{link}?action=skip" in html
    with engine.connect() as connection:
        stored = connection.execute(
            select(ConfirmTokenRow.token_hash, ConfirmTokenRow.expires_at)
        ).one()
        assert connection.execute(select(func.count()).select_from(ConfirmTokenRow)).scalar() == 1
    import hashlib

    token = link.rsplit("/", 1)[1]
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.expires_at == first.due_at + timedelta(hours=2)


def test_texts_for_the_example_regimen_fit_one_sms_segment() -> None:
    items = [
        {"supplement": "iron", "dose": "18 mg", "name": "iron"},
        {"supplement": "vitamin_c", "dose": "250 mg", "name": "vitamin C"},
        {"supplement": "selenium", "dose": "100 µg", "name": "selenium"},
    ]
    due = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    for purpose in ("initial", "followup", "snooze"):
        text = sms_body(items, due, "Europe/Copenhagen", purpose, language="en")  # type: ignore[arg-type]
        count = count_segments(text)
        assert (count.encoding, count.segments) == ("GSM-7", 1), text
    mail = email_text(
        items, due, "Europe/Copenhagen", "initial", "https://x/confirm/t", language="en"
    )
    assert mail.subject.startswith("dosewise 11:30: iron 18 mg")
