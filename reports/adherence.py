"""The adherence report as values: what the store computes and every format renders.

Definitions (the same for the command line, the JSON/CSV API and the dashboard):
- a *dose* is a dose reminder (kind `dose`) that was not cancelled, on a local date of the
  window; days the person was opted out at any moment are left out of every dose measure;
- *taken on time*: confirmed taken within 30 minutes of the due instant; *taken late*: after;
- *sent*: its first message (`initial`, or its e-mail fallback) reached `sent` or `delivered`;
- *open*: not answered yet (planned, queued or sent); *expired*: could not be sent in its window;
- *adherence* = taken / planned (None when nothing was planned);
- *streak*: consecutive days (among the days with doses, open days left out) on which every
  dose was taken; the current streak ends at the latest such day;
- *iron timing*: of the iron doses taken, how many kept the real gap of the iron Apart rule from
  that day's planned dairy/calcium meals, calcium doses and medicines, at the confirmation time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

ON_TIME_MINUTES = 30
# the longest window one report covers (about ten years, local dates, both ends counted):
# the rollup query has a column per fortnight of the window, and the databases cap columns
# (SQLite at 2000, PostgreSQL at 1664), so a much longer window cannot be asked at all
MAX_WINDOW_DAYS = 3660


def check_window_length(start: date, end: date) -> None:
    """ValueError, in one line, for a window over MAX_WINDOW_DAYS local dates."""
    days = (end - start).days + 1  # both ends counted
    if days > MAX_WINDOW_DAYS:
        raise ValueError(
            f"{start} to {end} is {days} days; a report covers at most {MAX_WINDOW_DAYS} days"
        )


@dataclass(frozen=True)
class Counts:
    planned: int = 0
    sent: int = 0
    on_time: int = 0
    late: int = 0
    skipped: int = 0
    missed: int = 0
    expired: int = 0
    open: int = 0

    @property
    def taken(self) -> int:
        return self.on_time + self.late

    @property
    def adherence(self) -> float | None:
        """Taken of those come due: an open reminder (its window still open, or not yet due)
        counts neither way until it closes, so this evening's dose does not lower today."""
        due = self.planned - self.open
        return None if due <= 0 else self.taken / due

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)))

    def as_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(Counts)}
        values["taken"] = self.taken
        values["adherence"] = _ratio(self.adherence)
        return values


@dataclass(frozen=True)
class Deliveries:
    delivered: int = 0
    failed: int = 0
    email_fallback: int = 0

    def __add__(self, other: Deliveries) -> Deliveries:
        return Deliveries(
            self.delivered + other.delivered,
            self.failed + other.failed,
            self.email_fallback + other.email_fallback,
        )


@dataclass(frozen=True)
class ColdCourses:
    started: int = 0
    completed: int = 0
    ended_early: int = 0

    def __add__(self, other: ColdCourses) -> ColdCourses:
        return ColdCourses(
            self.started + other.started,
            self.completed + other.completed,
            self.ended_early + other.ended_early,
        )


@dataclass(frozen=True)
class IronTiming:
    taken: int = 0
    gap_kept: int = 0
    min_hours: float = 3.0

    @property
    def ratio(self) -> float | None:
        return None if self.taken == 0 else self.gap_kept / self.taken

    def __add__(self, other: IronTiming) -> IronTiming:
        return IronTiming(self.taken + other.taken, self.gap_kept + other.gap_kept, self.min_hours)

    def as_dict(self) -> dict[str, Any]:
        return {
            "taken": self.taken,
            "gap_kept": self.gap_kept,
            "min_hours": self.min_hours,
            "ratio": _ratio(self.ratio),
        }


@dataclass(frozen=True)
class Streaks:
    current: int = 0
    longest: int = 0


@dataclass(frozen=True)
class DayLine:
    day: date
    counts: Counts


@dataclass(frozen=True)
class DoseLine:
    """One dose of one person, for the calendar: its local due time and what became of it."""

    day: date
    due_at: datetime
    supplements: tuple[str, ...]
    outcome: str  # on_time | late | skipped | missed | expired | open


@dataclass(frozen=True)
class PersonLine:
    id: int
    name: str
    phone: str
    timezone: str
    counts: Counts = Counts()
    supplements: dict[str, Counts] = field(default_factory=dict)
    streaks: Streaks = Streaks()
    iron_timing: IronTiming = IronTiming()
    cold_courses: ColdCourses = ColdCourses()
    deliveries: Deliveries = Deliveries()
    opted_out_days: int = 0

    def attention_key(self) -> tuple[float, int, int]:
        """Lowest adherence first (nothing planned last), then the most missed."""
        adherence = self.counts.adherence
        return (2.0 if adherence is None else adherence, -self.counts.missed, self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "phone": self.phone,
            "timezone": self.timezone,
            **self.counts.as_dict(),
            "supplements": {name: c.as_dict() for name, c in sorted(self.supplements.items())},
            "streak": {"current": self.streaks.current, "longest": self.streaks.longest},
            "iron_timing": self.iron_timing.as_dict(),
            "cold_courses": _plain(self.cold_courses),
            "deliveries": _plain(self.deliveries),
            "opted_out_days": self.opted_out_days,
        }


@dataclass(frozen=True)
class AdherenceReport:
    start: date
    end: date
    generated_at: datetime
    people: list[PersonLine]
    days: list[DayLine]
    supplements: dict[str, Counts]
    doses: list[DoseLine] = field(default_factory=list)  # one person's report only
    # one person's report only: the local dates left out because they were opted out
    opted_out: list[date] = field(default_factory=list)

    @property
    def totals(self) -> Counts:
        return sum((person.counts for person in self.people), Counts())

    @property
    def iron_timing(self) -> IronTiming:
        return sum((person.iron_timing for person in self.people), IronTiming())

    @property
    def deliveries(self) -> Deliveries:
        return sum((person.deliveries for person in self.people), Deliveries())

    @property
    def cold_courses(self) -> ColdCourses:
        return sum((person.cold_courses for person in self.people), ColdCourses())

    def by_attention(self) -> list[PersonLine]:
        return sorted(self.people, key=PersonLine.attention_key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "totals": self.totals.as_dict(),
            "iron_timing": self.iron_timing.as_dict(),
            "deliveries": _plain(self.deliveries),
            "cold_courses": _plain(self.cold_courses),
            "supplements": {name: c.as_dict() for name, c in sorted(self.supplements.items())},
            "people": [person.as_dict() for person in self.by_attention()],
            "days": [{"day": d.day.isoformat(), **d.counts.as_dict()} for d in self.days],
            "doses": [
                {
                    "day": dose.day.isoformat(),
                    "due_at": dose.due_at.isoformat(),
                    "supplements": list(dose.supplements),
                    "outcome": dose.outcome,
                }
                for dose in self.doses
            ],
            "opted_out_dates": [day.isoformat() for day in self.opted_out],
        }


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _plain(value: Deliveries | ColdCourses) -> dict[str, int]:
    return {f.name: getattr(value, f.name) for f in fields(value)}
