"""Iron timing: did a dose taken keep the real gap of the iron Apart rule? Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from planner.day import day_references
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
    """Checks iron confirmations against the day's planned meals, medicines and calcium doses.

    The meal and medicine instants come from the regimen version that planned the dose; they
    are computed once per (meals and medicines, zone, day), so people who share a routine share
    the work.
    """

    def __init__(self) -> None:
        self.rule = iron_rule()
        self._gap = timedelta(hours=self.rule.min_hours)
        self._routines: dict[int, tuple[str, Regimen]] = {}
        self._references: dict[tuple[str, date], tuple[datetime, ...]] = {}

    def add_regimen(self, regimen_id: int, regimen: Regimen) -> None:
        routine = json.dumps(
            [
                regimen.person.timezone,
                regimen.model_dump(mode="json", include={"meals", "medications"}),
            ],
            sort_keys=True,
        )
        self._routines[regimen_id] = (routine, regimen)

    def references(self, regimen_id: int | None, day: date) -> tuple[datetime, ...]:
        known = self._routines.get(regimen_id) if regimen_id is not None else None
        if known is None:
            return ()
        routine, regimen = known
        cached = self._references.get((routine, day))
        if cached is None:
            zone = ZoneInfo(regimen.person.timezone)
            cached = tuple(
                instant_of(reference.minute, zone).astimezone(UTC)
                for reference in day_references(regimen, day, zone)
                if reference.tags & self.rule.others
            )
            self._references[(routine, day)] = cached
        return cached

    def kept(
        self,
        regimen_id: int | None,
        day: date,
        taken_at: datetime,
        calcium_doses: Iterable[datetime] = (),
    ) -> bool:
        """True when `taken_at` is at least the rule's gap from everything it keeps iron from."""
        gap = self._gap
        for other in (*self.references(regimen_id, day), *calcium_doses):
            if abs(taken_at - other) < gap:
                return False
        return True
