"""The Twilio SMS adapter, through the real twilio client, against the local fake Twilio."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.ports import AsyncSmsGateway, ErrorKind, SendError, SmsGateway
from notifier.sms import (
    AsyncTwilioSmsGateway,
    TwilioConfig,
    TwilioSmsGateway,
    rebase_url,
)
from notifier.twilio_http import HttpExchangeError, HttpResponse, LeanHttpClient, form_encode
from tests.fakes.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilioServer,
    ScriptedAnswer,
)

T = TypeVar("T")
TO = "+4520123456"
FROM = "+15005550006"
SERVICE = "MG" + "ab" * 16
CALLBACK = "http://127.0.0.1:8000/twilio/status"


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


def config(server: FakeTwilioServer, **changes: object) -> TwilioConfig:
    values: dict[str, object] = {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": DEFAULT_AUTH_TOKEN,
        "from_number": FROM,
        "api_base_url": server.base_url,
        "timeout_s": 2.0,
    }
    values.update(changes)
    return TwilioConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def gateway(twilio: FakeTwilioServer) -> Iterator[TwilioSmsGateway]:
    sms = TwilioSmsGateway(config(twilio))
    yield sms
    sms.close()


def send_error(gateway: TwilioSmsGateway, to: str = TO) -> SendError:
    with pytest.raises(SendError) as caught:
        gateway.send(to, "dosewise 11:30: iron 18 mg")
    return caught.value


def test_send_posts_the_form_fields_and_returns_twilio_s_answer(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    body = "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Reply TAKEN, SKIP or LATER"
    result = gateway.send(TO, body, status_callback=CALLBACK, validity_period_s=1800)

    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_id)
    assert (result.channel, result.status, result.num_segments) == ("sms", "queued", 1)
    [message] = twilio.messages
    assert message.sid == result.provider_id
    assert message.form == {
        "To": TO,
        "From": FROM,
        "Body": body,
        "StatusCallback": CALLBACK,
        "ValidityPeriod": "1800",
    }
    assert isinstance(gateway, SmsGateway)


def test_optional_fields_are_left_out_when_not_given(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    gateway.send(TO, "hello")
    assert twilio.messages[0].form == {"To": TO, "From": FROM, "Body": "hello"}


def test_messaging_service_sends_without_a_from_number(twilio: FakeTwilioServer) -> None:
    sms = TwilioSmsGateway(config(twilio, from_number=None, messaging_service_sid=SERVICE))
    result = sms.send(TO, "hello")
    assert result.status == "accepted"
    assert twilio.messages[0].form == {"To": TO, "MessagingServiceSid": SERVICE, "Body": "hello"}


def test_segments_come_from_twilio_s_count(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    assert gateway.send(TO, "a" * 161).num_segments == 2
    assert gateway.send(TO, "selenium 100 µg").num_segments == 1  # UCS-2, still one


def test_a_wrong_auth_token_is_refused_and_nothing_is_sent(twilio: FakeTwilioServer) -> None:
    sms = TwilioSmsGateway(config(twilio, auth_token="not-the-token"))
    error = send_error(sms)
    assert (error.kind, error.http_status, error.code) == (ErrorKind.PERMANENT, 401, 20003)
    assert twilio.messages == []


def test_a_wrong_account_sid_is_refused(twilio: FakeTwilioServer) -> None:
    sms = TwilioSmsGateway(config(twilio, account_sid="AC" + "9" * 32))
    assert send_error(sms).http_status == 401


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, ErrorKind.RETRYABLE),
        (429, None, ErrorKind.RETRYABLE),
        (500, None, ErrorKind.RETRYABLE),
        (503, None, ErrorKind.RETRYABLE),
        (400, 30001, ErrorKind.RETRYABLE),
        (400, 30003, ErrorKind.RETRYABLE),
        (400, 30008, ErrorKind.RETRYABLE),
        (400, 21211, ErrorKind.PERMANENT),
        (400, 21614, ErrorKind.PERMANENT),
        (400, 30005, ErrorKind.PERMANENT),
        (400, 30006, ErrorKind.PERMANENT),
        (400, 30007, ErrorKind.PERMANENT),
        (400, 21610, ErrorKind.OPTED_OUT),
        (400, 21617, ErrorKind.PERMANENT),  # any other 4xx
        (404, 20404, ErrorKind.PERMANENT),
    ],
)
def test_twilio_errors_are_classified(
    twilio: FakeTwilioServer,
    gateway: TwilioSmsGateway,
    status: int,
    code: int | None,
    kind: ErrorKind,
) -> None:
    twilio.script(ScriptedAnswer(status=status, code=code))
    error = send_error(gateway)
    assert error.kind is kind
    assert error.http_status == status
    assert error.code == (code or status)
    assert error.may_have_been_sent == (status >= 500)
    assert twilio.messages == []


def test_the_server_s_own_validation_reaches_the_classifier(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    twilio.opted_out.add("+4520999999")
    assert send_error(gateway, to="+4520999999").kind is ErrorKind.OPTED_OUT
    invalid = send_error(gateway, to="12345")
    assert (invalid.kind, invalid.code) == (ErrorKind.PERMANENT, 21211)


def test_a_scripted_failure_is_used_once(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    twilio.fail_next(429, 20429)
    assert send_error(gateway).retryable
    assert gateway.send(TO, "again").status == "queued"


def test_a_timeout_is_retryable_and_the_message_may_have_gone_out(
    twilio: FakeTwilioServer,
) -> None:
    sms = TwilioSmsGateway(config(twilio, timeout_s=0.3))
    twilio.script(ScriptedAnswer(delay_s=1.0))
    error = send_error(sms)
    assert error.kind is ErrorKind.RETRYABLE
    assert error.may_have_been_sent
    # Twilio went on and accepted it: why the worker must look before sending again.
    assert len(twilio.wait_for_messages(1, timeout_s=3)) == 1


def test_accepted_then_dropped_is_retryable_and_found_by_the_listing(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    claimed_at = datetime.now(UTC)
    twilio.script(ScriptedAnswer(drop_connection=True))
    error = send_error(gateway)
    assert error.kind is ErrorKind.RETRYABLE
    assert error.may_have_been_sent
    [found] = gateway.messages_sent_to(TO, claimed_at)
    assert found.provider_id == twilio.messages[0].sid
    assert found.body == "dosewise 11:30: iron 18 mg"


def test_an_unreachable_server_is_retryable_and_nothing_went_out() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sms = TwilioSmsGateway(
        TwilioConfig(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            from_number=FROM,
            api_base_url=f"http://127.0.0.1:{port}",
            timeout_s=1.0,
        )
    )
    error = send_error(sms)
    assert error.kind is ErrorKind.RETRYABLE
    assert not error.may_have_been_sent


def test_listing_finds_messages_to_one_number_since_a_time(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    sent = [gateway.send(TO, f"reminder {n}").provider_id for n in range(3)]
    gateway.send("+4520000001", "someone else")

    found = gateway.messages_sent_to(TO, since)
    assert sorted(m.provider_id for m in found) == sorted(sent)
    assert {m.body for m in found} == {"reminder 0", "reminder 1", "reminder 2"}
    assert all(m.to == TO and m.date_created is not None for m in found)
    # Any time zone will do; only the instant matters.
    assert len(gateway.messages_sent_to(TO, since.astimezone(ZoneInfo("Pacific/Auckland")))) == 3
    assert gateway.messages_sent_to(TO, datetime.now(UTC) + timedelta(minutes=1)) == []


def test_listing_follows_next_page_links(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(130):  # the adapter asks for pages of 100
        gateway.send(TO, f"r{n}")
    assert len(gateway.messages_sent_to(TO, since)) == 130


def test_listing_needs_an_aware_time(gateway: TwilioSmsGateway) -> None:
    with pytest.raises(ValueError, match="aware"):
        gateway.messages_sent_to(TO, datetime(2026, 11, 23, 12, 0))


def test_listing_errors_are_classified(twilio: FakeTwilioServer, gateway: TwilioSmsGateway) -> None:
    twilio.script(ScriptedAnswer(status=503, method="GET"))
    with pytest.raises(SendError) as caught:
        gateway.messages_sent_to(TO, datetime.now(UTC))
    assert caught.value.kind is ErrorKind.RETRYABLE


def test_fetching_one_message_by_sid(twilio: FakeTwilioServer, gateway: TwilioSmsGateway) -> None:
    sid = gateway.send(TO, "hello").provider_id
    fetched = gateway.client.messages(sid).fetch()
    assert (fetched.sid, fetched.to, fetched.body, fetched.status) == (sid, TO, "hello", "sent")


def test_bad_arguments_fail_before_any_request(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    with pytest.raises(ValueError, match="36000"):
        gateway.send(TO, "x", validity_period_s=0)
    with pytest.raises(ValueError, match="TWILIO_FROM_NUMBER"):
        TwilioConfig(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    assert twilio.requests_seen == 0


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?Page=1",
            "http://proxy.local/twilio/",
            "http://proxy.local/twilio/2010-04-01/Accounts/AC1/Messages.json?Page=1",
        ),
        ("https://api.twilio.com/x", "https://api.twilio.com", "https://api.twilio.com/x"),
        (
            "https://api.twilio.com.evil.example/x",
            "http://h",
            "https://api.twilio.com.evil.example/x",
        ),
        ("https://messaging.twilio.com/v1/x", "http://h", "https://messaging.twilio.com/v1/x"),
    ],
)
def test_rebase_url(url: str, base: str, expected: str) -> None:
    assert rebase_url(url, base) == expected


def test_async_gateway_sends_lists_and_classifies(twilio: FakeTwilioServer) -> None:
    async def scenario() -> None:
        sms = AsyncTwilioSmsGateway(config(twilio, timeout_s=0.3))
        assert isinstance(sms, AsyncSmsGateway)
        try:
            since = datetime.now(UTC) - timedelta(seconds=1)
            results = await asyncio.gather(*(sms.send(TO, f"r{n}") for n in range(20)))
            assert len({r.provider_id for r in results}) == 20
            assert len(await sms.messages_sent_to(TO, since)) == 20

            twilio.script(ScriptedAnswer(status=400, code=21610))
            with pytest.raises(SendError) as opted_out:
                await sms.send(TO, "x", status_callback=CALLBACK, validity_period_s=60)
            assert opted_out.value.kind is ErrorKind.OPTED_OUT

            twilio.script(ScriptedAnswer(delay_s=1.0))
            with pytest.raises(SendError) as timed_out:
                await sms.send(TO, "slow")
            assert timed_out.value.kind is ErrorKind.RETRYABLE
            assert timed_out.value.may_have_been_sent
        finally:
            await sms.aclose()

    asyncio.run(scenario())


# -- the lean HTTP client under the async gateway ----------------------------------------------


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(scenario)


def test_async_sends_share_a_few_keep_alive_connections(twilio: FakeTwilioServer) -> None:
    async def scenario() -> None:
        sms = AsyncTwilioSmsGateway(config(twilio), pool_size=3)
        try:
            await asyncio.gather(*(sms.send(TO, f"r{n}") for n in range(60)))
        finally:
            await sms.aclose()

    run(scenario())
    assert len(twilio.messages) == 60
    assert twilio.connections_opened <= 3


def test_async_form_and_auth_reach_twilio_as_the_sync_client_sends_them(
    twilio: FakeTwilioServer,
) -> None:
    async def scenario() -> None:
        sms = AsyncTwilioSmsGateway(config(twilio))
        try:
            await sms.send(TO, "æøå & 50% + more", status_callback=CALLBACK, validity_period_s=600)
        finally:
            await sms.aclose()

    run(scenario())
    [message] = twilio.messages
    assert message.body == "æøå & 50% + more"
    assert message.form["StatusCallback"] == CALLBACK
    assert message.form["ValidityPeriod"] == "600"
    assert message.from_ == FROM


def test_async_unreachable_server_is_retryable_and_nothing_went_out() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> SendError:
        sms = AsyncTwilioSmsGateway(
            TwilioConfig(
                DEFAULT_ACCOUNT_SID,
                DEFAULT_AUTH_TOKEN,
                from_number=FROM,
                api_base_url=f"http://127.0.0.1:{port}",
                timeout_s=1.0,
            )
        )
        try:
            with pytest.raises(SendError) as caught:
                await sms.send(TO, "x")
            return caught.value
        finally:
            await sms.aclose()

    error = run(scenario())
    assert error.kind is ErrorKind.RETRYABLE
    assert not error.may_have_been_sent


def test_async_accepted_then_dropped_may_have_gone_out_and_the_next_send_works(
    twilio: FakeTwilioServer,
) -> None:
    async def scenario() -> SendError:
        sms = AsyncTwilioSmsGateway(config(twilio), pool_size=1)
        try:
            await sms.send(TO, "first")  # leaves a kept-alive connection in the pool
            twilio.script(ScriptedAnswer(drop_connection=True))
            with pytest.raises(SendError) as caught:
                await sms.send(TO, "dropped")
            await sms.send(TO, "after")  # on a new connection
            return caught.value
        finally:
            await sms.aclose()

    error = run(scenario())
    assert error.kind is ErrorKind.RETRYABLE
    assert error.may_have_been_sent
    assert [m.body for m in twilio.messages] == ["first", "dropped", "after"]


def test_async_a_timed_out_connection_is_not_reused(twilio: FakeTwilioServer) -> None:
    async def scenario() -> str:
        sms = AsyncTwilioSmsGateway(config(twilio, timeout_s=0.3), pool_size=1)
        try:
            twilio.script(ScriptedAnswer(delay_s=0.6))
            with pytest.raises(SendError):
                await sms.send(TO, "slow")
            await asyncio.sleep(0.5)  # the late answer arrives on the abandoned connection
            return (await sms.send(TO, "next")).provider_id
        finally:
            await sms.aclose()

    sid = run(scenario())
    assert twilio.message(sid).body == "next"  # its own answer, not the late one


def test_https_to_a_plain_http_server_fails_before_anything_is_sent(
    twilio: FakeTwilioServer,
) -> None:
    async def scenario() -> HttpExchangeError:
        client = LeanHttpClient()
        try:
            with pytest.raises(HttpExchangeError) as caught:
                await client.request(
                    "POST", twilio.base_url.replace("http:", "https:") + "/x", timeout_s=2
                )
            return caught.value
        finally:
            await client.close()

    assert not run(scenario()).request_sent
    assert twilio.requests_seen == 0


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
        (
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            201,
            b"hello",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", 200, b"hello"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    ],
    ids=["content-length", "chunked", "until-close", "no-body"],
)
def test_lean_client_reads_each_way_a_body_can_be_framed(
    answer: bytes, status: int, body: bytes
) -> None:
    async def scenario() -> HttpResponse:
        async with raw_server(answer) as url:
            client = LeanHttpClient()
            try:
                return await client.request("GET", url, timeout_s=2)
            finally:
                await client.close()

    response = run(scenario())
    assert (response.status, response.body) == (status, body)


def test_lean_client_garbage_answer_may_have_been_acted_on() -> None:
    async def scenario() -> HttpExchangeError:
        async with raw_server(b"SMTP? 220 hello\r\n\r\n") as url:
            client = LeanHttpClient()
            try:
                with pytest.raises(HttpExchangeError) as caught:
                    await client.request("POST", url, body=b"a=b", timeout_s=2)
                return caught.value
            finally:
                await client.close()

    assert run(scenario()).request_sent


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nContent-Length: 0"}, {"X-Evil\r\nHost: other": "a"}, {"X": "a\nb"}],
)
def test_lean_client_refuses_line_breaks_in_headers(headers: dict[str, str]) -> None:
    async def scenario() -> None:
        client = LeanHttpClient()
        with pytest.raises(ValueError, match="CR, LF"):
            await client.request("GET", "http://127.0.0.1:9/x", headers=headers, timeout_s=1)

    run(scenario())


@contextlib.asynccontextmanager
async def raw_server(answer: bytes) -> AsyncIterator[str]:
    """A server that answers every request with `answer`, then closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/2010-04-01/x.json"


@given(
    st.dictionaries(
        st.text(min_size=1),
        st.one_of(st.text(), st.integers(), st.lists(st.text(), max_size=3), st.booleans()),
        max_size=6,
    )
)
def test_form_encode_writes_what_urlencode_writes(data: dict[str, object]) -> None:
    assert form_encode(data) == urlencode(data, doseq=True)


def test_form_encode_of_a_typical_send() -> None:
    form = {"To": TO, "Body": "iron 18 mg + C: 50% æ", "ValidityPeriod": 600}
    assert form_encode(form) == (
        "To=%2B4520123456&Body=iron+18+mg+%2B+C%3A+50%25+%C3%A6&ValidityPeriod=600"
    )


def test_lean_client_speaks_https_keeps_the_connection_and_checks_the_certificate(
    certificate: tuple[Path, Path],
) -> None:
    """Real Twilio is HTTPS: a request goes inside TLS to a server whose certificate the
    context trusts, the connection is kept for the next one, and an untrusted certificate
    fails before anything is sent."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    seen: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.findall(rb"Content-Length: (\d+)", head)[0])
                seen.append(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    async def scenario() -> tuple[list[int], HttpExchangeError]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/2010-04-01/x.json"
        async with server:
            trusting = LeanHttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
            statuses = [
                (await trusting.request("POST", url, body=f"n={n}".encode(), timeout_s=5)).status
                for n in range(3)
            ]
            await trusting.close()
            default = LeanHttpClient()  # the system's CAs do not know this certificate
            with pytest.raises(HttpExchangeError) as untrusted:
                await default.request("POST", url, body=b"n=x", timeout_s=5)
            await default.close()
        return statuses, untrusted.value

    statuses, untrusted = run(scenario())
    assert statuses == [201, 201, 201]
    assert seen == [b"n=0", b"n=1", b"n=2"]
    assert connections == 1  # one kept-alive TLS connection (a failed handshake never gets here)
    assert not untrusted.request_sent
    assert "certificate" in str(untrusted).lower()


def test_lean_client_does_not_reuse_a_connection_the_server_closed_while_idle() -> None:
    """A server may close a kept-alive connection between requests (its idle timeout): the
    next request goes on a new connection instead of failing."""

    async def scenario() -> list[int]:
        # raw_server answers with a Content-Length (keep-alive) and then hangs up
        async with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as url:
            client = LeanHttpClient(pool_size=1)
            try:
                statuses = []
                for _ in range(3):
                    statuses.append((await client.request("GET", url, timeout_s=2)).status)
                    await asyncio.sleep(0.05)  # idle: the server's close arrives meanwhile
                return statuses
            finally:
                await client.close()

    assert run(scenario()) == [200, 200, 200]


# -- Retry-After -------------------------------------------------------------------------------


def test_retry_after_of_a_429_reaches_the_send_error(
    twilio: FakeTwilioServer, gateway: TwilioSmsGateway
) -> None:
    twilio.script(ScriptedAnswer(status=429, code=20429, retry_after="120"))
    error = send_error(gateway)
    assert (error.kind, error.code, error.retry_after_s) == (ErrorKind.RETRYABLE, 20429, 120.0)
    twilio.fail_next(429, 20429)  # no header: nothing left over from the last answer
    assert send_error(gateway).retry_after_s is None


def test_retry_after_as_an_http_date(twilio: FakeTwilioServer, gateway: TwilioSmsGateway) -> None:
    at = datetime.now(UTC) + timedelta(minutes=10)
    twilio.script(
        ScriptedAnswer(status=503, code=503, retry_after=at.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    )
    error = send_error(gateway)
    assert error.retry_after_s is not None
    assert 590 <= error.retry_after_s <= 600


def test_async_retry_after_reaches_the_send_error_of_its_own_send(
    twilio: FakeTwilioServer,
) -> None:
    async def scenario() -> None:
        sms = AsyncTwilioSmsGateway(config(twilio))
        try:
            twilio.script(ScriptedAnswer(status=429, code=20429, retry_after="30"))
            outcomes = await asyncio.gather(
                *(sms.send(TO, f"r{n}") for n in range(5)), return_exceptions=True
            )
            errors = [outcome for outcome in outcomes if isinstance(outcome, SendError)]
            assert [error.retry_after_s for error in errors] == [30.0]
            assert len(twilio.messages) == 4  # the others went, with no Retry-After of theirs
        finally:
            await sms.aclose()

    asyncio.run(scenario())
