"""Instants given to use cases: aware or refused, so no local wall time leaks into the database."""

from __future__ import annotations

from datetime import datetime, time, timedelta


def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"`now` must be timezone-aware, not the naive {now.isoformat()}")
    return now


def quiet_end(start: time, end: time, local: datetime) -> datetime | None:
    """The end of the quiet window [start, end) of wall-clock times (across midnight when it
    ends at or before its start) that the local instant `local` falls in; None outside it.
    The notifier's hold and the scheduler's snooze read quiet hours through this one rule."""
    clock = local.time().replace(tzinfo=None)
    if end > start:
        inside = start <= clock < end
        return datetime.combine(local.date(), end, tzinfo=local.tzinfo) if inside else None
    if clock >= start:
        return datetime.combine(local.date() + timedelta(days=1), end, tzinfo=local.tzinfo)
    return datetime.combine(local.date(), end, tzinfo=local.tzinfo) if clock < end else None
