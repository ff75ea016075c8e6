"""Read timeouts: a client that sends its request slowly is cut off, not waited for.

Two places, because uvicorn hands a request to the app only once its headers are in:
- HeaderTimeoutProtocol (uvicorn's httptools protocol): from the connection's start, and from
  the first byte of each further request on it, the headers must be complete within
  HEADER_TIMEOUT_S, or the connection is closed (with 408 when nothing was answered on it);
- BodyTimeout (ASGI): the whole body must arrive within BODY_TIMEOUT_S of the request's start,
  or the request is answered 408 and the connection closed.
Twilio sends a webhook of a few hundred bytes at once; a thousand connections dribbling
their bytes then hold the tracker for seconds, not for as long as they like.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\nthe request came in too slowly\r\n"
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers take longer
    than `header_timeout_s` (a class attribute, so uvicorn can build it as it builds its own)."""

    header_timeout_s = HEADER_TIMEOUT_S

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        super().__init__(*arguments, **keywords)
        self._header_timer: asyncio.TimerHandle | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._answered:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


class BodyTimeout:
    """ASGI: the request body in full within `timeout_s` of the request reaching the app, or
    408 and the connection closed. What comes after the body (waiting for a disconnect) is not
    timed."""

    def __init__(self, app: ASGIApp, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.timeout_s
        complete = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise _BodyTooSlow from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def noted_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, noted_send)
        except _BodyTooSlow:
            if not started:
                await _request_timeout(send)


class _BodyTooSlow(Exception):
    pass


async def _request_timeout(send: Send) -> None:
    text = b"the request body came in too slowly\n"
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
