"""The tracker's inbound spool: a verified webhook the database cannot take is kept on disk,
answered 200, and put into the database once it answers, in order, once, opt-outs first.

The database really goes away here: PostgreSQL refuses connections to the test's database,
or the SQLite file's disk is full (tests.outages). The spool's files are real files, and a
worker that dies is a process killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from i18n import translator
from services.replies import DeliveryStatus, InboundSms
from services.reply_words import help_text
from services.spool_replay import Kept, kept_answer, replay_order
from store.engine import session_factory
from store.unit_of_work import SqlUnitOfWork
from tests.outages import Switchable, switchable, wait_until
from tests.seeding import (
    add_reminder,
    add_sent_message,
    confirmations,
    count_replies,
    enrol,
    message_row,
    opted_out,
    stored_reply,
)
from tests.tracker_client import AUTH_TOKEN, NOW, PHONE, PUBLIC_URL, Tracker, new_sid
from tracker.spool import InboundSpool, SpoolLimits

__all__ = ["switchable"]

OTHER_PHONE = "+4520999888"


# -- the order of a replay, and what a kept reply is answered ----------------------------------


def _reply(number: int, sender: str, body: str, at: datetime = NOW) -> Kept:
    return Kept(("spool", number), at, sms=InboundSms(f"SM{number}", sender, body))


def test_each_senders_replies_up_to_their_stop_go_first_in_their_own_order() -> None:
    kept = [
        _reply(0, OTHER_PHONE, "TAKEN"),
        _reply(1, PHONE, "TAKEN"),
        _reply(2, OTHER_PHONE, "SKIP"),
        _reply(3, PHONE, "STOP"),
        _reply(4, PHONE, "START"),
    ]
    order = [entry.key[1] for entry in replay_order(kept)]
    # Ana's TAKEN counts before her STOP; her START after it stays after it
    assert order == [1, 3, 0, 2, 4]


def test_a_carrier_opt_out_goes_first_and_other_callbacks_keep_their_place() -> None:
    delivered = Kept(("spool", 0), NOW, status=DeliveryStatus("SMa", "delivered", None))
    taken = _reply(1, PHONE, "TAKEN")
    unsubscribed = Kept(("spool", 2), NOW, status=DeliveryStatus("SMb", "undelivered", 21610))
    assert [e.key[1] for e in replay_order([delivered, taken, unsubscribed])] == [2, 0, 1]


def test_a_kept_reply_is_answered_without_knowing_the_sender() -> None:
    assert kept_answer("STOP", "en") is None  # nothing is sent after STOP
    assert kept_answer("HELP", "en") == help_text(translator("en"))  # carriers require it
    danish = kept_answer("taget", "en")
    assert danish == translator("da").gettext(
        "dosewise has your reply and will record it in a moment."
    )
    assert danish != kept_answer("TAKEN", "en")  # the words' language, Danish here
    assert kept_answer("1", "da") == danish  # words of every language: the deployment's


# -- the spool's files -------------------------------------------------------------------------


def _kept(number: int, body: str = "TAKEN", at: datetime = NOW) -> Kept:
    return Kept(("", 0), at, sms=InboundSms(f"SM{number:032d}", PHONE, body))


def _keep_and_die(directory: str, count: int) -> None:
    """A tracker worker that keeps `count` replies and is killed before replaying any."""
    spool = InboundSpool(directory)
    spool.open()
    for number in range(count):
        assert spool.keep(_kept(number, at=NOW + timedelta(seconds=number)), NOW)
    os.kill(os.getpid(), signal.SIGKILL)


def test_what_a_killed_worker_kept_is_adopted_by_another_in_order(tmp_path: Path) -> None:
    child = multiprocessing.get_context("spawn").Process(
        target=_keep_and_die, args=(str(tmp_path), 3)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    survivor = InboundSpool(tmp_path)
    survivor.open()
    try:
        assert survivor.adopt_orphans() == 1
        waiting = survivor.waiting()
        assert [entry.sms.provider_id for entry in waiting if entry.sms] == [
            f"SM{number:032d}" for number in range(3)
        ]
        survivor.mark_done(waiting[:1])
        # a second look (another worker, a restart) finds the same two still waiting
        assert len(survivor.waiting()) == 2
        survivor.mark_done(waiting[1:])
        assert survivor.waiting() == []
        assert [path.name for path in tmp_path.glob("*.spool")] == [survivor._require_own().name]
    finally:
        survivor.close()


def test_a_live_workers_file_is_not_adopted(tmp_path: Path) -> None:
    first, second = InboundSpool(tmp_path), InboundSpool(tmp_path)
    first.open()
    second.open()
    try:
        assert first.keep(_kept(1), NOW)
        assert second.adopt_orphans() == 0
        assert second.waiting() == []
    finally:
        first.close()
        second.close()


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    record = {"n": 0, "at": NOW.isoformat(), "kind": "sms", "sid": "SM1", "sender": PHONE}
    whole = json.dumps({**record, "body": "TAKEN"})
    (tmp_path / "dead-1.spool").write_text(whole + "\n" + whole[:25])
    spool = InboundSpool(tmp_path)
    spool.open()
    try:
        assert spool.adopt_orphans() == 1
        [entry] = spool.waiting()
        assert entry.sms == InboundSms("SM1", PHONE, "TAKEN")
    finally:
        spool.close()


def test_past_its_size_or_age_the_spool_keeps_nothing_more(tmp_path: Path) -> None:
    # two lines of about 150 bytes fit, a third does not
    spool = InboundSpool(tmp_path / "a", SpoolLimits(max_bytes=400, max_age=timedelta(hours=1)))
    spool.open()
    try:
        assert spool.keep(_kept(1), NOW)
        assert spool.keep(_kept(2), NOW)
        assert not spool.keep(_kept(3), NOW)  # past 400 bytes
        assert len(spool.waiting()) == 2
        assert not spool.state(NOW).accepting
    finally:
        spool.close()
    aged = InboundSpool(tmp_path / "b", SpoolLimits(max_age=timedelta(hours=1)))
    aged.open()
    try:
        assert aged.keep(_kept(1), NOW)
        assert aged.keep(_kept(2), NOW + timedelta(minutes=59))
        assert not aged.keep(_kept(3), NOW + timedelta(minutes=61))  # the first is too old
        assert aged.state(NOW + timedelta(minutes=61)).depth == 2
    finally:
        aged.close()


def test_replays_keep_the_order_written_when_the_clock_steps_back(tmp_path: Path) -> None:
    spool = InboundSpool(tmp_path)
    spool.open()
    try:
        for number, at in enumerate([NOW, NOW + timedelta(minutes=5), NOW - timedelta(hours=1)]):
            assert spool.keep(_kept(number, at=at), at)
        assert [e.sms.provider_id[-1] for e in spool.waiting() if e.sms] == ["0", "1", "2"]
    finally:
        spool.close()


def test_an_emptied_own_file_is_emptied_on_disk(tmp_path: Path) -> None:
    spool = InboundSpool(tmp_path)
    spool.open()
    try:
        assert spool.keep(_kept(1), NOW)
        [path] = tmp_path.glob("*.spool")
        assert path.stat().st_size > 0
        spool.mark_done(spool.waiting())
        assert path.stat().st_size == 0
        assert path.with_suffix(".done").stat().st_size == 0
    finally:
        spool.close()
    assert list(tmp_path.glob("*.spool")) == []  # closed with nothing waiting: removed


# -- through the tracker, with the database away -----------------------------------------------


@contextlib.contextmanager
def _spooling_tracker(
    database: Switchable, spool_dir: Path, limits: SpoolLimits | None = None
) -> Iterator[Tracker]:
    tracker = Tracker(database.engine)
    settings = Settings(
        database_url=database.url, public_url=PUBLIC_URL, twilio_auth_token=AUTH_TOKEN
    )
    app = tracker_app(
        settings,
        database_on(database.engine),
        tracker.clock,
        spool=InboundSpool(spool_dir, limits),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        tracker.client = client
        yield tracker


@pytest.fixture
def tracker(switchable: Switchable, tmp_path: Path) -> Iterator[Tracker]:
    with _spooling_tracker(switchable, tmp_path / "spool") as tracker:
        yield tracker


def _uow(database: Switchable) -> SqlUnitOfWork:
    return SqlUnitOfWork(session_factory(database.engine))


def _spool_depth(tracker: Tracker) -> int:
    return int(tracker.client.get("/readyz").json()["spool"]["depth"])


def test_a_reply_while_the_database_is_away_is_kept_and_recorded_once_it_is_back(
    switchable: Switchable, tracker: Tracker
) -> None:
    person = enrol(lambda: _uow(switchable), PHONE, NOW - timedelta(days=1))
    reminder = add_reminder(
        lambda: _uow(switchable), switchable.engine, person, NOW - timedelta(minutes=10)
    )
    switchable.away()
    sid = new_sid()
    answered = tracker.sms("TAKEN", sid=sid)
    assert answered.status_code == 200
    assert "will record it in a moment" in answered.text
    assert _spool_depth(tracker) == 1
    tracker.now = NOW + timedelta(minutes=1)  # the replay keeps the instant it arrived
    switchable.back()
    wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
    assert confirmations(switchable.engine) == [(reminder, "taken", "sms")]
    assert stored_reply(switchable.engine, sid).received_at == NOW


def test_a_reply_kept_before_a_stop_counts_and_the_stop_holds(
    switchable: Switchable, tracker: Tracker
) -> None:
    person = enrol(lambda: _uow(switchable), PHONE, NOW - timedelta(days=1))
    reminder = add_reminder(
        lambda: _uow(switchable), switchable.engine, person, NOW - timedelta(minutes=10)
    )
    switchable.away()
    assert tracker.sms("TAKEN").status_code == 200
    stop = tracker.sms("STOP")
    assert stop.status_code == 200
    assert "<Message>" not in stop.text  # nothing is sent after STOP
    switchable.back()
    wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
    assert confirmations(switchable.engine) == [(reminder, "taken", "sms")]
    assert opted_out(switchable.engine, person)


def test_a_senders_reply_waits_behind_their_kept_ones_even_once_the_database_is_back(
    switchable: Switchable, tracker: Tracker
) -> None:
    person = enrol(lambda: _uow(switchable), PHONE, NOW - timedelta(days=1))
    switchable.away()
    assert tracker.sms("STOP").status_code == 200
    switchable.back()
    # straight after: the replay may not have run yet, and START must not overtake the STOP
    started = tracker.sms("START")
    assert started.status_code == 200
    wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
    assert not opted_out(switchable.engine, person)
    assert count_replies(switchable.engine) == 2


def test_a_redelivered_sid_kept_and_replayed_counts_once(
    switchable: Switchable, tracker: Tracker
) -> None:
    person = enrol(lambda: _uow(switchable), PHONE, NOW - timedelta(days=1))
    reminder = add_reminder(
        lambda: _uow(switchable), switchable.engine, person, NOW - timedelta(minutes=10)
    )
    sid = new_sid()
    assert tracker.sms("TAKEN", sid=sid).status_code == 200  # stored at once
    switchable.away()
    assert tracker.sms("TAKEN", sid=sid).status_code == 200  # the same, kept
    assert tracker.sms("TAKEN", sid=sid).status_code == 200  # and kept again
    switchable.back()
    wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
    assert confirmations(switchable.engine) == [(reminder, "taken", "sms")]
    assert count_replies(switchable.engine) == 1


def test_a_status_callback_while_the_database_is_away_is_kept_and_replayed(
    switchable: Switchable, tracker: Tracker
) -> None:
    person = enrol(lambda: _uow(switchable), PHONE, NOW - timedelta(days=1))
    message = add_sent_message(switchable.engine, person, None, "SMdelivered01", NOW)
    switchable.away()
    answered = tracker.status("SMdelivered01", "delivered")
    assert (answered.status_code, answered.text) == (200, "kept\n")
    switchable.back()
    wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
    assert message_row(switchable.engine, message).status == "delivered"


def test_past_the_spools_bound_the_database_s_absence_is_a_503(
    switchable: Switchable, tmp_path: Path
) -> None:
    with _spooling_tracker(switchable, tmp_path / "tiny", SpoolLimits(max_bytes=150)) as tracker:
        switchable.away()
        assert tracker.sms("TAKEN").status_code == 200
        refused = tracker.sms("TAKEN")
        assert refused.status_code == 503
        ready = tracker.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["spool"] == {"depth": 1, "oldest_s": 0.0, "accepting": False}
        switchable.back()
        wait_until(lambda: _spool_depth(tracker) == 0, 15, "the spool replayed")
        assert count_replies(switchable.engine) == 1


def test_what_a_dead_worker_kept_is_replayed_by_a_tracker_that_starts(
    switchable: Switchable, tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    child = multiprocessing.get_context("spawn").Process(
        target=_keep_and_die, args=(str(directory), 4)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with _spooling_tracker(switchable, directory) as tracker:
        wait_until(lambda: count_replies(switchable.engine) == 4, 15, "the orphan replayed")
        assert _spool_depth(tracker) == 0
    assert stored_reply(switchable.engine, f"SM{0:032d}").received_at == NOW
    assert stored_reply(switchable.engine, f"SM{3:032d}").received_at == NOW + timedelta(seconds=3)
