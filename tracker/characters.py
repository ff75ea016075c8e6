"""Characters no route can take: a NUL, or bytes that are not UTF-8, in a query string or a
form, are a 400 naming the parameter (FastAPI's JSON `detail`), before any route runs.

PostgreSQL text cannot hold a NUL, and a query parameter's invalid UTF-8 would otherwise be
read as U+FFFD and looked up as such: both are bad input, never a database outage (503).
Routes that check their own input are left to it: Twilio's two webhooks (which count what
they refuse) and the confirm links people open (which answer with a page, never an error).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"


def unreadable_field(encoded: bytes) -> str | None:
    """What is wrong with an application/x-www-form-urlencoded text (a query string or a
    form), in words naming the field; None when every name and value is UTF-8 without NUL."""
    for pair in encoded.split(b"&"):
        if not pair:
            continue
        name_bytes, _, value_bytes = pair.partition(b"=")
        name = _decoded(name_bytes)
        value = _decoded(value_bytes)
        label = name if name is not None and "\x00" not in name else "a parameter's name"
        if name is None or value is None:
            return f"{label} is not UTF-8 text"
        if "\x00" in name or "\x00" in value:
            return f"{label} holds a NUL character"
    return None


def _decoded(raw: bytes) -> str | None:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


class ReadableCharacters:
    """ASGI: 400 for a query string, or a urlencoded form body, that unreadable_field faults;
    paths starting with one of `own_checks` are left to their routes."""

    def __init__(self, app: ASGIApp, own_checks: Collection[str] = ()) -> None:
        self.app = app
        self.own_checks = tuple(own_checks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.own_checks):
            await self.app(scope, receive, send)
            return
        problem = unreadable_field(scope.get("query_string", b""))
        if problem is not None:
            await _bad_request(send, problem)
            return
        if not _is_form(scope):
            await self.app(scope, receive, send)
            return
        first = await receive()
        # the body arrives whole here: tracker.limits.BodySizeLimit read it first
        if first["type"] == "http.request":
            problem = unreadable_field(first.get("body", b""))
            if problem is not None:
                await _bad_request(send, problem)
                return
        await self.app(scope, _again(first, receive), send)


def _is_form(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == FORM_CONTENT_TYPE)
    return False


def _again(first: Message, receive: Receive) -> Receive:
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return first

    return replay


async def _bad_request(send: Send, problem: str) -> None:
    text = json.dumps({"detail": problem}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(text)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
