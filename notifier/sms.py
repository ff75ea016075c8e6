"""The Twilio SMS adapter: the official `twilio` client, pointed at TWILIO_API_BASE_URL.

The twilio library always builds absolute URLs on https://api.twilio.com (`Domain.base_url`)
and hands them, with auth and form data, to its HTTP client. Rewriting that prefix in the
HTTP client is the one place that sees every request, the next-page links of listings
included, so the rest of the library runs unchanged against a local Twilio-compatible server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from notifier.ports import (
    ErrorKind,
    SendError,
    SendResult,
    SentMessage,
    classify_twilio_error,
)
from notifier.segments import segments
from notifier.twilio_http import HttpExchangeError, LeanHttpClient, form_encode

TWILIO_API_BASE_URL: Final = "https://api.twilio.com"
DEFAULT_TIMEOUT_S: Final = 10.0
# Twilio's ValidityPeriod bounds, in seconds.
VALIDITY_PERIOD_RANGE: Final = range(1, 36_001)
# How many messages one listing may return; the sweeper asks about one number since one claim.
_LIST_LIMIT: Final = 200


@dataclass
class _Answer:
    """What one send learnt from Twilio's HTTP answer beyond what the library passes on."""

    retry_after_s: float | None = None


# The send under way in this task or thread: the library raises its exception without the
# answer's headers, so the HTTP client notes Retry-After here for the gateway to report.
_ANSWER: ContextVar[_Answer | None] = ContextVar("dosewise_twilio_answer", default=None)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """An HTTP Retry-After (seconds, or an HTTP date) as seconds from `now`; None if absent."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _note_answer(status: int, headers: Mapping[str, str] | None) -> None:
    answer = _ANSWER.get()
    if answer is not None and status >= 400 and headers is not None:
        answer.retry_after_s = retry_after_s(headers.get("Retry-After"), datetime.now(UTC))


def rebase_url(url: str, base_url: str) -> str:
    """Move a URL the twilio library built on api.twilio.com onto `base_url`.

    URLs on other Twilio hosts are left alone: dosewise only uses the REST API on
    api.twilio.com, and sending anything else to a stand-in would hide the mistake.
    """
    base = base_url.rstrip("/")
    if base == TWILIO_API_BASE_URL or not url.startswith(TWILIO_API_BASE_URL):
        return url
    rest = url[len(TWILIO_API_BASE_URL) :]
    if rest and rest[0] not in "/?":  # e.g. https://api.twilio.com.evil.example
        return url
    return base + rest


class RebasedTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's requests-based client, sending to another base URL, always with a timeout."""

    def __init__(
        self,
        base_url: str = TWILIO_API_BASE_URL,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = 16,
    ) -> None:
        super().__init__(pool_connections=True, timeout=timeout_s)
        self.base_url = base_url.rstrip("/")
        # The library mounts a pool only for https://; a local server speaks http://.
        # No adapter-level retries: a retried POST could send the SMS twice; the worker decides.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, rebase_url(url, self.base_url), *args, **kwargs)
        _note_answer(int(response.status_code), response.headers)
        return response

    def close(self) -> None:
        self.session.close()


class RebasedAsyncTwilioHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """twilio's async HTTP client interface on a lean HTTP/1.1 client, sending to another
    base URL, always with a timeout.

    The library's own async client (AsyncTwilioHttpClient, on aiohttp) builds an aiohttp
    FormData (a multipart writer with a fresh uuid4 boundary) per request and formats its log
    lines even when logging is off; at thousands of messages a second, aiohttp's own
    per-request work was most of the notifier's CPU. Here the form is encoded once as
    application/x-www-form-urlencoded bytes, as Twilio expects, Basic auth is a header
    computed once, and `LeanHttpClient` does the exchange.
    """

    def __init__(
        self,
        base_url: str = TWILIO_API_BASE_URL,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = 100,
    ) -> None:
        super().__init__(logging.getLogger("twilio.async_http_client"), True, timeout_s)
        self.base_url = base_url.rstrip("/")
        self.http = LeanHttpClient(pool_size=pool_size)
        self._auth_headers: dict[tuple[str, str], str] = {}

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        request_headers = dict(headers or {})
        if auth is not None:
            request_headers["Authorization"] = self._basic_auth(auth)
        body = None
        if data:
            # what aiohttp's FormData makes of a dict (doseq: a list repeats its name)
            body = form_encode(data).encode()
            request_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        # Twilio's API does not redirect; a 3xx reaches the library, which reports it
        response = await self.http.request(
            method,
            rebase_url(url, self.base_url),
            params=params,
            body=body,
            headers=request_headers,
            timeout_s=self.timeout if timeout is None else timeout,
        )
        _note_answer(response.status, response.headers)
        return Response(response.status, response.body.decode("utf-8"), response.headers)

    def _basic_auth(self, auth: tuple[str, str]) -> str:
        header = self._auth_headers.get(auth)
        if header is None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            header = self._auth_headers[auth] = f"Basic {token}"
        return header

    async def close(self) -> None:
        await self.http.close()


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str = TWILIO_API_BASE_URL
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError(
                "Twilio needs a sender: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        if self.timeout_s <= 0:
            raise ValueError("the Twilio timeout must be positive")

    def sender_fields(self) -> dict[str, str]:
        """The create() arguments naming the sender; a Messaging Service picks the number."""
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        assert self.from_number is not None  # __post_init__
        return {"from_": self.from_number}


def _create_arguments(
    config: TwilioConfig,
    to: str,
    body: str,
    status_callback: str | None,
    validity_period_s: int | None,
) -> dict[str, Any]:
    arguments: dict[str, Any] = {"to": to, "body": body, **config.sender_fields()}
    if status_callback is not None:
        arguments["status_callback"] = status_callback
    if validity_period_s is not None:
        if validity_period_s not in VALIDITY_PERIOD_RANGE:
            raise ValueError(f"validity_period_s must be 1..36000, not {validity_period_s}")
        arguments["validity_period"] = validity_period_s
    return arguments


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _result(message: Any, body: str) -> SendResult:
    # A Messaging Service answers "accepted" before it has split the text; count it ourselves.
    reported = _as_int(message.num_segments) if message.num_segments is not None else None
    return SendResult(
        channel="sms",
        provider_id=str(message.sid),
        status=str(message.status),
        num_segments=reported or segments(body),
    )


def _listing_window(since: datetime) -> tuple[datetime, datetime]:
    """(what to ask Twilio for, what to keep).

    twilio formats the filter with strftime("...Z") without converting, so it must get UTC.
    Twilio applies DateSent filters by whole days and keeps times to the second, so ask from
    the start of the UTC day and cut here at the second.
    """
    if since.tzinfo is None:
        raise ValueError("since must be an aware datetime")
    cut = since.astimezone(UTC).replace(microsecond=0)
    return cut.replace(hour=0, minute=0, second=0), cut


def _sent_messages(records: Iterable[Any], cut: datetime) -> list[SentMessage]:
    # A record without date_created is kept: when unsure, the sweeper must assume it was sent.
    return [
        SentMessage(
            provider_id=str(record.sid),
            to=str(record.to),
            body=str(record.body or ""),
            status=str(record.status),
            date_created=record.date_created,
        )
        for record in records
        if record.date_created is None or record.date_created >= cut
    ]


def _never_connected(exc: BaseException) -> bool:
    """True when requests failed before any byte of the request could reach the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def sms_error(exc: BaseException, *, retry_after: float | None = None) -> SendError:
    """Classify whatever the twilio client (sync or async) raised; `retry_after` is the
    answer's Retry-After in seconds, when it had one."""
    if isinstance(exc, TwilioException) and hasattr(exc, "status"):
        status, code = _as_int(exc.status), _as_int(exc.code)
        return SendError(
            classify_twilio_error(status, code),
            f"Twilio answered HTTP {status}, code {code}: {getattr(exc, 'msg', exc)}",
            channel="sms",
            code=code,
            http_status=status,
            may_have_been_sent=status is not None and status >= 500,
            retry_after_s=retry_after,
        )
    if isinstance(exc, TwilioException):  # e.g. a listing page that was not 200
        response = exc.args[1] if len(exc.args) > 1 else None
        status = _as_int(getattr(response, "status_code", None))
        return SendError(
            classify_twilio_error(status, None),
            f"Twilio: {exc.args[0] if exc.args else exc!r} (HTTP {status})",
            channel="sms",
            http_status=status,
        )
    if isinstance(exc, HttpExchangeError):
        return SendError(
            ErrorKind.RETRYABLE,
            f"Twilio request failed: {exc}",
            channel="sms",
            may_have_been_sent=exc.request_sent,
        )
    if isinstance(exc, requests.RequestException):
        return SendError(
            ErrorKind.RETRYABLE,
            f"Twilio request failed: {type(exc).__name__}: {exc}",
            channel="sms",
            may_have_been_sent=not _never_connected(exc),
        )
    # Read timeouts, dropped connections, an answer that is not JSON: the request went out.
    return SendError(
        ErrorKind.RETRYABLE,
        f"Twilio request failed: {type(exc).__name__}: {exc}",
        channel="sms",
        may_have_been_sent=True,
    )


# What the adapters turn into SendError; anything else is a bug and propagates.
_PROVIDER_ERRORS: Final = (
    TwilioException,
    requests.RequestException,
    HttpExchangeError,
    asyncio.TimeoutError,
    ValueError,  # a 2xx whose body is not JSON
)


class TwilioSmsGateway:
    """SmsGateway on twilio's synchronous client; safe to share between threads."""

    def __init__(self, config: TwilioConfig, *, pool_size: int = 16) -> None:
        self.config = config
        self.http_client = RebasedTwilioHttpClient(
            config.api_base_url, timeout_s=config.timeout_s, pool_size=pool_size
        )
        self.client = Client(config.account_sid, config.auth_token, http_client=self.http_client)
        # looked up once: `client.messages` walks three lazy properties on every use
        self.message_list = self.client.messages

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period_s: int | None = None,
    ) -> SendResult:
        arguments = _create_arguments(self.config, to, body, status_callback, validity_period_s)
        answer = _Answer()
        noting = _ANSWER.set(answer)
        try:
            message = self.message_list.create(**arguments)
        except _PROVIDER_ERRORS as exc:
            raise sms_error(exc, retry_after=answer.retry_after_s) from exc
        finally:
            _ANSWER.reset(noting)
        return _result(message, body)

    def messages_sent_to(self, to: str, since: datetime) -> Sequence[SentMessage]:
        ask_from, cut = _listing_window(since)
        try:
            records = self.message_list.list(
                to=to, date_sent_after=ask_from, page_size=100, limit=_LIST_LIMIT
            )
        except _PROVIDER_ERRORS as exc:
            raise sms_error(exc) from exc
        return _sent_messages(records, cut)

    def close(self) -> None:
        self.http_client.close()


class AsyncTwilioSmsGateway:
    """AsyncSmsGateway on twilio's async client (over LeanHttpClient), for a worker with
    many sends in flight."""

    def __init__(self, config: TwilioConfig, *, pool_size: int = 100) -> None:
        self.config = config
        self.http_client = RebasedAsyncTwilioHttpClient(
            config.api_base_url, timeout_s=config.timeout_s, pool_size=pool_size
        )
        self.client = Client(config.account_sid, config.auth_token, http_client=self.http_client)
        # looked up once: `client.messages` walks three lazy properties on every use
        self.message_list = self.client.messages

    async def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period_s: int | None = None,
    ) -> SendResult:
        arguments = _create_arguments(self.config, to, body, status_callback, validity_period_s)
        answer = _Answer()
        noting = _ANSWER.set(answer)
        try:
            message = await self.message_list.create_async(**arguments)
        except _PROVIDER_ERRORS as exc:
            raise sms_error(exc, retry_after=answer.retry_after_s) from exc
        finally:
            _ANSWER.reset(noting)
        return _result(message, body)

    async def messages_sent_to(self, to: str, since: datetime) -> Sequence[SentMessage]:
        ask_from, cut = _listing_window(since)
        try:
            records = await self.message_list.list_async(
                to=to, date_sent_after=ask_from, page_size=100, limit=_LIST_LIMIT
            )
        except _PROVIDER_ERRORS as exc:
            raise sms_error(exc) from exc
        return _sent_messages(records, cut)

    async def aclose(self) -> None:
        await self.http_client.close()


__all__ = [
    "TWILIO_API_BASE_URL",
    "AsyncTwilioSmsGateway",
    "RebasedAsyncTwilioHttpClient",
    "RebasedTwilioHttpClient",
    "TwilioConfig",
    "TwilioSmsGateway",
    "rebase_url",
    "sms_error",
]
