"""Instants given to use cases: aware or refused, so no local wall time leaks into the database."""

from __future__ import annotations

from datetime import datetime


def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"`now` must be timezone-aware, not the naive {now.isoformat()}")
    return now
