"""The admin routes' bearer token: `Authorization: Bearer $DOSEWISE_ADMIN_TOKEN`.

Without a configured token every admin request is refused: an unset variable must never mean
an open dashboard.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def presented_bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header, or None without one."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return presented.strip() if scheme.lower() == "bearer" and presented else None


def is_admin_token(presented: str, admin_token: str) -> bool:
    # constant time, so the token cannot be guessed a character at a time
    return hmac.compare_digest(presented.encode(), admin_token.encode())


def require_admin(admin_token: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency: `dependencies=[Depends(require_admin(settings.admin_token))]`."""

    def check(request: Request) -> None:
        presented = presented_bearer(request)
        if not admin_token or presented is None:
            raise HTTPException(401, "admin routes need Authorization: Bearer", UNAUTHORIZED)
        if not is_admin_token(presented, admin_token):
            raise HTTPException(401, "wrong admin token", UNAUTHORIZED)

    return check


def _origin(url: str) -> str | None:
    """scheme://host[:port] of a URL, lower-case; None for one without both."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if ":" in host:
        host = f"[{host}]"
    suffix = "" if port is None or port == default else f":{port}"
    return f"{parts.scheme.lower()}://{host}{suffix}"


def same_origin(request: Request, public_url: str) -> bool:
    """Whether a state-changing request comes from a page of this site: its Origin (or, when
    a browser sent none, its Referer) is DOSEWISE_PUBLIC_URL's origin or the request's own.
    A request with neither header is not a browser's (browsers send Origin on every POST)
    and passes; the session's CSRF token still has to match."""
    own = {
        _origin(public_url),
        _origin(f"{request.url.scheme}://{request.headers.get('host', '')}"),
    }
    own.discard(None)
    origin = request.headers.get("origin")
    if origin is not None:
        return _origin(origin) in own
    referer = request.headers.get("referer")
    if referer is not None:
        return _origin(referer) in own
    return True
