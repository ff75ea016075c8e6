"""The admin routes' bearer token: `Authorization: Bearer $DOSEWISE_ADMIN_TOKEN`.

Without a configured token every admin request is refused: an unset variable must never mean
an open dashboard.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def require_admin(admin_token: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency: `dependencies=[Depends(require_admin(settings.admin_token))]`."""

    def check(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if not admin_token or scheme.lower() != "bearer" or not presented:
            raise HTTPException(401, "admin routes need Authorization: Bearer", UNAUTHORIZED)
        # constant time, so the token cannot be guessed a character at a time
        if not hmac.compare_digest(presented.strip().encode(), admin_token.encode()):
            raise HTTPException(401, "wrong admin token", UNAUTHORIZED)

    return check
