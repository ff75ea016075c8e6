"""What a client can send the tracker: nothing produces a 5xx, garbage never confirms a dose."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from notifier.twilio_webhooks import compute_signature
from services.reply_words import read_reply
from store.engine import create_engine
from store.unit_of_work import SqlUnitOfWork
from tests.seeding import add_confirm_token, add_reminder, confirmations, enrol
from tests.tracker_client import (
    AUTH_TOKEN,
    FORM_TYPE,
    NOW,
    PHONE,
    PUBLIC_URL,
    Tracker,
    new_sid,
    tracker,
)
from tracker.auth import require_admin
from tracker.logs import mask_phone

__all__ = ["tracker"]

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
WEBHOOKS = ("/twilio/sms", "/twilio/status")


@pytest.fixture
def open_reminder(tracker: Tracker, unit_of_work: UnitOfWorkFactory, engine: Engine) -> int:
    person = enrol(unit_of_work, PHONE, NOW - timedelta(days=1))
    return add_reminder(unit_of_work, engine, person, NOW - timedelta(minutes=12))


# -- size, content types, encodings ----------------------------------------------------------


def test_a_body_over_64_kib_is_413(tracker: Tracker) -> None:
    form = {"MessageSid": "SM1", "From": PHONE, "Body": "x" * (65 * 1024)}
    assert tracker.post_signed("/twilio/sms", form).status_code == 413


def test_a_lying_content_length_is_413(tracker: Tracker) -> None:
    response = tracker.client.post(
        "/twilio/sms",
        content=b"a=1",
        headers={"Content-Length": b"\xb2", "Content-Type": FORM_TYPE},
    )
    assert response.status_code in (400, 413)


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"Body": "TAKEN"}', 415),
        ("multipart/form-data; boundary=x", b"--x--", 415),
        ("", b"Body=TAKEN", 415),
        (FORM_TYPE, b"Body=\xff\xfe", 400),
        (FORM_TYPE, b"Body=%00TAKEN&MessageSid=SM1", 400),
        (FORM_TYPE, b"&".join([b"a=1"] * 500), 400),
    ],
)
def test_unreadable_forms_are_4xx(
    tracker: Tracker, content_type: str, body: bytes, status: int
) -> None:
    for path in WEBHOOKS:
        response = tracker.client.post(path, content=body, headers={"Content-Type": content_type})
        assert response.status_code == status


def test_a_field_read_twice_or_with_a_line_break_is_400_and_records_nothing(
    tracker: Tracker, open_reminder: int, engine: Engine
) -> None:
    def post(path: str, pairs: list[tuple[str, str]]) -> int:
        signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + path, pairs)
        response = tracker.client.post(
            path,
            content=urlencode(pairs).encode(),
            headers={"Content-Type": FORM_TYPE, "X-Twilio-Signature": signature},
        )
        return response.status_code

    two_bodies = [("MessageSid", "SM1"), ("From", PHONE), ("Body", "TAKEN"), ("Body", "SKIP")]
    assert post("/twilio/sms", two_bodies) == 400
    forged_line = [("MessageSid", "SM2"), ("MessageStatus", "sent\n2026-12-01 ERROR forged")]
    assert post("/twilio/status", forged_line) == 400
    media = [("MessageSid", "SM3"), ("From", PHONE), ("Body", "TAKEN")]
    media += [("MediaUrl0", "a"), ("MediaUrl0", "b")]  # fields we do not read may repeat
    assert post("/twilio/sms", media) == 200
    assert confirmations(engine) == [(open_reminder, "taken", "sms")]


def test_a_signed_form_without_the_fields_is_400(tracker: Tracker) -> None:
    assert tracker.post_signed("/twilio/sms", {"Body": "TAKEN"}).status_code == 400
    long_sid = {"MessageSid": "SM" + "1" * 100, "From": PHONE, "Body": "TAKEN"}
    assert tracker.post_signed("/twilio/sms", long_sid).status_code == 400
    assert tracker.post_signed("/twilio/status", {"MessageSid": "SM1"}).status_code == 400


# -- logs, health, metrics, OpenAPI, admin ---------------------------------------------------


def test_phone_numbers_are_masked_in_logs(
    tracker: Tracker, open_reminder: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dosewise.tracker"):
        tracker.sms("TAKEN")
    assert "+45****3456" in caplog.text
    assert PHONE not in caplog.text
    assert mask_phone("+1") == "****"


def test_healthz_checks_the_database(tracker: Tracker, tmp_path: Path) -> None:
    assert tracker.client.get("/healthz").json() == {"status": "ok", "database": "up"}
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    app = tracker_app(Settings(), database_on(missing), lambda: NOW)
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    missing.dispose()


def test_the_admin_api_answers_503_when_the_database_fails(tmp_path: Path) -> None:
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    settings = Settings(admin_token="admin-token-for-tests-0123456789")
    app = tracker_app(settings, database_on(missing), lambda: NOW)
    bearer = {"Authorization": f"Bearer {settings.admin_token}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/admin/api/adherence", "/admin/api/adherence.csv", "/admin/"):
            response = client.get(path, headers=bearer)
            assert response.status_code == 503, (path, response.text)
        assert client.get("/admin/api/adherence?person=7", headers=bearer).status_code == 503
    missing.dispose()


def test_metrics_count_webhooks_by_outcome(tracker: Tracker, open_reminder: int) -> None:
    tracker.sms("TAKEN")
    tracker.post_form("/twilio/sms", {"MessageSid": "SM1"})
    text = tracker.client.get("/metrics").text
    assert 'dosewise_tracker_webhooks_total{outcome="taken",route="/twilio/sms"} 1.0' in text
    assert 'dosewise_tracker_webhooks_total{outcome="forbidden",route="/twilio/sms"} 1.0' in text


def test_openapi_lists_the_routes(tracker: Tracker) -> None:
    paths = tracker.client.get("/openapi.json").json()["paths"]
    assert {"/twilio/sms", "/twilio/status", "/confirm/{token}", "/healthz", "/metrics"} <= set(
        paths
    )


@pytest.mark.parametrize("configured", ["s3cret-admin", None])
def test_admin_routes_need_the_bearer_token(configured: str | None) -> None:
    app = FastAPI()

    @app.get("/admin/ping", dependencies=[Depends(require_admin(configured))])
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    with TestClient(app) as client:
        assert client.get("/admin/ping").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/admin/ping", headers=wrong).status_code == 401
        assert client.get("/admin/ping", headers={"Authorization": "Bearer "}).status_code == 401
        right = client.get("/admin/ping", headers={"Authorization": f"Bearer {configured}"})
        assert right.status_code == (200 if configured else 401)


# -- fuzzing ---------------------------------------------------------------------------------

# bodies that are not a confirmation in any spelling (garbage, in the words)
garbage = st.text(max_size=300).filter(lambda body: read_reply(body).kind not in ("taken", "yes"))
field_names = st.sampled_from(
    ["MessageSid", "From", "To", "Body", "MessageStatus", "ErrorCode", "SmsSid", "NumMedia"]
) | st.text(max_size=20)
sids = st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True) | st.text(max_size=80)
forms = st.fixed_dictionaries(
    {},
    optional={
        "MessageSid": sids,
        "From": st.sampled_from([PHONE, "+4511112222"]) | st.text(max_size=40),
        "Body": garbage,
        "MessageStatus": st.sampled_from(["delivered", "failed", "undelivered"]) | st.text(),
        "ErrorCode": st.sampled_from(["21610", "30003", "", "²"]) | st.text(max_size=12),
    },
).flatmap(
    lambda base: st.dictionaries(field_names, st.text(max_size=50), max_size=5).map(
        lambda extra: {**extra, **base}
    )
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(WEBHOOKS),
    form=forms,
    signed=st.booleans(),
    raw=st.none() | st.binary(max_size=200),
    content_type=st.sampled_from([FORM_TYPE, f"{FORM_TYPE}; charset=utf-8", "text/plain", ""]),
)
def test_fuzzed_webhooks_never_5xx_and_never_confirm_garbage(
    tracker: Tracker,
    open_reminder: int,
    path: str,
    form: dict[str, str],
    signed: bool,
    raw: bytes | None,
    content_type: str,
) -> None:
    headers = {"Content-Type": content_type}
    if signed:
        headers["X-Twilio-Signature"] = compute_signature(AUTH_TOKEN, PUBLIC_URL + path, form)
    body = raw if raw is not None else urlencode(form).encode()
    response = tracker.client.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert confirmations(tracker.engine) == []


# -- schemathesis over /openapi.json ---------------------------------------------------------


def test_no_operation_in_the_openapi_schema_answers_5xx(
    tracker: Tracker, open_reminder: int
) -> None:
    # schemathesis' pytest loader (from_fixture) does not run under pytest 9, so the
    # operations' strategies are driven with hypothesis here, on the test's database
    schema = schemathesis.openapi.from_asgi("/openapi.json", tracker.client.app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the schema has operations schemathesis cannot read"
    assert len(operations) >= 5
    for operation in operations:

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def answers_below_500(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.path, response.text)

        answers_below_500()
    assert confirmations(tracker.engine) == []


# -- confirm links and probes, at the edges ---------------------------------------------------


def test_a_link_with_two_actions_is_refused_not_guessed(
    tracker: Tracker, open_reminder: int
) -> None:
    token = add_confirm_token(tracker.engine, open_reminder, NOW + timedelta(hours=2))
    response = tracker.client.get(f"/confirm/{token}?action=skip&action=taken")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert confirmations(tracker.engine) == []
    assert tracker.client.get(f"/confirm/{token}").status_code == 200  # the link still works


@pytest.mark.parametrize("path", ["/confirm/", "/confirm"])
def test_a_link_without_its_token_gets_the_page(tracker: Tracker, path: str) -> None:
    response = tracker.client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "not one dosewise sent" in response.text


def test_a_link_opened_while_the_database_is_down_gets_a_page(tmp_path: Path) -> None:
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/dosewise.db")
    app = tracker_app(Settings(), database_on(missing), lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/confirm/" + "t" * 43)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "open the link again later" in response.text
    missing.dispose()


def test_healthz_answers_head_as_probes_send_it(tracker: Tracker) -> None:
    response = tracker.client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


def test_a_reply_without_a_body_is_a_hint_and_records_nothing(
    tracker: Tracker, open_reminder: int
) -> None:
    """A picture-only MMS: OpenAPI says Body may be absent, and it is read as empty."""
    form = {"MessageSid": new_sid(), "From": PHONE, "To": "+4599999999", "NumMedia": "1"}
    response = tracker.post_signed("/twilio/sms", form)
    assert response.status_code == 200
    assert "<Message>" in response.text
    assert confirmations(tracker.engine) == []
    schema = tracker.client.get("/openapi.json").json()
    form_schema = schema["paths"]["/twilio/sms"]["post"]["requestBody"]["content"]
    assert "Body" not in form_schema[FORM_TYPE]["schema"]["required"]
