"""An admin who cannot be impersonated, on the real tracker app and SQLite and PostgreSQL:
server-side sessions (random, ended by sign-out, expiry and a changed token, shared by
workers), cross-site POSTs refused, sign-in attempts limited per client, security headers
on every admin page, and every admin action in the audit log without health data."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from services.admin_sessions import SESSION_IDLE, SESSION_LIMIT, SIGN_IN_WINDOW
from store.models import AdminAuditRow, AdminSessionRow
from tests.report_seed import ANA, END, NOW, START, seed
from tracker.admin import COOKIE

TOKEN = "admin-token-for-security-0123456789"
SITE = "https://dosewise.example"
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Worker:
    """One tracker worker (its own app) on the shared database."""

    def __init__(
        self,
        engine: Engine,
        database_url: str,
        clock: Clock,
        token: str = TOKEN,
        address: str = "203.0.113.7",
    ) -> None:
        settings = Settings(database_url=database_url, admin_token=token, public_url=SITE)
        app = tracker_app(settings, database_on(engine), clock)
        self.client = TestClient(app, client=(address, 40000), follow_redirects=False)

    def sign_in(self, token: str = TOKEN, origin: str | None = SITE) -> int:
        headers = {} if origin is None else {"Origin": origin}
        answer = self.client.post("/admin/login", data={"token": token}, headers=headers)
        status: int = answer.status_code
        return status

    def overview(self) -> int:
        status: int = self.client.get("/admin/", params=WINDOW).status_code
        return status

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/admin/").text)
        assert found is not None
        return found.group(1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(engine: Engine, database_url: str, clock: Clock) -> Iterator[Worker]:
    seed(engine)
    one = Worker(engine, database_url, clock)
    with one.client:
        yield one


def _sessions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(AdminSessionRow.id_hash)))


def _audit(engine: Engine) -> list[tuple[str, str, int | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(AdminAuditRow.who, AdminAuditRow.action, AdminAuditRow.person_id).order_by(
                AdminAuditRow.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


# -- sessions --------------------------------------------------------------------------------


def test_each_sign_in_makes_a_new_random_session_stored_only_as_a_hash(
    worker: Worker, engine: Engine
) -> None:
    cookies = []
    for _ in range(2):
        assert worker.sign_in() == 303
        cookies.append(worker.client.cookies[COOKIE])
        worker.client.cookies.clear()
    assert cookies[0] != cookies[1] and TOKEN not in cookies[0] and len(cookies[0]) >= 40
    stored = _sessions(engine)
    assert sorted(stored) == sorted(hashlib.sha256(c.encode()).hexdigest() for c in cookies)
    assert not set(cookies) & set(stored)


def test_sign_out_ends_the_session_even_for_a_copy_of_its_cookie(worker: Worker) -> None:
    assert worker.sign_in() == 303
    stolen = worker.client.cookies[COOKIE]
    out = worker.client.post(
        "/admin/logout", data={"csrf": worker.csrf()}, headers={"Origin": SITE}
    )
    assert out.status_code == 303
    worker.client.cookies.set(COOKIE, stolen, path="/admin")
    assert worker.overview() == 401


def test_a_changed_admin_token_ends_every_session(
    worker: Worker, engine: Engine, database_url: str, clock: Clock
) -> None:
    assert worker.sign_in() == 303
    cookie = worker.client.cookies[COOKIE]
    with Worker(engine, database_url, clock, token="a-new-token-9876543210").client as rotated:
        rotated.cookies.set(COOKIE, cookie, path="/admin")
        assert rotated.get("/admin/", params=WINDOW).status_code == 401
    assert worker.overview() == 200  # the old token's workers still know it


def test_workers_share_sessions_and_sign_outs_through_the_database(
    worker: Worker, engine: Engine, database_url: str, clock: Clock
) -> None:
    assert worker.sign_in() == 303
    other = Worker(engine, database_url, clock)
    with other.client:
        other.client.cookies.set(COOKIE, worker.client.cookies[COOKIE], path="/admin")
        assert other.overview() == 200
        csrf = other.csrf()
        ended = other.client.post("/admin/logout", data={"csrf": csrf}, headers={"Origin": SITE})
        assert ended.status_code == 303
    assert worker.overview() == 401


def test_a_session_ends_when_idle_and_at_its_absolute_limit(worker: Worker, clock: Clock) -> None:
    assert worker.sign_in() == 303
    clock.now = NOW + SESSION_IDLE - timedelta(seconds=1)
    assert worker.overview() == 200
    clock.now += SESSION_IDLE  # idle again, from the last request
    assert worker.overview() == 401

    worker.client.cookies.clear()
    start = clock.now
    assert worker.sign_in() == 303
    while clock.now < start + SESSION_LIMIT - timedelta(hours=1):
        clock.now += timedelta(hours=1)
        assert worker.overview() == 200
    clock.now = start + SESSION_LIMIT
    assert worker.overview() == 401  # used all along, ended all the same


# -- cross-site requests ---------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://dosewise.example"])
def test_a_cross_site_sign_out_or_sign_in_is_refused(
    worker: Worker, engine: Engine, origin: str
) -> None:
    assert worker.sign_in() == 303
    csrf = worker.csrf()
    forged = worker.client.post("/admin/logout", data={"csrf": csrf}, headers={"Origin": origin})
    assert forged.status_code == 403
    assert worker.overview() == 200
    by_referer = worker.client.post(
        "/admin/logout", data={"csrf": csrf}, headers={"Referer": f"{origin}/page"}
    )
    assert by_referer.status_code == 403 and worker.overview() == 200
    before = _sessions(engine)
    assert worker.sign_in(origin=origin) == 403
    assert _sessions(engine) == before


def test_a_session_post_needs_its_own_csrf_token(
    worker: Worker, engine: Engine, database_url: str, clock: Clock
) -> None:
    assert worker.sign_in() == 303
    other = Worker(engine, database_url, clock, address="198.51.100.4")
    with other.client:
        assert other.sign_in() == 303
        someone_elses = other.csrf()
    for form in ({}, {"csrf": ""}, {"csrf": someone_elses}):
        refused = worker.client.post("/admin/logout", data=form, headers={"Origin": SITE})
        assert refused.status_code == 403
        assert worker.overview() == 200
    by_header = worker.client.post(
        "/admin/logout", headers={"Origin": SITE, "X-CSRF-Token": worker.csrf()}
    )
    assert by_header.status_code == 303 and worker.overview() == 401


def test_a_bearer_request_needs_no_csrf_token(worker: Worker) -> None:
    answer = worker.client.post(
        "/admin/logout",
        headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://script.example"},
    )
    assert answer.status_code == 303


# -- sign-in attempts ------------------------------------------------------------------------


def test_five_wrong_tokens_lock_that_client_out_for_fifteen_minutes_on_every_worker(
    worker: Worker, engine: Engine, database_url: str, clock: Clock
) -> None:
    for attempt in range(5):
        clock.now = NOW + timedelta(minutes=attempt)
        assert worker.sign_in(token=f"guess-{attempt}") == 401
    locked = worker.client.post("/admin/login", data={"token": TOKEN}, headers={"Origin": SITE})
    assert locked.status_code == 429
    # the first failure (at NOW) leaves the window at NOW + 15 min
    assert int(locked.headers["retry-after"]) == (SIGN_IN_WINDOW - timedelta(minutes=4)).seconds
    assert COOKIE not in worker.client.cookies
    second_worker = Worker(engine, database_url, clock)
    with second_worker.client:
        assert second_worker.sign_in() == 429
    elsewhere = Worker(engine, database_url, clock, address="198.51.100.9")
    with elsewhere.client:
        assert elsewhere.sign_in() == 303  # another client is not locked out
    clock.now = NOW + SIGN_IN_WINDOW
    assert worker.sign_in() == 303


# -- headers ---------------------------------------------------------------------------------


def test_every_admin_page_forbids_framing_and_inline_script(worker: Worker) -> None:
    pages = [worker.client.get("/admin/"), worker.client.post("/admin/login", data={"token": "x"})]
    assert worker.sign_in() == 303
    pages += [
        worker.client.get("/admin/", params=WINDOW),
        worker.client.get(f"/admin/people/{ANA}", params=WINDOW),
        worker.client.get("/admin/api/adherence", headers={"Authorization": f"Bearer {TOKEN}"}),
        worker.client.get("/admin/people/999999", params=WINDOW),
    ]
    for page in pages:
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy and "script-src" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["x-content-type-options"] == "nosniff"
    for page in pages[:4]:
        for style in re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
        assert "<script" not in page.text and " style=" not in page.text


# -- the audit log ---------------------------------------------------------------------------


def test_every_admin_action_is_audited_without_health_data(worker: Worker, engine: Engine) -> None:
    assert worker.sign_in(token="wrong") == 401
    assert worker.sign_in() == 303
    who = hashlib.sha256(worker.client.cookies[COOKIE].encode()).hexdigest()[:12]
    assert worker.overview() == 200
    assert worker.client.get(f"/admin/people/{ANA}", params=WINDOW).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    worker.client.get("/admin/api/adherence", params={**WINDOW, "person": ANA}, headers=bearer)
    worker.client.get("/admin/api/adherence.csv", params=WINDOW, headers=bearer)
    worker.client.post("/admin/logout", data={"csrf": worker.csrf()}, headers={"Origin": SITE})
    assert _audit(engine) == [
        ("client 203.0.113.7", "sign-in failed", None),
        (who, "sign-in", None),
        (who, "view overview", None),
        (who, "view person", ANA),
        ("bearer", "read adherence JSON", ANA),
        ("bearer", "read adherence CSV", None),
        (who, "view overview", None),  # the page the sign-out form was read from
        (who, "sign-out", None),
    ]
    with engine.connect() as connection:
        columns = {column.name for column in AdminAuditRow.__table__.columns}
        assert columns == {"id", "at", "who", "action", "person_id"}
        times = list(connection.scalars(select(AdminAuditRow.at)))
    assert all(at == NOW for at in times)
