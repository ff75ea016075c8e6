"""The admin routes' bearer token: `Authorization: Bearer $DOSEWISE_ADMIN_TOKEN`.

Without a configured token every admin request is refused: an unset variable must never mean
an open dashboard.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

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
