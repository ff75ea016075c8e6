"""Iron timing: did a dose taken keep the real gap of the iron Apart rule? Pure."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from planner.day import Reference, day_references, neighbour_references
from planner.rules import RULES, Apart
from planner.timeline import instant_of
from schemas.regimen import Regimen

IRON = "iron"
CALCIUM = "calcium"


def iron_rule() -> Apart:
    """The stated rule keeping iron from dairy, calcium and medicines (its numbers are read
    from the rule table, not repeated here)."""
    return next(
        rule
        for rule in RULES.apart
        if rule.subject == IRON and "dairy" in rule.others and rule.policy is None
    )


class IronGaps:
    """Checks iron confirmations against the planned meals, medicines and calcium doses.

    As the planner does, a dose keeps its gap across midnight: it is judged against the
    references of its own day and of the day before and the day after (their meals, medicines
    and fixed-time doses; the same day's doses are the `calcium_doses` given). The instants come
    from the regimen version that planned the dose; they are computed once per (routine, day),
    a routine being the zone, meals, medicines and fixed-time calcium doses, so people who
    share a routine share the work.
    """

    def __init__(self) -> None:
        self.rule = iron_rule()
        self._gap = timedelta(hours=self.rule.min_hours)
        self._routines: dict[int, tuple[str, Regimen, ZoneInfo]] = {}
        self._references: dict[tuple[str, date], tuple[datetime, ...]] = {}
        self._neighbours: dict[tuple[str, date], tuple[datetime, ...]] = {}
        self._around: dict[tuple[str, date], tuple[datetime, ...]] = {}

    def add_regimen(self, regimen_id: int, regimen: Regimen) -> None:
        fixed = sorted(
            (entry.key, entry.at.isoformat())
            for entry in regimen.supplements
            if entry.at is not None and entry.key in self.rule.others
        )
        routine = json.dumps(
            [
                regimen.person.timezone,
                regimen.model_dump(mode="json", include={"meals", "medications"}),
                fixed,
            ],
            sort_keys=True,
        )
        self._routines[regimen_id] = (routine, regimen, ZoneInfo(regimen.person.timezone))

    def references(self, regimen_id: int | None, day: date) -> tuple[datetime, ...]:
        """The instants (UTC) of `day` that a dose of the same day keeps iron from."""
        return self._cached(self._references, regimen_id, day, day_references)

    def neighbour_references(self, regimen_id: int | None, day: date) -> tuple[datetime, ...]:
        """The instants (UTC) of `day` that a dose of the day before or after keeps iron from:
        its fixed-time calcium doses too (their reminders are not among the dose's day's)."""
        return self._cached(self._neighbours, regimen_id, day, neighbour_references)

    def references_around(self, regimen_id: int | None, day: date) -> tuple[datetime, ...]:
        """What an iron dose of `day` keeps its gap from: the day's references and those of
        the day before and the day after, in time order."""
        known = self._routines.get(regimen_id) if regimen_id is not None else None
        if known is None:
            return ()
        key = (known[0], day)
        cached = self._around.get(key)
        if cached is None:
            cached = tuple(
                sorted(
                    (
                        *self.neighbour_references(regimen_id, day - timedelta(days=1)),
                        *self.references(regimen_id, day),
                        *self.neighbour_references(regimen_id, day + timedelta(days=1)),
                    )
                )
            )
            self._around[key] = cached
        return cached

    def kept(
        self,
        regimen_id: int | None,
        day: date,
        taken_at: datetime,
        calcium_doses: Iterable[datetime] = (),
    ) -> bool:
        """True when `taken_at` is at least the rule's gap from everything it keeps iron from:
        the references around `day` (the dose's local day) and the `calcium_doses` given."""
        gap = self._gap
        # a dose is confirmed within its reminder's window, hours after it was due on `day`:
        # whatever lies within the gap of it is on `day` or the day before or after
        references = self.references_around(regimen_id, day)
        # the first reference after taken_at - gap is the only one that may lie within the gap
        after = bisect_right(references, taken_at - gap)
        if after < len(references) and references[after] < taken_at + gap:
            return False
        # most days have no calcium dose: no generator for them
        return not calcium_doses or all(abs(taken_at - other) >= gap for other in calcium_doses)

    def _cached(
        self,
        cache: dict[tuple[str, date], tuple[datetime, ...]],
        regimen_id: int | None,
        day: date,
        of_day: Callable[[Regimen, date, ZoneInfo], list[Reference]],
    ) -> tuple[datetime, ...]:
        """The instants (UTC) of the day's references `of_day` finds that iron keeps from."""
        known = self._routines.get(regimen_id) if regimen_id is not None else None
        if known is None:
            return ()
        routine, regimen, zone = known
        cached = cache.get((routine, day))
        if cached is None:
            cached = tuple(
                instant_of(reference.minute, zone).astimezone(UTC)
                for reference in of_day(regimen, day, zone)
                if reference.tags & self.rule.others
            )
            cache[(routine, day)] = cached
        return cached
