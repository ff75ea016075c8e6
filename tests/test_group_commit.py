"""Inbound SMS handled together: tracker.group_commit's batches and
services.replies.receive_sms_together's one transaction for them, all or none."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import Database, database_on
from notifier.twilio_webhooks import compute_signature
from services.replies import InboundSms, SmsAnswer, receive_sms_together
from store.engine import create_engine as create_store_engine
from store.engine import session_factory
from store.errors import DatabaseUnavailable
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import (
    add_reminder,
    confirmations,
    count_replies,
    enrol,
    event_types,
    reminder_status,
)
from tests.tracker_client import AUTH_TOKEN, FORM_TYPE, NOW, PUBLIC_URL, new_sid
from tracker.group_commit import GroupCommit

if TYPE_CHECKING:
    from fastapi import FastAPI

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
IRON_TAKEN = "Iron logged at 11:42. Dairy, calcium and medicines from 14:42."


def phone(number: int) -> str:
    return f"+45201234{number:02d}"


def signed_tracker(
    store: Database, database_url: str = "sqlite://", *, sms_lanes: int = 1
) -> FastAPI:
    """The real tracker on `store`, its webhooks signed with the test token, the clock at NOW."""
    settings = Settings(
        database_url=database_url, public_url=PUBLIC_URL, twilio_auth_token=AUTH_TOKEN
    )
    return tracker_app(settings, store, lambda: NOW, sms_lanes=sms_lanes)


def people_with_an_open_reminder(
    unit_of_work: UnitOfWorkFactory, engine: Engine, count: int
) -> list[int]:
    """`count` people (phone(0), phone(1), ...), each with an iron reminder open at NOW."""
    reminders = []
    for number in range(count):
        person = enrol(unit_of_work, phone(number), NOW - timedelta(days=1))
        reminders.append(add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12)))
    return reminders


# -- one transaction for several replies -----------------------------------------------------


def test_replies_together_each_have_their_own_effects_answers_and_events(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    first, second, _third = people_with_an_open_reminder(unit_of_work, engine, 3)
    replies = [
        (InboundSms(new_sid(), phone(0), "TAKEN"), NOW),
        (InboundSms(new_sid(), phone(1), "SKIP"), NOW + timedelta(seconds=1)),
        (InboundSms(new_sid(), phone(2), "what?"), NOW + timedelta(seconds=2)),
        (InboundSms(new_sid(), "+4599000000", "TAKEN"), NOW + timedelta(seconds=3)),
    ]
    committed: list[int] = []
    outcomes = receive_sms_together(unit_of_work, replies, committed.append)
    assert committed == [4]
    assert all(isinstance(each, SmsAnswer) for each in outcomes)
    answers = [each for each in outcomes if isinstance(each, SmsAnswer)]
    assert [each.kind for each in answers] == ["taken", "skip", "unparsed", "taken"]
    assert answers[0].text == IRON_TAKEN
    assert answers[1].text is not None and answers[1].text.startswith("Skipped: iron")
    assert sorted(confirmations(engine)) == [(first, "taken", "sms"), (second, "skipped", "sms")]
    # each reply's events, in the replies' order
    assert event_types(engine)[-6:] == [
        "ReplyReceived",
        "DoseConfirmed",
        "ReplyReceived",
        "DoseSkipped",
        "ReplyReceived",
        "ReplyReceived",
    ]
    assert count_replies(engine) == 4


def test_one_sid_twice_in_one_transaction_confirms_once_and_answers_the_same(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    (reminder,) = people_with_an_open_reminder(unit_of_work, engine, 1)
    sms = InboundSms(new_sid(), phone(0), "TAKEN")
    outcomes = receive_sms_together(unit_of_work, [(sms, NOW), (sms, NOW + timedelta(seconds=5))])
    assert outcomes == [SmsAnswer(IRON_TAKEN, "taken"), SmsAnswer(IRON_TAKEN, "taken", True)]
    assert confirmations(engine) == [(reminder, "taken", "sms")]
    assert event_types(engine).count("DoseConfirmed") == 1
    assert count_replies(engine) == 1


def test_a_senders_second_reply_in_a_batch_sees_what_the_first_did(
    unit_of_work: UnitOfWorkFactory, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The first reply of each sender is claimed ahead, together; a sender's later reply in
    the same batch only after the earlier one's effects (one TAKEN confirms the reminder)."""
    first, second = people_with_an_open_reminder(unit_of_work, engine, 2)
    replies = [
        (InboundSms(new_sid(), phone(0), "TAKEN"), NOW),
        (InboundSms(new_sid(), phone(1), "SKIP"), NOW),
        (InboundSms(new_sid(), phone(0), "TAKEN"), NOW + timedelta(seconds=1)),
        (InboundSms(new_sid(), phone(1), "TAKEN"), NOW + timedelta(seconds=1)),
    ]
    outcomes = receive_sms_together(unit_of_work, replies)
    answers = [each for each in outcomes if isinstance(each, SmsAnswer)]
    assert len(answers) == 4
    assert answers[0].text == IRON_TAKEN
    assert answers[1].text is not None and answers[1].text.startswith("Skipped: iron")
    # the later ones found their reminder answered already: no second confirmation
    assert answers[2].text != IRON_TAKEN and answers[3].text != IRON_TAKEN
    assert sorted(confirmations(engine)) == [(first, "taken", "sms"), (second, "skipped", "sms")]
    assert count_replies(engine) == 4
    # in the one transaction, not by falling back to each reply alone
    assert "each alone" not in caplog.text


def refuse_replies_saying(engine: Engine, body: str) -> None:
    """A fault of the database's own: it refuses to store a reply with this body."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_reply BEFORE INSERT ON inbound_replies "
                    f"WHEN NEW.body = '{body}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        connection.execute(
            text(
                "CREATE FUNCTION refuse_reply() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF NEW.body = '{body}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse_reply BEFORE INSERT ON inbound_replies "
                "FOR EACH ROW EXECUTE FUNCTION refuse_reply()"
            )
        )


def test_a_reply_that_fails_fails_alone_and_the_others_are_kept(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    first, second, third = people_with_an_open_reminder(unit_of_work, engine, 3)
    refuse_replies_saying(engine, "BOOM")
    replies = [
        (InboundSms(new_sid(), phone(0), "TAKEN"), NOW),
        (InboundSms(new_sid(), phone(1), "BOOM"), NOW),
        (InboundSms(new_sid(), phone(2), "TAKEN"), NOW),
    ]
    committed: list[int] = []
    outcomes = receive_sms_together(unit_of_work, replies, committed.append)
    assert outcomes[0] == SmsAnswer(IRON_TAKEN, "taken")
    assert isinstance(outcomes[1], Exception)
    assert outcomes[2] == SmsAnswer(IRON_TAKEN, "taken")
    assert committed == [1, 1]  # the two that committed, each in a transaction of its own
    # the two others once each, nothing of the failed one
    assert sorted(confirmations(engine)) == [(first, "taken", "sms"), (third, "taken", "sms")]
    assert reminder_status(engine, second) == "sent"
    assert count_replies(engine) == 2
    assert event_types(engine)[-4:] == [
        "ReplyReceived",
        "DoseConfirmed",
        "ReplyReceived",
        "DoseConfirmed",
    ]


def test_when_the_database_is_down_the_batch_fails_as_one_after_a_second_try(
    tmp_path: Path,
) -> None:
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    sessions = session_factory(missing)
    opened: list[SqlUnitOfWork] = []

    def new_uow() -> SqlUnitOfWork:
        opened.append(SqlUnitOfWork(sessions))
        return opened[-1]

    replies = [(InboundSms(new_sid(), phone(number), "TAKEN"), NOW) for number in range(3)]
    outcomes = receive_sms_together(new_uow, replies)
    assert [type(each) for each in outcomes] == [DatabaseUnavailable] * 3
    # the batch, and once more on a fresh connection; not one try more for each reply
    assert len(opened) == 2
    missing.dispose()


def test_batches_that_cross_each_other_settle_every_reply_once(
    unit_of_work: UnitOfWorkFactory, engine: Engine
) -> None:
    # two batches at once, each with a reply from both people in the other order: on
    # PostgreSQL they may deadlock on the two reminders, and the one the database aborts is
    # handled again reply by reply
    first, second = people_with_an_open_reminder(unit_of_work, engine, 2)
    batches = [
        [(InboundSms(new_sid(), phone(number), "TAKEN"), NOW) for number in order]
        for order in ((0, 1), (1, 0))
    ]
    results: list[list[SmsAnswer | Exception]] = [[], []]

    def run(index: int) -> None:
        results[index] = receive_sms_together(unit_of_work, batches[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    outcomes = results[0] + results[1]
    assert all(isinstance(each, SmsAnswer) for each in outcomes), outcomes
    texts = sorted(each.text or "" for each in outcomes if isinstance(each, SmsAnswer))
    assert texts.count(IRON_TAKEN) == 2  # one per reminder; the later reply finds none open
    assert sorted(confirmations(engine)) == [(first, "taken", "sms"), (second, "taken", "sms")]
    assert count_replies(engine) == 4


# -- the batches -----------------------------------------------------------------------------


class Recorder:
    """A batch runner that records its batches and holds each until let go: items ending in
    "!" fail, the others come back upper-cased."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.go = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, items: list[str]) -> list[str | Exception]:
        with self._lock:
            self.batches.append(items)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.go.wait(timeout=10)
        with self._lock:
            self.running -= 1
        return [ValueError(item) if item.endswith("!") else item.upper() for item in items]


async def submit_while_held(commit: GroupCommit[str, str], recorder: Recorder, items: list[str]):
    """Hand in the items one after another, the first batch held until all are in."""
    calls = []
    for item in items:
        calls.append(asyncio.ensure_future(commit(item)))
        await asyncio.sleep(0.01)
    recorder.go.set()
    return await asyncio.gather(*calls, return_exceptions=True)


def test_a_lone_item_runs_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    recorder.go.set()
    commit = GroupCommit[str, str](recorder, lanes=1, most=8)
    assert asyncio.run(asyncio.wait_for(commit("a"), 10)) == "A"
    assert recorder.batches == [["a"]]


def test_items_that_arrive_while_the_lane_is_busy_go_together() -> None:
    recorder = Recorder()
    sizes: list[int] = []
    commit = GroupCommit[str, str](recorder, lanes=1, most=8, on_batch=sizes.append)
    results = asyncio.run(submit_while_held(commit, recorder, ["a", "b", "c", "d"]))
    assert results == ["A", "B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]
    assert sizes == [1, 3]


def test_a_batch_holds_at_most_most_items() -> None:
    recorder = Recorder()
    commit = GroupCommit[str, str](recorder, lanes=1, most=2)
    results = asyncio.run(submit_while_held(commit, recorder, list("abcdef")))
    assert results == list("ABCDEF")
    assert recorder.batches == [["a"], ["b", "c"], ["d", "e"], ["f"]]


def test_lanes_run_batches_side_by_side_and_no_more() -> None:
    recorder = Recorder()
    commit = GroupCommit[str, str](recorder, lanes=2, most=8, patience=0.0)
    results = asyncio.run(submit_while_held(commit, recorder, list("abcde")))
    assert results == list("ABCDE")
    assert recorder.batches[:2] == [["a"], ["b"]]
    assert recorder.batches[2:] == [["c", "d", "e"]]
    assert recorder.most_running == 2


def test_another_lane_starts_once_the_running_batch_has_outrun_patience() -> None:
    recorder = Recorder()
    commit = GroupCommit[str, str](recorder, lanes=2, most=8, patience=0.3)

    async def one_slow_batch() -> list[object]:
        held = asyncio.ensure_future(commit("a"))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(commit("b"))  # a's batch is young: b waits for it
        await asyncio.sleep(0.1)
        assert recorder.batches == [["a"]]
        await asyncio.sleep(0.35)  # a's batch is slow: b gets a lane, no arrival needed
        assert recorder.batches == [["a"], ["b"]]
        arriving = asyncio.ensure_future(commit("c"))  # both lanes are busy: c waits
        await asyncio.sleep(0.05)
        assert recorder.batches == [["a"], ["b"]]
        recorder.go.set()
        return await asyncio.gather(held, waiting, arriving)

    assert asyncio.run(one_slow_batch()) == ["A", "B", "C"]
    assert recorder.batches == [["a"], ["b"], ["c"]]
    assert recorder.most_running == 2


def test_each_event_loop_has_lanes_of_its_own() -> None:
    # an app may serve several loops (a test client each): a lane of one loop must never take
    # another's item, whose future only its own loop may resolve
    recorder = Recorder()
    recorder.go.set()
    commit = GroupCommit[str, str](recorder, lanes=1, most=8)
    answers: dict[str, list[str]] = {}

    def serve(name: str) -> None:
        async def many() -> list[str]:
            return list(await asyncio.gather(*(commit(f"{name}{n}") for n in range(20))))

        answers[name] = asyncio.run(asyncio.wait_for(many(), 10))

    threads = [threading.Thread(target=serve, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert answers == {name: [f"{name.upper()}{n}" for n in range(20)] for name in ("x", "y")}
    assert all(len({item[0] for item in batch}) == 1 for batch in recorder.batches)


def test_a_runner_that_gives_too_few_outcomes_fails_the_rest_and_strands_none() -> None:
    commit = GroupCommit[str, str](
        lambda items: [item.upper() for item in items[:1]], lanes=1, most=8
    )

    async def three() -> list[object]:
        first = asyncio.ensure_future(commit("a"))
        await asyncio.sleep(0)
        return await asyncio.gather(first, commit("b"), commit("c"), return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(three(), 10))
    assert results[0] == "A"
    assert [type(each) for each in results[1:]] in ([str, RuntimeError], [RuntimeError] * 2)


def test_an_item_that_fails_raises_for_its_caller_only() -> None:
    recorder = Recorder()
    commit = GroupCommit[str, str](recorder, lanes=1, most=8)
    results = asyncio.run(submit_while_held(commit, recorder, ["a", "b!", "c"]))
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError) and str(results[1]) == "b!"


def test_a_runner_that_fails_fails_every_item_of_its_batch() -> None:
    def broken(_items: list[str]) -> list[str | Exception]:
        raise RuntimeError("the runner broke")

    commit = GroupCommit[str, str](broken, lanes=1, most=8)

    async def both() -> list[object]:
        return await asyncio.gather(commit("a"), commit("b"), return_exceptions=True)

    results = asyncio.run(both())
    assert [str(each) for each in results] == ["the runner broke"] * 2


def test_a_caller_that_leaves_does_not_stop_the_others() -> None:
    recorder = Recorder()
    commit = GroupCommit[str, str](recorder, lanes=1, most=8)

    async def one_leaves() -> list[object]:
        first = asyncio.ensure_future(commit("a"))
        await asyncio.sleep(0.01)
        leaving = asyncio.ensure_future(commit("b"))
        staying = asyncio.ensure_future(commit("c"))
        await asyncio.sleep(0.01)
        leaving.cancel()
        recorder.go.set()
        return await asyncio.gather(first, leaving, staying, return_exceptions=True)

    first, leaving, staying = asyncio.run(one_leaves())
    assert (first, staying) == ("A", "C")
    assert isinstance(leaving, asyncio.CancelledError)
    assert recorder.batches == [["a"], ["b", "c"]]  # b was handled all the same


def test_a_group_commit_needs_a_lane_and_room_for_an_item() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        GroupCommit[str, str](Recorder(), lanes=0, most=8)
    with pytest.raises(ValueError, match="at least one lane"):
        GroupCommit[str, str](Recorder(), lanes=1, most=0)


# -- through the tracker ---------------------------------------------------------------------


def signed_sms(body: str, from_number: str) -> tuple[bytes, dict[str, str]]:
    form = {"MessageSid": new_sid(), "From": from_number, "To": "+4599999999", "Body": body}
    content = urlencode(form).encode()
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + "/twilio/sms", form)
    return content, {"Content-Type": FORM_TYPE, "X-Twilio-Signature": signature}


async def replies_at_once(
    app: FastAPI, senders: list[str], body: str = "TAKEN"
) -> list[httpx.Response]:
    """Signed replies, all sent at once, through the app's ASGI interface."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker") as client:
        requests = [signed_sms(body, sender) for sender in senders]
        return list(
            await asyncio.gather(
                *(client.post("/twilio/sms", content=data, headers=h) for data, h in requests)
            )
        )


def test_replies_arriving_together_share_transactions_and_each_get_their_answer(
    database_url: str, engine: Engine, unit_of_work: UnitOfWorkFactory
) -> None:
    count = 12
    reminders = people_with_an_open_reminder(unit_of_work, engine, count)
    app = signed_tracker(database_on(engine), database_url, sms_lanes=1)

    async def all_at_once_then_metrics() -> tuple[list[httpx.Response], str]:
        responses = await replies_at_once(app, [phone(number) for number in range(count)])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tracker") as client:
            metrics = await client.get("/metrics")
        return responses, metrics.text

    responses, metrics = asyncio.run(all_at_once_then_metrics())
    assert [response.status_code for response in responses] == [200] * count
    assert all(IRON_TAKEN in response.text for response in responses)
    assert sorted(confirmations(engine)) == sorted((each, "taken", "sms") for each in reminders)
    assert f"dosewise_tracker_sms_per_transaction_sum {float(count)}" in metrics
    transactions = _sample(metrics, "dosewise_tracker_sms_per_transaction_count")
    assert 1 <= transactions < count  # some went together


def _sample(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in the metrics")


def test_replies_together_while_the_database_is_down_are_each_answered_503(
    tmp_path: Path,
) -> None:
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    app = signed_tracker(database_on(missing))
    responses = asyncio.run(replies_at_once(app, [phone(number) for number in range(6)]))
    assert [response.status_code for response in responses] == [503] * 6
    assert all(response.text == "the database is unavailable\n" for response in responses)
    missing.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_store_engine(postgres_url)
    yield engine
    engine.dispose()


def test_a_batch_held_up_by_a_row_lock_lets_the_others_through_and_waits_for_its_own(
    postgres_url: str, postgres_engine: Engine
) -> None:
    # PostgreSQL: SQLite has no row locks (its writers wait at BEGIN)
    engine = postgres_engine
    sessions = session_factory(engine)
    reminders = people_with_an_open_reminder(lambda: SqlUnitOfWork(sessions), engine, 5)
    app = signed_tracker(database_on(engine), postgres_url, sms_lanes=1)
    locked, release = threading.Event(), threading.Event()

    def hold_the_third_reminder() -> None:  # as another service's long transaction would
        with engine.begin() as connection:
            connection.execute(
                text("SELECT id FROM reminders WHERE id = :id FOR UPDATE"), {"id": reminders[2]}
            )
            locked.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_the_third_reminder)
    holder.start()
    assert locked.wait(timeout=10)

    async def timed(client: httpx.AsyncClient, sender: str) -> tuple[float, httpx.Response]:
        body, headers = signed_sms("TAKEN", sender)
        response = await client.post("/twilio/sms", content=body, headers=headers)
        return asyncio.get_running_loop().time(), response

    async def all_at_once() -> tuple[float, list[tuple[float, httpx.Response]]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tracker") as client:
            start = asyncio.get_running_loop().time()
            asyncio.get_running_loop().call_later(3.0, release.set)
            answered = await asyncio.gather(*(timed(client, phone(n)) for n in range(5)))
            return start, list(answered)

    start, answered = asyncio.run(all_at_once())
    holder.join(timeout=30)
    waits = [at - start for at, _ in answered]
    assert [response.status_code for _, response in answered] == [200] * 5
    assert all(IRON_TAKEN in response.text for _, response in answered)
    # the four others within the batch's lock wait (and a little), the third after the lock
    assert all(wait < 2.0 for index, wait in enumerate(waits) if index != 2), waits
    assert waits[2] >= 3.0
    assert sorted(confirmations(engine)) == sorted((each, "taken", "sms") for each in reminders)


def test_replies_held_up_by_row_locks_take_one_thread_and_hold_up_nothing_else(
    postgres_url: str, postgres_engine: Engine
) -> None:
    engine = postgres_engine
    sessions = session_factory(engine)
    reminders = people_with_an_open_reminder(lambda: SqlUnitOfWork(sessions), engine, 6)
    # the tracker's own pool: 4 connections, as each worker has
    store = database_on(create_store_engine(postgres_url, pool_size=4, pre_ping=False))
    app = signed_tracker(store, postgres_url, sms_lanes=3)
    locked, release = threading.Event(), threading.Event()

    def hold_every_reminder() -> None:  # as another service's long transaction would
        with engine.begin() as connection:
            connection.execute(
                text("SELECT id FROM reminders WHERE id = ANY(:ids) FOR UPDATE"),
                {"ids": reminders},
            )
            locked.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_every_reminder)
    holder.start()
    assert locked.wait(timeout=10)

    async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
        response = await request
        return asyncio.get_running_loop().time(), response

    async def all_at_once() -> tuple[float, list[tuple[float, httpx.Response]]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tracker") as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            loop.call_later(4.0, release.set)
            held = [signed_sms("TAKEN", phone(n)) for n in range(6)]
            others = [signed_sms("HELP", f"+4599{n:06d}") for n in range(4)]
            requests = [
                client.post("/twilio/sms", content=body, headers=h) for body, h in held + others
            ]
            await asyncio.sleep(0.5)  # the held-up replies are waiting apart by now
            requests.append(client.get("/healthz"))
            requests += [
                client.post("/twilio/sms", content=body, headers=h)
                for body, h in [signed_sms("HELP", f"+4598{n:06d}") for n in range(4)]
            ]
            answered = await asyncio.gather(*(timed(each) for each in requests))
            return start, list(answered)

    start, answered = asyncio.run(all_at_once())
    holder.join(timeout=30)
    waits = [at - start for at, _ in answered]
    assert [response.status_code for _, response in answered] == [200] * 15
    assert all(wait >= 4.0 for wait in waits[:6])  # the locked ones, once the lock went
    assert all(wait < 2.5 for wait in waits[6:]), waits  # HELP and /healthz meanwhile
    assert sorted(confirmations(engine)) == sorted((each, "taken", "sms") for each in reminders)
