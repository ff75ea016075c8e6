"""A local Twilio-compatible HTTP server for the Messages resource of the 2010-04-01 API.

Built on asyncio streams with a small HTTP/1.1 keep-alive parser rather than a framework, so
that a benchmark measures dosewise and not the stand-in (a thread-per-request stdlib server
tops out near 2,000 requests/s on a small machine).

It checks HTTP Basic auth (account SID + auth token), validates the form as Twilio does,
answers Twilio-shaped JSON, records every accepted message (thread-safe), and can be scripted
to fail: an HTTP error with a Twilio code, a delay longer than the client's timeout, or
accepting a message and then dropping the connection before answering.

    with FakeTwilioServer() as twilio:          # or a fixture from fake_twilio_server()
        twilio.base_url                         # -> TWILIO_API_BASE_URL
        twilio.script(ScriptedAnswer(status=429, code=20429))
        twilio.messages                         # what was accepted, oldest first

Standalone, for benchmarks:
    python -m tests.fakes.twilio_server --port 8099 [--account-sid AC... --auth-token ...]
        [--no-record] [--arrivals FILE] [--latency-ms MS]
--arrivals writes "<unix time accepted>\t<body>" per accepted message to FILE on exit, so a
benchmark can measure lateness (due time -> accepted here) of processes it does not run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import functools
import json
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final, cast
from urllib.parse import unquote_plus, urlencode, urlsplit

from notifier.segments import segments

API_VERSION: Final = "2010-04-01"
DEFAULT_ACCOUNT_SID: Final = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN: Final = "test-auth-token-0123456789abcdef"
MAX_BODY_CHARS: Final = 1600
MAX_REQUEST_BYTES: Final = 1 << 20

_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MESSAGES: Final = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$"
)
_REASONS: Final = {
    200: "OK",
    201: "CREATED",
    400: "BAD REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT FOUND",
    405: "METHOD NOT ALLOWED",
    413: "PAYLOAD TOO LARGE",
    431: "REQUEST HEADER FIELDS TOO LARGE",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    502: "BAD GATEWAY",
    503: "SERVICE UNAVAILABLE",
}


@dataclass(frozen=True)
class ScriptedAnswer:
    """What the server does with the next request that matches `method` (None: any).

    status None: process the request normally (check, record, answer). status set: answer that
    HTTP status with a Twilio error body (`code`, `message`) instead; nothing is recorded.
    delay_s: wait this long first (longer than the client's timeout to make it time out).
    drop_connection: after processing, close the connection without answering; with status
    None that is "accepted, then the connection dropped": the message is recorded.
    retry_after: a Retry-After header to send with the answer (seconds, or an HTTP date).
    """

    status: int | None = None
    code: int | None = None
    message: str = "scripted failure"
    delay_s: float = 0.0
    drop_connection: bool = False
    method: str | None = "POST"
    retry_after: str | None = None


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: str
    num_segments: int
    date_created: datetime
    date_sent: datetime | None
    status_callback: str | None
    validity_period: int | None
    form: dict[str, str] = field(repr=False)

    def as_json(self, status: str | None = None) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _http_date(self.date_created),
            "date_sent": _http_date(self.date_sent) if self.date_sent else None,
            "date_updated": _http_date(self.date_sent or self.date_created),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": status or self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    keep_alive: bool


def _twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    # The legacy shape the Messages API answers; it must not carry both "type" and "title",
    # or twilio would read it as an RFC 9457 problem.
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@functools.lru_cache(maxsize=8)
def _http_date(moment: datetime) -> str:
    """RFC 2822, as Twilio writes dates; cached because times are kept to the second."""
    return format_datetime(moment)


def _parse_date_filter(value: str) -> datetime:
    """Twilio accepts YYYY-MM-DD; the twilio library sends YYYY-MM-DDTHH:MM:SSZ."""
    text = value.strip().removesuffix("Z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _HttpError(400, 20001, f"Invalid date filter: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class FakeTwilioServer:
    """The server; start()/stop() or use as a context manager. Runs its loop in a thread."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        note_arrivals: bool = False,
        latency_s: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.record = record  # a long benchmark may not want 100,000 messages kept
        # every answer this late, as from a provider across the internet (0: at once)
        self.latency_s = latency_s
        # (unix time, body) of every accepted message, when asked for: cheap enough for a bench
        self.arrivals: list[tuple[float, str]] | None = [] if note_arrivals else None
        self.opted_out: set[str] = set()  # numbers that answer 21610, as after a STOP
        self.requests_seen = 0
        self.connections_opened = 0  # shows whether a client keeps its connections alive
        self._expected_auth = "Basic " + base64.b64encode(
            f"{account_sid}:{auth_token}".encode()
        ).decode("ascii")
        self._lock = threading.Lock()
        self._accepted = threading.Condition(self._lock)
        self._messages: dict[str, FakeMessage] = {}
        self._script: collections.deque[ScriptedAnswer] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[_HttpConnection] = set()

    # -- test-facing API ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def messages(self) -> list[FakeMessage]:
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> FakeMessage:
        with self._lock:
            return self._messages[sid]

    def script(self, *answers: ScriptedAnswer) -> None:
        """Queue answers for the next matching requests, in order."""
        with self._lock:
            self._script.extend(answers)

    def fail_next(self, status: int, code: int, message: str = "scripted failure") -> None:
        self.script(ScriptedAnswer(status=status, code=code, message=message))

    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def set_status(self, sid: str, status: str) -> None:
        with self._lock:
            self._messages[sid].status = status

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._script.clear()
            self.opted_out.clear()
            self.requests_seen = 0
            self.connections_opened = 0

    def wait_for_messages(self, count: int, timeout_s: float = 5.0) -> list[FakeMessage]:
        with self._accepted:
            self._accepted.wait_for(lambda: len(self._messages) >= count, timeout_s)
            return list(self._messages.values())

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeTwilioServer:
        if self.port == 0:
            self.port = _free_port(self.host)
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="fake-twilio", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError(f"fake Twilio server did not start: {failure[0]}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeTwilioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(self._listen(backlog=1024))
        except OSError as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    async def serve_forever(self) -> None:
        """Serve in the running loop (the standalone entry point)."""
        server = await self._listen(backlog=4096)
        async with server:
            await server.serve_forever()

    async def _listen(self, backlog: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: _HttpConnection(self), self.host, self.port, backlog=backlog
        )

    # -- HTTP -----------------------------------------------------------------------------

    def _prepare(self, request: _Request) -> tuple[re.Match[str] | None, ScriptedAnswer | None]:
        """Route and authenticate, then take the script: a rejected request uses none of it."""
        try:
            match = self._authorised_match(request)
        except _HttpError:
            return None, None
        return match, self._take_script(request.method)

    def _answer(
        self, request: _Request, match: re.Match[str] | None, answer: ScriptedAnswer | None
    ) -> tuple[int, dict[str, Any]]:
        try:
            if match is None:
                self._authorised_match(request)  # raises the 404 or 401
                raise AssertionError("unreachable")
            if answer is not None and answer.status is not None:
                raise _HttpError(answer.status, answer.code or answer.status, answer.message)
            return self._route(request, match["sid"])
        except _HttpError as exc:
            return exc.status, _twilio_error(exc.status, exc.code, exc.message)

    def _authorised_match(self, request: _Request) -> re.Match[str]:
        match = _MESSAGES.match(request.path)
        if match is None:
            raise _HttpError(404, 20404, f"The requested resource {request.path} was not found")
        if request.headers.get("authorization") != self._expected_auth:
            raise _HttpError(401, 20003, "Authenticate")
        if match["account"] != self.account_sid:
            raise _HttpError(404, 20404, f"The requested resource {request.path} was not found")
        return match

    def _take_script(self, method: str) -> ScriptedAnswer | None:
        with self._lock:
            self.requests_seen += 1
            if self._script and self._script[0].method in (None, method):
                return self._script.popleft()
            return None

    def _route(self, request: _Request, sid: str | None) -> tuple[int, dict[str, Any]]:
        if request.method == "POST" and sid is None:
            return 201, self._create(request.form)
        if request.method == "GET" and sid is None:
            return 200, self._list(request.path, request.query)
        if request.method == "GET" and sid is not None:
            with self._lock:
                found = self._messages.get(sid)
            if found is None:
                raise _HttpError(404, 20404, f"The requested resource {request.path} was not found")
            return 200, found.as_json()
        raise _HttpError(405, 20004, "Method not allowed")

    def _create(self, form: dict[str, str]) -> dict[str, Any]:
        to, body = form.get("To", ""), form.get("Body")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        _validate(to, body, sender, service, form)
        if to in self.opted_out:
            raise _HttpError(400, 21610, "Attempt to send to unsubscribed recipient")
        assert body is not None  # _validate
        now = datetime.now(UTC).replace(microsecond=0)
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            # The stand-in hands every message to the "carrier" at once.
            status="sent",
            num_segments=segments(body),
            date_created=now,
            date_sent=now,
            status_callback=form.get("StatusCallback"),
            validity_period=int(form["ValidityPeriod"]) if "ValidityPeriod" in form else None,
            form=dict(form),
        )
        if self.arrivals is not None:
            self.arrivals.append((time.time(), body))
        if self.record:
            with self._accepted:
                self._messages[message.sid] = message
                self._accepted.notify_all()
        # Without a From, Twilio first "accepts" a Messaging Service message, then picks a number.
        return message.as_json(status="queued" if sender else "accepted")

    def _list(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        page_size = _int_param(query, "PageSize", 50, 1, 1000)
        page = _int_param(query, "Page", 0, 0, 1_000_000)
        after = _parse_date_filter(query["DateSent>"]) if "DateSent>" in query else None
        before = _parse_date_filter(query["DateSent<"]) if "DateSent<" in query else None
        with self._lock:
            found = [
                m
                for m in self._messages.values()
                if query.get("To") in (None, m.to)
                and query.get("From") in (None, m.from_)
                and (after is None or (m.date_sent is not None and m.date_sent >= after))
                and (before is None or (m.date_sent is not None and m.date_sent <= before))
            ]
        found.sort(key=lambda m: m.date_created, reverse=True)  # newest first, as Twilio lists
        chunk = found[page * page_size : (page + 1) * page_size]
        has_more = (page + 1) * page_size < len(found)

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**query, 'PageSize': page_size, 'Page': number})}"

        return {
            "messages": [m.as_json() for m in chunk],
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if has_more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": page * page_size,
            "uri": page_uri(page),
        }


def _validate(
    to: str, body: str | None, sender: str | None, service: str | None, form: dict[str, str]
) -> None:
    if not to:
        raise _HttpError(400, 21604, "A 'To' phone number is required.")
    if not _E164.match(to):
        raise _HttpError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not (sender or service):
        raise _HttpError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
    if service is not None and not re.fullmatch(r"MG[0-9a-f]{32}", service):
        raise _HttpError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
    if not body:
        raise _HttpError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        raise _HttpError(400, 21617, "The concatenated message body exceeds the 1600 limit.")
    callback = form.get("StatusCallback")
    if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
        raise _HttpError(400, 21609, f"Invalid StatusCallback url: {callback}")
    validity = form.get("ValidityPeriod")
    if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36000):
        raise _HttpError(400, 20001, f"Invalid ValidityPeriod: {validity}")


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise _HttpError(400, 20001, f"Invalid {name}: {value}")
    return int(value)


class _HttpConnection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, requests answered in order.

    Requests are parsed straight from the receive buffer and answered synchronously; only a
    scripted delay defers an answer (with call_later), holding back later pipelined requests.
    """

    def __init__(self, server: FakeTwilioServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiting = False  # a delayed answer is pending

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.server._connections.add(self)
        self.server.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.waiting:
            self._process()

    def _process(self) -> None:
        while self.transport is not None and not self.waiting:
            try:
                parsed = _parse_request(self.buffer)
            except _HttpError as exc:  # the request cannot be read: answer and hang up
                payload = _twilio_error(exc.status, exc.code, exc.message)
                self.transport.write(_encode_response(exc.status, payload))
                self.transport.close()
                return
            if parsed is None:
                return
            request, consumed = parsed
            del self.buffer[:consumed]
            match, answer = self.server._prepare(request)
            delay_s = answer.delay_s if answer is not None else 0.0
            delay_s = max(delay_s, self.server.latency_s)
            if delay_s > 0:
                self.waiting = True
                loop = asyncio.get_running_loop()
                loop.call_later(delay_s, self._delayed, request, match, answer)
                return
            self._finish(request, match, answer)

    def _delayed(
        self, request: _Request, match: re.Match[str] | None, answer: ScriptedAnswer | None
    ) -> None:
        self.waiting = False
        if self.transport is None:
            # The client gave up and closed; Twilio would still go on and send the message.
            self.server._answer(request, match, answer)
            return
        self._finish(request, match, answer)
        self._process()

    def _finish(
        self, request: _Request, match: re.Match[str] | None, answer: ScriptedAnswer | None
    ) -> None:
        assert self.transport is not None
        status, payload = self.server._answer(request, match, answer)
        if answer is not None and answer.drop_connection:
            self.transport.abort()
            return
        extra = (
            {}
            if answer is None or answer.retry_after is None
            else {"Retry-After": answer.retry_after}
        )
        self.transport.write(_encode_response(status, payload, request.keep_alive, extra))
        if not request.keep_alive:
            self.transport.close()


def _parse_request(buffer: bytearray) -> tuple[_Request, int] | None:
    """(request, bytes used) when the buffer holds a whole request; None when not yet."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > 65536:
            raise _HttpError(431, 20001, "Request header too large")
        return None
    lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise _HttpError(400, 20001, "Malformed request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body_start = head_end + 4
    parsed_body = _parse_body(buffer, body_start, headers)
    if parsed_body is None:
        return None
    body, end = parsed_body
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
    path, _, query = target.partition("?")
    form = _form(body.decode("utf-8", errors="replace")) if method == "POST" else {}
    return _Request(method, path, _form(query), headers, form, keep_alive), end


def _parse_body(buffer: bytearray, start: int, headers: dict[str, str]) -> tuple[bytes, int] | None:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        position = start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            try:
                size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            except ValueError as exc:
                raise _HttpError(400, 20001, "Malformed chunked body") from exc
            chunk_start = line_end + 2
            if len(buffer) < chunk_start + size + 2:
                return None
            if size == 0:
                return b"".join(chunks), chunk_start + 2
            chunks.append(bytes(buffer[chunk_start : chunk_start + size]))
            position = chunk_start + size + 2
    length_text = headers.get("content-length", "0") or "0"
    if not length_text.isdigit():
        raise _HttpError(400, 20001, "Bad Content-Length")
    length = int(length_text)
    if length > MAX_REQUEST_BYTES:
        raise _HttpError(413, 20001, "Request too large")
    if len(buffer) < start + length:
        return None
    return bytes(buffer[start : start + length]), start + length


def _form(encoded: str) -> dict[str, str]:
    """application/x-www-form-urlencoded, first value of each name (as Twilio reads it)."""
    form: dict[str, str] = {}
    if not encoded:
        return form
    for pair in encoded.split("&"):
        name, _, value = pair.partition("=")
        if name:
            form.setdefault(unquote_plus(name), unquote_plus(value))
    return form


def _encode_response(
    status: int,
    payload: dict[str, Any],
    keep_alive: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    body = json.dumps(payload).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'ERROR')}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n"
        f"Twilio-Request-Id: RQ{secrets.token_hex(16)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, with uvicorn[standard]): the server is then rarely the
    bottleneck of a benchmark."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument(
        "--no-record", action="store_true", help="do not keep accepted messages in memory"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="answer every request this late, like a real provider across the internet",
    )
    parser.add_argument(
        "--arrivals", help="on exit, write '<unix time>\\t<body>' per accepted message here"
    )
    args = parser.parse_args(argv)
    server = FakeTwilioServer(
        args.account_sid,
        args.auth_token,
        host=args.host,
        port=args.port,
        record=not args.no_record,
        note_arrivals=args.arrivals is not None,
        latency_s=args.latency_ms / 1000,
    )
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(server.serve_forever())
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    print(f"fake Twilio listening on {server.base_url} (account {args.account_sid})", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()
    if args.arrivals is not None and server.arrivals is not None:
        with open(args.arrivals, "w", encoding="utf-8") as out:
            out.writelines(f"{at:.6f}\t{body}\n" for at, body in server.arrivals)


def fake_twilio_server() -> Iterator[FakeTwilioServer]:
    """A fresh server per test. In a conftest: `fake_twilio = pytest.fixture(fake_twilio_server)`
    (kept free of pytest here, so the standalone server starts without it)."""
    with FakeTwilioServer() as server:
        yield server


if __name__ == "__main__":
    _main()
