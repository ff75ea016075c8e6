"""Security headers on the pages people and the admin open (`/confirm/...`, `/admin/...`).

Each gets a Content-Security-Policy that allows only what the page uses (its one inline
stylesheet, by hash; no script anywhere; forms posting to this site), is never framed
(frame-ancestors 'none', X-Frame-Options DENY) and is not content-sniffed. A confirm page
sends no Referer (its address is its secret); the admin's pages send it to this site only,
since with no-referrer a browser's form POST says `Origin: null`, which the cross-site check
(tracker.auth.same_origin) has to refuse. The webhooks, health and metrics are not pages
and pass untouched.
"""

from __future__ import annotations

import base64
import hashlib

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reports.render import STYLE as ADMIN_STYLE
from tracker.pages import CONTENT_SECURITY_POLICY as CONFIRM_POLICY


def style_hash(style: str) -> str:
    """The CSP source allowing one inline <style> element whose content is `style`."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


ADMIN_POLICY = (
    f"default-src 'none'; style-src 'self' {style_hash(ADMIN_STYLE)}; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
COMMON = {"x-frame-options": "DENY", "x-content-type-options": "nosniff"}
# path prefix: (Content-Security-Policy, Referrer-Policy)
POLICIES = {
    "/confirm": (CONFIRM_POLICY, "no-referrer"),
    "/admin": (ADMIN_POLICY, "same-origin"),
}


class SecurityHeaders:
    """ASGI middleware: the headers above on every response under the paths of POLICIES,
    errors and refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policies = _policies(scope)
        if policies is None:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"], headers["referrer-policy"] = policies
                for name, value in COMMON.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def _policies(scope: Scope) -> tuple[str, str] | None:
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    for prefix, policies in POLICIES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return policies
    return None
