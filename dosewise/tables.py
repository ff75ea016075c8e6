"""Plain-text renderings for the terminal."""

from __future__ import annotations

import textwrap

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
        f"{'time':<6} {'take':<40} why",
        f"{'-' * 5:<6} {'-' * 39:<40} {'-' * 30}",
    ]
    for slot in plan.slots:
        take = " + ".join(f"{item.name} {item.dose}" for item in slot.items)
        reasons = [textwrap.wrap(reason, width - 48) or [""] for reason in slot.why]
        flat = [line for wrapped in reasons for line in wrapped]
        first, *rest = flat or [""]
        for index, take_line in enumerate(textwrap.wrap(take, 40) or [""]):
            why_line = first if index == 0 else (rest.pop(0) if rest else "")
            clock = f"{slot.at:%H:%M}" if index == 0 else ""
            lines.append(f"{clock:<6} {take_line:<40} {why_line}")
        lines += [f"{'':<6} {'':<40} {line}" for line in rest]
    if plan.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  ! {line}" for warning in plan.warnings for line in _wrap(warning, width)]
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    wrapped = textwrap.wrap(text, width - 4)
    return [wrapped[0], *(f"  {line}" for line in wrapped[1:])] if wrapped else []
