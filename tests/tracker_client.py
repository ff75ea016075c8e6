"""The tracker under test: the real app on the test's database, a settable clock, and requests
signed exactly as Twilio signs them (notifier.twilio_webhooks.compute_signature)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from notifier.twilio_webhooks import compute_signature

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://dosewise.example"
PHONE = "+4520123456"
# Monday 23 November 2026, 11:42 in Copenhagen (UTC+1)
NOW = datetime(2026, 11, 23, 10, 42, tzinfo=UTC)
FORM_TYPE = "application/x-www-form-urlencoded"

_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


class Tracker:
    client: TestClient

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.now = NOW

    def clock(self) -> datetime:
        return self.now

    def sms(self, body: str, *, sid: str | None = None, from_number: str = PHONE) -> httpx.Response:
        form = {
            "MessageSid": sid or new_sid(),
            "AccountSid": "AC" + "0" * 32,
            "From": from_number,
            "To": "+4599999999",
            "Body": body,
            "NumMedia": "0",
        }
        return self.post_signed("/twilio/sms", form)

    def status(self, sid: str, status: str, error_code: str | None = None) -> httpx.Response:
        form = {"MessageSid": sid, "MessageStatus": status}
        if error_code is not None:
            form["ErrorCode"] = error_code
        return self.post_signed("/twilio/status", form)

    def post_signed(
        self,
        path: str,
        form: Mapping[str, str],
        *,
        token: str = AUTH_TOKEN,
        signed_url: str | None = None,
    ) -> httpx.Response:
        signature = compute_signature(token, signed_url or PUBLIC_URL + path, form)
        return self.post_form(path, form, {"X-Twilio-Signature": signature})

    def post_form(
        self, path: str, form: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        response: httpx.Response = self.client.post(
            path,
            content=urlencode(form).encode(),
            headers={"Content-Type": FORM_TYPE, **(headers or {})},
        )
        return response


def make_tracker(database_url: str, engine: Engine, **settings: str | None) -> Iterator[Tracker]:
    options: dict[str, str | None] = {
        "public_url": PUBLIC_URL,
        "twilio_auth_token": AUTH_TOKEN,
        **settings,
    }
    tracker = Tracker(engine)
    app = tracker_app(
        Settings(database_url=database_url, **options),  # type: ignore[arg-type]
        database_on(engine),
        tracker.clock,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        tracker.client = client
        yield tracker


@pytest.fixture
def tracker(database_url: str, engine: Engine) -> Iterator[Tracker]:
    yield from make_tracker(database_url, engine)
