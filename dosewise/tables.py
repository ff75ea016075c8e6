"""Plain-text renderings for the terminal."""

from __future__ import annotations

import textwrap
from collections import Counter

from planner.plan import DayPlan
from schemas.regimen import Regimen


def render_plan(plan: DayPlan, regimen: Regimen, width: int = 100) -> str:
    person = regimen.person
    lines = [
        f"Dose plan for {person.name}, {plan.date:%A %d %B %Y} ({plan.timezone})",
        f"Awake {person.waking.start:%H:%M}-{person.waking.end:%H:%M}; "
        + (
            "meals: " + ", ".join(f"{meal.name} {meal.at:%H:%M}" for meal in regimen.meals)
            if regimen.meals
            else "no meals given"
        ),
        "",
    ]
    clocks = _clocks(plan)
    wide = max((len(clock) for clock in clocks), default=5) + 1
    lines += [
        f"{'time':<{wide}} {'take':<40} why",
        f"{'-' * (wide - 1):<{wide}} {'-' * 39:<40} {'-' * 30}",
    ]
    for slot, slot_clock in zip(plan.slots, clocks, strict=True):
        take = " + ".join(f"{item.name} {item.dose}" for item in slot.items)
        reasons = [textwrap.wrap(reason, width - 48) or [""] for reason in slot.why]
        flat = [line for wrapped in reasons for line in wrapped]
        first, *rest = flat or [""]
        for index, take_line in enumerate(textwrap.wrap(take, 40) or [""]):
            why_line = first if index == 0 else (rest.pop(0) if rest else "")
            clock = slot_clock if index == 0 else ""
            lines.append(f"{clock:<{wide}} {take_line:<40} {why_line}")
        lines += [f"{'':<{wide}} {'':<40} {line}" for line in rest]
    if plan.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  ! {line}" for warning in plan.warnings for line in _wrap(warning, width)]
    return "\n".join(lines)


def _clocks(plan: DayPlan) -> list[str]:
    """Each slot's local time; where the clocks go back and two slots read the same time,
    with the zone's abbreviation too (01:00 EDT, then 01:00 EST)."""
    times = [f"{slot.at:%H:%M}" for slot in plan.slots]
    twice = {time for time, count in Counter(times).items() if count > 1}
    return [
        f"{time} {slot.at:%Z}" if time in twice else time
        for time, slot in zip(times, plan.slots, strict=True)
    ]


def _wrap(text: str, width: int) -> list[str]:
    wrapped = textwrap.wrap(text, width - 4)
    return [wrapped[0], *(f"  {line}" for line in wrapped[1:])] if wrapped else []
