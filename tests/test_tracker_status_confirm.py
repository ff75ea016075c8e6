"""POST /twilio/status and /confirm/{token}: delivery reports and e-mail confirm links."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.enrolment import enrol_person
from services.texts import unpack_email
from store.models import OutgoingMessageRow
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    add_confirm_token,
    add_reminder,
    add_sent_message,
    confirmations,
    enrol,
    event_types,
    events,
    message_row,
    opted_out,
    person_regimen,
    reminder_status,
)
from tests.tracker_client import NOW, PHONE, Tracker, new_sid, tracker

__all__ = ["tracker"]

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


@pytest.fixture
def person(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    return enrol(unit_of_work, PHONE, NOW - timedelta(days=1))


@pytest.fixture
def reminder(person: int, unit_of_work: UnitOfWorkFactory, engine: Engine) -> int:
    return add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12))


# -- status callbacks ------------------------------------------------------------------------


def test_delivered_updates_the_message(tracker: Tracker, person: int, reminder: int) -> None:
    sid = new_sid()
    message = add_sent_message(tracker.engine, person, reminder, sid, NOW)
    assert tracker.status(sid, "delivered").status_code == 200
    assert message_row(tracker.engine, message).status == "delivered"
    assert "DeliveryFailed" not in event_types(tracker.engine)


def test_a_final_failure_writes_delivery_failed_once(
    tracker: Tracker, person: int, reminder: int
) -> None:
    sid = new_sid()
    message = add_sent_message(tracker.engine, person, reminder, sid, NOW)
    tracker.status(sid, "undelivered", "30003")
    tracker.status(sid, "undelivered", "30003")  # Twilio retries callbacks too
    row = message_row(tracker.engine, message)
    assert (row.status, row.error_code) == ("failed", "30003")
    failed = [payload for kind, payload in events(tracker.engine) if kind == "DeliveryFailed"]
    assert failed == [{"message_id": message, "reminder_id": reminder, "error_code": 30003}]


@pytest.fixture
def mailed_person(tracker: Tracker, unit_of_work: UnitOfWorkFactory) -> int:
    """Another person, with an e-mail address, reminded by SMS."""
    plan = person_regimen("+4520123457")
    person = plan.person.model_copy(update={"email": "ana@example.com", "name": "Ana"})
    return enrol_person(unit_of_work(), plan.model_copy(update={"person": person}), NOW).person_id


def fallbacks(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                OutgoingMessageRow.reminder_id,
                OutgoingMessageRow.channel,
                OutgoingMessageRow.recipient,
                OutgoingMessageRow.purpose,
                OutgoingMessageRow.status,
                OutgoingMessageRow.body,
            ).where(OutgoingMessageRow.channel == "email")
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_an_sms_the_carrier_could_not_deliver_goes_again_by_email_once(
    tracker: Tracker, mailed_person: int, unit_of_work: UnitOfWorkFactory, status: str
) -> None:
    reminder = add_reminder(
        unit_of_work, tracker.engine, mailed_person, NOW - timedelta(minutes=12)
    )
    sid = new_sid()
    add_sent_message(tracker.engine, mailed_person, reminder, sid, NOW)
    assert tracker.status(sid, status, "30003").status_code == 200
    tracker.status(sid, status, "30003")  # Twilio retries callbacks too
    [(reminder_id, channel, address, purpose, state, body)] = fallbacks(tracker.engine)
    assert (reminder_id, channel, address, purpose, state) == (
        reminder,
        "email",
        "ana@example.com",
        "initial-email",
        "due",
    )
    # the notifier's own fallback e-mail: said why, with a confirm link that records the dose
    plain, _html = unpack_email(body)
    assert plain.startswith("We could not send this reminder to your phone by SMS")
    assert "Reply TAKEN" not in plain
    link = re.search(r"Taken: (\S+)", plain)
    assert link is not None and link.group(1).startswith("https://dosewise.example/confirm/")
    path = link.group(1).removeprefix("https://dosewise.example")
    assert tracker.client.get(path).status_code == 200
    assert confirmations(tracker.engine) == []  # opening the link records nothing
    answer = tracker.client.post(path, data={"action": "taken"})
    assert answer.status_code == 200
    assert confirmations(tracker.engine) == [(reminder, "taken", "email")]


def test_no_email_fallback_without_an_address_an_open_dose_or_after_21610(
    tracker: Tracker, person: int, mailed_person: int, unit_of_work: UnitOfWorkFactory
) -> None:
    due = NOW - timedelta(minutes=12)
    no_address = add_reminder(unit_of_work, tracker.engine, person, due)
    answered = add_reminder(unit_of_work, tracker.engine, mailed_person, due, status="confirmed")
    unsubscribed = add_reminder(
        unit_of_work, tracker.engine, mailed_person, due - timedelta(minutes=1)
    )
    for reminder, who, code in (
        (no_address, person, "30003"),
        (answered, mailed_person, "30003"),
        (unsubscribed, mailed_person, "21610"),
    ):
        sid = new_sid()
        add_sent_message(tracker.engine, who, reminder, sid, NOW)
        assert tracker.status(sid, "undelivered", code).status_code == 200
    assert event_types(tracker.engine).count("DeliveryFailed") == 3
    assert fallbacks(tracker.engine) == []


def test_a_late_sent_does_not_undo_delivered(tracker: Tracker, person: int) -> None:
    sid = new_sid()
    message = add_sent_message(tracker.engine, person, None, sid, NOW)
    tracker.status(sid, "delivered")
    tracker.status(sid, "sent")
    assert message_row(tracker.engine, message).status == "delivered"


def test_error_21610_opts_the_person_out(tracker: Tracker, person: int, reminder: int) -> None:
    sid = new_sid()
    add_sent_message(tracker.engine, person, reminder, sid, NOW)
    assert tracker.status(sid, "failed", "21610").status_code == 200
    assert opted_out(tracker.engine, person)
    assert ("OptedOut", {"source": "twilio"}) in events(tracker.engine)
    assert "DeliveryFailed" in event_types(tracker.engine)


def test_an_unknown_sid_is_acknowledged_and_changes_nothing(tracker: Tracker, person: int) -> None:
    response = tracker.status(new_sid(), "failed", "21610")
    assert response.status_code == 200
    assert event_types(tracker.engine) == ["RegimenChanged"]
    assert not opted_out(tracker.engine, person)


def test_an_unsigned_status_callback_is_refused(tracker: Tracker, person: int) -> None:
    sid = new_sid()
    message = add_sent_message(tracker.engine, person, None, sid, NOW)
    form = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert tracker.post_form("/twilio/status", form).status_code == 403
    assert message_row(tracker.engine, message).status == "sent"
    assert not opted_out(tracker.engine, person)


# -- confirm links ---------------------------------------------------------------------------


def test_a_confirm_link_records_taken_once(tracker: Tracker, reminder: int) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    first = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert "Iron logged at 11:42. Dairy, calcium and medicines from 14:42." in first.text
    assert confirmations(tracker.engine) == [(reminder, "taken", "email")]
    assert reminder_status(tracker.engine, reminder) == "confirmed"
    assert events(tracker.engine)[-1] == (
        "DoseConfirmed",
        {"reminder_id": reminder, "at": NOW.isoformat()},
    )
    again = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert again.status_code == 410
    assert "already used" in again.text
    assert tracker.client.get(f"/confirm/{token}").status_code == 410
    assert len(confirmations(tracker.engine)) == 1


def test_a_confirm_link_can_record_a_skip(tracker: Tracker, reminder: int) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    response = tracker.client.post(f"/confirm/{token}", data={"action": "skip"})
    assert response.status_code == 200 and "Skipped" in response.text
    assert confirmations(tracker.engine) == [(reminder, "skipped", "email")]
    assert events(tracker.engine)[-1] == ("DoseSkipped", {"reminder_id": reminder})


def test_an_altered_action_gets_the_page_not_json_and_records_nothing(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    response = tracker.client.get(f"/confirm/{token}", params={"action": "bogus"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    posted = tracker.client.post(f"/confirm/{token}", data={"action": "bogus"})
    assert posted.status_code == 404
    assert posted.headers["content-type"].startswith("text/html")
    assert confirmations(tracker.engine) == []
    assert tracker.client.get(f"/confirm/{token}").status_code == 200  # the link still works


def test_an_expired_link_records_nothing(tracker: Tracker, reminder: int) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW)
    response = tracker.client.get(f"/confirm/{token}")
    assert response.status_code == 410 and "expired" in response.text
    posted = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert posted.status_code == 410 and "expired" in posted.text
    assert confirmations(tracker.engine) == []


def test_an_unknown_link_is_404(tracker: Tracker, reminder: int) -> None:
    for token in ("nope", "x" * 5000, "%F0%9F%92%8A"):
        assert tracker.client.get(f"/confirm/{token}").status_code == 404
        posted = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
        assert posted.status_code == 404
    assert confirmations(tracker.engine) == []


def test_an_unknown_link_is_answered_in_the_language_the_browser_asks_for(
    tracker: Tracker, reminder: int
) -> None:
    danish = {"Accept-Language": "da-DK,da;q=0.9,en;q=0.8"}
    for path in ("/confirm/nope", "/confirm/", "/confirm/nope?action=bogus"):
        page = tracker.client.get(path, headers=danish)
        assert page.status_code == 404
        assert '<html lang="da">' in page.text and "<h1>Ukendt link</h1>" in page.text
    english = tracker.client.get("/confirm/nope", headers={"Accept-Language": "fr, de"})
    assert '<html lang="en">' in english.text and "<h1>Unknown link</h1>" in english.text


def test_a_link_for_a_dose_answered_by_sms_records_nothing_more(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    tracker.sms("SKIP")
    response = tracker.client.get(f"/confirm/{token}")
    assert response.status_code == 410
    posted = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert posted.status_code == 410
    assert confirmations(tracker.engine) == [(reminder, "skipped", "sms")]
