"""Confirm links safe from mail scanners: opening `/confirm/{token}` shows the dose and two
buttons and records nothing, however often it is opened; the buttons' POST records it once.
An e-mail's skip link (`?action=skip`, in e-mails already sent) opens the same page with Skip
pre-selected. Through the real tracker app on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from services.enrolment import enrol_person
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    add_confirm_token,
    add_reminder,
    confirmations,
    enrol,
    events,
    person_regimen,
    reminder_status,
)
from tests.tracker_client import NOW, PHONE, Tracker, tracker

__all__ = ["tracker"]

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
BUTTON = re.compile(
    r'<button type="submit" name="action" value="(\w+)"( class="chosen" autofocus)?>'
)


@pytest.fixture
def reminder(tracker: Tracker, unit_of_work: UnitOfWorkFactory, engine: Engine) -> int:
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    return add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12))


def chosen(html: str) -> list[str]:
    return [value for value, selected in BUTTON.findall(html) if selected]


def test_opening_a_link_shows_the_dose_and_both_buttons_and_records_nothing(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    for _scanner_and_person in range(3):
        page = tracker.client.get(f"/confirm/{token}")
        assert page.status_code == 200
        assert "<h1>Your dose</h1>" in page.text
        assert "Time to take iron 18 mg + vitamin C 250 mg (11:30)." in page.text
        assert [value for value, _ in BUTTON.findall(page.text)] == ["taken", "skip"]
        assert ">I took it</button>" in page.text and ">Skip this one</button>" in page.text
        assert f'<form method="post" action="{token}">' in page.text
        assert chosen(page.text) == ["taken"]
    assert confirmations(tracker.engine) == []
    assert reminder_status(tracker.engine, reminder) == "sent"
    assert [kind for kind, _ in events(tracker.engine)].count("DoseConfirmed") == 0


def test_a_skip_link_from_an_email_already_sent_opens_the_page_with_skip_chosen(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    page = tracker.client.get(f"/confirm/{token}", params={"action": "skip"})
    assert page.status_code == 200 and chosen(page.text) == ["skip"]
    assert confirmations(tracker.engine) == []
    pressed = tracker.client.post(f"/confirm/{token}", data={"action": "skip"})
    assert pressed.status_code == 200 and "Skipped: iron 18 mg" in pressed.text
    assert confirmations(tracker.engine) == [(reminder, "skipped", "email")]


def test_pressing_a_button_records_once_and_the_link_is_then_used(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    tracker.client.get(f"/confirm/{token}")
    pressed = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert pressed.status_code == 200
    assert "Iron logged at 11:42" in pressed.text
    assert confirmations(tracker.engine) == [(reminder, "taken", "email")]
    for again in (
        tracker.client.post(f"/confirm/{token}", data={"action": "skip"}),
        tracker.client.get(f"/confirm/{token}"),
    ):
        assert again.status_code == 410 and "already used" in again.text
        assert "<button" not in again.text
    assert confirmations(tracker.engine) == [(reminder, "taken", "email")]


@pytest.mark.parametrize(
    "form",
    [{}, {"action": "maybe"}, {"action": ["taken", "skip"]}, {"other": "taken"}],
    ids=["no-action", "unknown-action", "two-actions", "other-field"],
)
def test_a_press_without_one_known_action_records_nothing(
    tracker: Tracker, reminder: int, form: dict[str, object]
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    refused = tracker.client.post(f"/confirm/{token}", data=form)
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("text/html")
    assert confirmations(tracker.engine) == []
    assert tracker.client.get(f"/confirm/{token}").status_code == 200  # still usable


def test_a_link_that_expired_after_it_was_opened_records_nothing(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(minutes=5))
    assert tracker.client.get(f"/confirm/{token}").status_code == 200
    tracker.now = NOW + timedelta(minutes=5)
    pressed = tracker.client.post(f"/confirm/{token}", data={"action": "taken"})
    assert pressed.status_code == 410 and "expired" in pressed.text
    assert confirmations(tracker.engine) == []


def test_a_danish_persons_page_and_buttons_are_in_danish(
    tracker: Tracker, unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    base = person_regimen("+4520999999")
    danish = base.model_copy(update={"person": base.person.model_copy(update={"language": "da"})})
    person = enrol_person(unit_of_work(), danish, NOW - timedelta(days=1)).person_id
    reminder = add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12))
    token = add_confirm_token(engine, reminder, NOW + timedelta(hours=2))
    page = tracker.client.get(f"/confirm/{token}", params={"action": "skip"})
    assert '<html lang="da">' in page.text and "<h1>Din dosis</h1>" in page.text
    assert ">Jeg har taget den</button>" in page.text
    assert ">Spring denne over</button>" in page.text
    assert "Intet bliver registreret, før du trykker på en knap." in page.text
    assert "jern 18 mg + C-vitamin 250 mg" in page.text
    assert chosen(page.text) == ["skip"]
    pressed = tracker.client.post(f"/confirm/{token}", data={"action": "skip"})
    assert '<html lang="da">' in pressed.text
    assert confirmations(engine) == [(reminder, "skipped", "email")]


def test_the_confirm_pages_forbid_framing_scripts_and_other_sites_styles(
    tracker: Tracker, reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, reminder, NOW + timedelta(hours=2))
    for response in (
        tracker.client.get(f"/confirm/{token}"),
        tracker.client.get("/confirm/nope"),
        tracker.client.post(f"/confirm/{token}", data={"action": "taken"}),
    ):
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy and "'unsafe-inline'" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
