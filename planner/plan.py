"""What the planner produces: a day plan of slots, or a refusal that names its rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class PlannedItem:
    supplement: str  # canonical name, or the written name for a custom item
    dose: str
    name: str  # as the regimen wrote it
    form: str | None = None


@dataclass(frozen=True)
class Slot:
    at: datetime  # aware, in the person's zone
    items: tuple[PlannedItem, ...]
    why: tuple[str, ...]
    rules: tuple[str, ...]  # ids of the rules that placed this slot
    fixed: bool = False  # the regimen set the time
    minimum_gap_only: bool = False  # a preferred gap did not fit; the minimum is kept

    def label(self) -> str:
        return " + ".join(f"{item.name} {item.dose}" for item in self.items)


@dataclass(frozen=True)
class DayPlan:
    date: date
    timezone: str
    slots: tuple[Slot, ...]
    warnings: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The contract's JSON form of `dosewise plan --format json`."""
        return {
            "date": self.date.isoformat(),
            "timezone": self.timezone,
            "slots": [
                {
                    "at": slot.at.isoformat(),
                    "items": [
                        {
                            "supplement": item.supplement,
                            "dose": item.dose,
                            "name": item.name,
                            **({"form": item.form} if item.form else {}),
                        }
                        for item in slot.items
                    ],
                    "why": list(slot.why),
                    "rules": list(slot.rules),
                    "fixed": slot.fixed,
                }
                for slot in self.slots
            ],
            "warnings": list(self.warnings),
        }


class PlanRefused(Exception):
    """No placement satisfies every rule (or a rule refuses the regimen outright)."""

    def __init__(self, reason: str, conflicts: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conflicts = conflicts

    def __str__(self) -> str:
        return f"{self.reason} [rules: {', '.join(self.conflicts)}]"
