"""The dashboard's sign-in: server-side sessions, limited sign-in attempts, the admin audit log.

A session is a random id (the cookie) of which only the SHA-256 hash is stored, with the
fingerprint of the admin token it was made with: it ends at sign-out, after SESSION_IDLE
without a request, SESSION_LIMIT after sign-in whatever happens, and as soon as the admin
token changes (its fingerprint no longer matches). Every tracker worker reads the same
database, so a session or a lock-out holds across them.

Sign-in attempts: after SIGN_IN_FAILURES wrong tokens from one client address within
SIGN_IN_WINDOW, further attempts are refused (not even checked) until the oldest of them is
that old. The audit log records who (a session's id-hash prefix, "bearer" or the client
address for sign-ins), what (an action and the person it concerned) and when; never health data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.clock import require_aware

SESSION_IDLE = timedelta(hours=12)
SESSION_LIMIT = timedelta(hours=24)
SIGN_IN_FAILURES = 5
SIGN_IN_WINDOW = timedelta(minutes=15)
# a session's last use is written at most this often, not at every page
TOUCH_EVERY = timedelta(minutes=1)
WHO_LENGTH = 12  # the id-hash prefix that names a session in the audit log


@dataclass(frozen=True)
class StoredSession:
    id_hash: str
    token_fingerprint: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class AdminSession:
    """A valid session: `who` names it in the audit log, `csrf` is the token its forms carry."""

    who: str
    csrf: str


@dataclass(frozen=True)
class SignedIn:
    session_id: str  # the cookie's value; never stored
    session: AdminSession


@dataclass(frozen=True)
class Refused:
    """A wrong token (retry_after None) or too many of them (retry after that long)."""

    retry_after: timedelta | None = None


class AdminStore(Protocol):
    """Where sessions, failed sign-ins and the audit log are kept (store.admin_sessions)."""

    def add_session(self, session: StoredSession) -> None: ...

    def session(self, id_hash: str) -> StoredSession | None: ...

    def touch_session(self, id_hash: str, now: datetime) -> None: ...

    def end_session(self, id_hash: str) -> bool: ...

    def failures_since(self, client: str, since: datetime) -> list[datetime]: ...

    def add_failure(self, client: str, at: datetime) -> None: ...

    def audit(self, who: str, action: str, person_id: int | None, at: datetime) -> None: ...

    def forget(self, sessions_before: datetime, failures_before: datetime) -> None: ...


def token_fingerprint(admin_token: str) -> str:
    """Stands for the admin token in a session row; the token cannot be had back from it."""
    return hmac.new(admin_token.encode(), b"dosewise admin session", hashlib.sha256).hexdigest()


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The token a session's forms carry: bound to the session, useless without its cookie."""
    return hmac.new(session_id.encode(), b"dosewise admin csrf", hashlib.sha256).hexdigest()


def _session(session_id: str) -> AdminSession:
    return AdminSession(id_hash(session_id)[:WHO_LENGTH], csrf_token(session_id))


def sign_in(
    store: AdminStore, presented: str, admin_token: str | None, client: str, now: datetime
) -> SignedIn | Refused:
    """A new session for the right token; a wrong one counted against `client`, and a client
    past its limit refused without the token being looked at."""
    require_aware(now)
    store.forget(now - SESSION_LIMIT, now - SIGN_IN_WINDOW)  # what can no longer count
    failures = store.failures_since(client, now - SIGN_IN_WINDOW)
    if len(failures) >= SIGN_IN_FAILURES:
        store.audit(f"client {client}", "sign-in refused: too many attempts", None, now)
        oldest = sorted(failures)[-SIGN_IN_FAILURES]
        return Refused(retry_after=max(oldest + SIGN_IN_WINDOW - now, timedelta(seconds=1)))
    if not admin_token or not hmac.compare_digest(presented.encode(), admin_token.encode()):
        store.add_failure(client, now)
        store.audit(f"client {client}", "sign-in failed", None, now)
        return Refused()
    session_id = secrets.token_urlsafe(32)
    stored = StoredSession(id_hash(session_id), token_fingerprint(admin_token), now, now)
    store.add_session(stored)
    signed_in = SignedIn(session_id, _session(session_id))
    store.audit(signed_in.session.who, "sign-in", None, now)
    return signed_in


def current_session(
    store: AdminStore, session_id: str, admin_token: str | None, now: datetime
) -> AdminSession | None:
    """The session a cookie names, while it is valid: made with the current token, used within
    SESSION_IDLE, younger than SESSION_LIMIT."""
    require_aware(now)
    if not admin_token or not session_id:
        return None
    stored = store.session(id_hash(session_id))
    if stored is None:
        return None
    fresh = hmac.compare_digest(stored.token_fingerprint, token_fingerprint(admin_token))
    if not fresh or now >= stored.last_seen_at + SESSION_IDLE:
        return None
    if now >= stored.created_at + SESSION_LIMIT:
        return None
    if now - stored.last_seen_at >= TOUCH_EVERY:
        store.touch_session(stored.id_hash, now)
    return _session(session_id)


def sign_out(store: AdminStore, session_id: str, now: datetime) -> bool:
    """End the session; False when there was none to end."""
    require_aware(now)
    ended = store.end_session(id_hash(session_id))
    if ended:
        store.audit(id_hash(session_id)[:WHO_LENGTH], "sign-out", None, now)
    return ended


def record_action(
    store: AdminStore, who: str, action: str, person_id: int | None, now: datetime
) -> None:
    """One admin action in the audit log: `action` names what was done, never health data."""
    require_aware(now)
    store.audit(who, action, person_id, now)
