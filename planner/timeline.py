"""Instants as whole minutes since the Unix epoch (UTC), and sets of them as intervals.

Gaps between doses are real elapsed time, so the planner works on UTC minutes and turns
wall-clock times into them here, once, with the clock changes of the person's zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Interval = tuple[int, int]  # closed: [start, end] in epoch minutes

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def minute_of(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("a timezone-naive datetime is not an instant")
    return int((instant - _EPOCH).total_seconds() // 60)


def instant_of(minute: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(minutes=minute)).astimezone(zone)


@lru_cache(maxsize=65536)  # the same people's days are planned again and again
def wall_minute(day: date, clock: time, zone: ZoneInfo) -> tuple[int, bool]:
    """The instant a wall-clock time names on `day`, and whether the clock skipped it.

    A time the clocks skip (spring forward) moves to the first valid instant after the gap;
    a time that happens twice (fall back) means its first occurrence.
    """
    local = datetime.combine(day, clock, tzinfo=zone)
    after_gap = minute_of(local)  # fold=0 reads a skipped time with the old offset: past the gap
    if instant_of(after_gap, zone).time() == clock:
        return after_gap, False
    before_gap = minute_of(local.replace(fold=1))
    offset_before = instant_of(before_gap, zone).utcoffset()
    low, high = before_gap, after_gap
    while high - low > 1:  # the transition: first minute with the new offset
        middle = (low + high) // 2
        if instant_of(middle, zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return high, True


def day_bounds(day: date, zone: ZoneInfo) -> Interval:
    start, _ = wall_minute(day, time(0, 0), zone)
    end, _ = wall_minute(day + timedelta(days=1), time(0, 0), zone)
    return start, end - 1


def offset_stretches(day: date, zone: ZoneInfo) -> list[tuple[int, int, int]]:
    """The local day as [start, end) stretches of one UTC offset: (start, end, offset minutes).

    One stretch on most days, two on a day the clocks change.
    """
    start, last = day_bounds(day, zone)
    first_offset, last_offset = _offset_minutes(start, zone), _offset_minutes(last, zone)
    if first_offset == last_offset:
        return [(start, last + 1, first_offset)]
    low, high = start, last
    while high - low > 1:  # the transition: first minute with the new offset
        middle = (low + high) // 2
        if _offset_minutes(middle, zone) == first_offset:
            low = middle
        else:
            high = middle
    return [(start, high, first_offset), (high, last + 1, last_offset)]


def _offset_minutes(minute: int, zone: ZoneInfo) -> int:
    offset = instant_of(minute, zone).utcoffset()
    assert offset is not None  # instant_of gives an aware datetime
    return int(offset.total_seconds() // 60)


def wall_spans(day: date, begin: int, finish: int, zone: ZoneInfo) -> list[Interval]:
    """Every instant of `day` whose wall-clock time is in [begin, finish) minutes after local
    midnight, as closed intervals of epoch minutes.

    On a day the clocks fall back the repeated wall times belong to the span twice; on a day
    they spring forward the skipped ones not at all.
    """
    midnight = (day - _EPOCH.date()).days * 24 * 60  # local midnight read as if it were UTC
    spans: list[Interval] = []
    for low, high, offset in offset_stretches(day, zone):
        first = max(low, midnight + begin - offset)
        last = min(high, midnight + finish - offset) - 1
        if first <= last:
            spans.append((first, last))
    return spans


def subtract(intervals: list[Interval], low: int, high: int) -> list[Interval]:
    """Remove the open interval (low, high): points exactly at low or high stay."""
    if high - low < 2:
        return intervals
    result: list[Interval] = []
    for start, end in intervals:
        if end <= low or start >= high:
            result.append((start, end))
            continue
        if start <= low:
            result.append((start, low))
        if end >= high:
            result.append((high, end))
    return result


def contains(intervals: list[Interval], minute: int) -> bool:
    return any(start <= minute <= end for start, end in intervals)


def first_at_or_after(intervals: list[Interval], minute: int) -> int | None:
    for start, end in intervals:
        if end >= minute:
            return max(start, minute)
    return None


def duration_text(minutes: int) -> str:
    hours, rest = divmod(abs(minutes), 60)
    if rest == 0:
        return f"{hours} h"
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"
