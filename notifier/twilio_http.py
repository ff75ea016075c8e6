"""A lean asyncio HTTP/1.1 client for the twilio library's async API calls.

The notifier's throughput is bounded by the CPU spent per Twilio request. aiohttp spends
about 100 us of it on every request (request and response objects, payload registry, timers,
tracing hooks); this client does the same exchange in a fraction of that: a pool of
keep-alive connections per origin, the request written as one bytes object, the response
parsed by httptools (llhttp, the parser of Node.js; uvicorn's dependency here), one request
per connection at a time. TLS goes through the standard library's default context, so
certificates are verified as everywhere else.

Failures say whether the request may have reached the server (`HttpExchangeError.request_sent`):
the notifier must not send again what Twilio may already have accepted.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote_plus, urlencode, urlsplit

import httptools
from multidict import CIMultiDict

MAX_RESPONSE_BYTES: Final = 16 << 20  # a Twilio listing page is far smaller
_ROUTES_KEPT: Final = 64
# what quote_plus leaves alone (RFC 3986 unreserved; space becomes '+')
_FORM_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.~ -]")
_FORM_ESCAPES: Final = {chr(c): "+" if c == 32 else f"%{c:02X}" for c in range(128)}


def form_encode(data: Mapping[str, object]) -> str:
    """application/x-www-form-urlencoded, exactly as `urlencode(data, doseq=True)` writes it,
    in a third of the time for the str and int values the twilio library sends."""
    pairs = []
    for name, value in data.items():
        if type(value) is str:
            pairs.append(f"{_quote_plus(name)}={_quote_plus(value)}")
        elif type(value) is int:
            pairs.append(f"{_quote_plus(name)}={value}")
        else:  # lists (repeated names), bytes, booleans...: the standard library decides
            return urlencode(data, doseq=True)
    return "&".join(pairs)


def _quote_plus(text: str) -> str:
    if not text.isascii():
        return quote_plus(text)
    return _FORM_UNSAFE.sub(_escape, text).replace(" ", "+")


def _escape(match: re.Match[str]) -> str:
    return _FORM_ESCAPES[match.group()]


def _check_header_text(method: str, target: str, names: str, values: str) -> None:
    """No request smuggling: a line break (or a space in the request line) would let a
    value start a header or a request of its own."""
    if " " in method or " " in target:
        raise ValueError("the HTTP method and target must not contain spaces")
    for text in (method, target, names, values):
        if "\r" in text or "\n" in text or "\0" in text:
            raise ValueError("HTTP request lines and headers must not contain CR, LF or NUL")


class HttpExchangeError(Exception):
    """An HTTP exchange that failed without a complete response.

    request_sent False: the request never left this process (no connection could be made),
    so the server cannot have acted on it. True: it may have been received and acted on.
    """

    def __init__(self, detail: str, *, request_sent: bool) -> None:
        super().__init__(detail)
        self.request_sent = request_sent


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the on_* methods while parsing."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: asyncio.Future[HttpResponse] | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self.reusable = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._response is None or self._response.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted again
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpExchangeError(f"unreadable HTTP response: {exc}", request_sent=True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._response is None or self._response.done():
            return
        if self._headers_done and not (
            "content-length" in self._headers or "transfer-encoding" in self._headers
        ):
            self.on_message_complete()  # a body delimited by the end of the connection
            return
        reason = f": {exc}" if exc else ""
        self._fail(
            HttpExchangeError(f"connection closed before the answer{reason}", request_sent=True)
        )

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(HttpExchangeError("HTTP response too large", request_sent=True))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._response is None or self._response.done():
            return
        self.reusable = self.transport is not None and self._parser.should_keep_alive()
        status = self._parser.get_status_code()
        self._response.set_result(HttpResponse(status, self._headers, b"".join(self._body)))

    # -- the client's side ----------------------------------------------------------------

    async def exchange(self, request: bytes) -> HttpResponse:
        if self.transport is None or self.transport.is_closing():
            raise HttpExchangeError("connection closed before the request", request_sent=False)
        self._response = asyncio.get_running_loop().create_future()
        self._headers = CIMultiDict()
        self._body = []
        self._size = 0
        self._headers_done = False
        self.reusable = False
        self.transport.write(request)
        return await self._response

    def _fail(self, error: HttpExchangeError) -> None:
        if self._response is not None and not self._response.done():
            self._response.set_exception(error)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _Origin:
    """Idle keep-alive connections to one scheme://host:port."""

    def __init__(
        self, scheme: str, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        self.idle: collections.deque[_Connection] = collections.deque()
        self._ssl = (ssl_context or ssl.create_default_context()) if scheme == "https" else None

    async def connection(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()  # the most recently used is the likeliest still open
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise HttpExchangeError(
                f"cannot connect to {self.host}:{self.port}: {exc}", request_sent=False
            ) from exc
        return connection

    def give_back(self, connection: _Connection) -> None:
        if connection.reusable:
            self.idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class LeanHttpClient:
    """At most `pool_size` requests in flight (and connections open), each within a timeout.

    Made and used inside one event loop (the notifier's). HTTPS verifies certificates with
    `ssl_context`, by default the standard library's default context (the system's CAs).
    """

    def __init__(self, *, pool_size: int = 100, ssl_context: ssl.SSLContext | None = None) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.pool_size = pool_size
        self.ssl_context = ssl_context
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._routes: dict[str, tuple[_Origin, str, str]] = {}
        self._slots: asyncio.Semaphore | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, object] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float,
    ) -> HttpResponse:
        origin, request = self._prepare(method, url, params, body, headers or {})
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool_size)
        written = False
        try:
            async with asyncio.timeout(timeout_s), self._slots:
                connection = await origin.connection()
                written = True
                try:
                    response = await connection.exchange(request)
                except BaseException:
                    connection.close()  # an answer may still come: never reuse it
                    raise
                origin.give_back(connection)
                return response
        except TimeoutError as exc:
            raise HttpExchangeError(
                f"no answer within {timeout_s} s", request_sent=written
            ) from exc

    def _prepare(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None,
        body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[_Origin, bytes]:
        origin, path, query = self._route(url)
        if params:
            query = "&".join(q for q in (query, form_encode(params)) if q)
        target = f"{path}?{query}" if query else path
        _check_header_text(method, target, "".join(headers), "".join(headers.values()))
        lines = [f"{method.upper()} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None or method.upper() in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = "\r\n".join(lines)
        return origin, head.encode("latin-1") + b"\r\n\r\n" + (body or b"")

    def _route(self, url: str) -> tuple[_Origin, str, str]:
        """(origin, path, query) of a URL; remembered, as every send posts to the same one."""
        route = self._routes.get(url)
        if route is not None:
            return route
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = _Origin(parts.scheme, parts.hostname, port, self.ssl_context)
            self._origins[key] = origin
        if len(self._routes) >= _ROUTES_KEPT:  # listing pages each have their own URL
            self._routes.clear()
        route = self._routes[url] = (origin, parts.path or "/", parts.query)
        return route

    async def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()


__all__ = ["HttpExchangeError", "HttpResponse", "LeanHttpClient", "form_encode"]
