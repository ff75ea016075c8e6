"""Checks on a whole day's regimen: daily limits, confirmed deficiencies, poor forms.

They produce warnings, or a refusal where the rule says refuse; they never change a dose.
"""

from __future__ import annotations

from decimal import Decimal

from planner.plan import PlanRefused
from planner.rules import COLD_COURSE, RULES, DailyLimit, RuleTable
from schemas.languages import DEFAULT_LANGUAGE, display_name
from schemas.regimen import Regimen, SupplementEntry


def regimen_warnings(regimen: Regimen, table: RuleTable = RULES) -> list[str]:
    """Every warning the regimen earns; raises PlanRefused for a refusing limit."""
    supplements = regimen.supplements
    warnings = [*_limit_warnings(regimen, table), *_deficiency_warnings(supplements, table)]
    warnings += _form_warnings(supplements, table)
    warnings += _pairing_warnings(supplements, table)
    warnings += [
        f"{entry.name}: no timing rules are known for it; it is planned on its own merits"
        for entry in supplements
        if entry.identity.canonical is None
    ]
    warnings += _meal_content_warnings(regimen, table)
    warnings += _repeat_floor_warnings(regimen, table)
    check_course_length(regimen, table)
    return warnings


def check_course_length(regimen: Regimen, table: RuleTable = RULES) -> None:
    """PlanRefused for a cold course longer than the table allows: said when the regimen is
    planned, not first on the day someone texts COLD."""
    days, rule = regimen.policy.cold_course_days, table.cold_course
    if days > rule.max_days:
        raise PlanRefused(
            f"a cold course of {days} days (policy cold_course_days) is longer than "
            f"{rule.max_days}: high zinc is for brief periods only",
            (rule.id, "zinc-upper-limit"),
        )


def meal_contents_known(table: RuleTable = RULES) -> frozenset[str]:
    """What a meal may contain that some timing rule keeps a day's dose away from: exactly the
    contents the day planner acts on (a meal's content is only ever what a dose keeps from,
    never a rule's subject; the cold course keeps its lozenges from doses, not meals)."""
    return frozenset().union(*(rule.others for rule in table.apart if rule.subject != COLD_COURSE))


def _meal_content_warnings(regimen: Regimen, table: RuleTable) -> list[str]:
    # a misspelt "diary" would otherwise put iron right beside the dairy it names
    known = meal_contents_known(table)
    return [
        f"meal {meal.name}: {content!r} is not a content the timing rules know "
        f"({', '.join(sorted(tag.replace('_', ' ') for tag in known))}), so nothing is kept "
        "away from it"
        for meal in regimen.meals
        for content in meal.contains
        if content not in known
    ]


def _repeat_floor_warnings(regimen: Regimen, table: RuleTable) -> list[str]:
    rule = table.repeat
    if not rule.policy or getattr(regimen.policy, rule.policy) >= rule.floor_hours:
        return []
    keys = [entry.key for entry in regimen.supplements]
    if len(set(keys)) == len(keys):
        return []  # no supplement is taken twice: the gap changes nothing
    asked = getattr(regimen.policy, rule.policy)
    return [
        f"policy {rule.policy} {asked:g} is below {rule.floor_hours:g} h: two doses of one "
        f"supplement are still planned at least {rule.floor_hours:g} h apart [{rule.label}]"
    ]


def daily_totals(supplements: list[SupplementEntry], unit: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for entry in supplements:
        milligrams = entry.dose.milligrams
        if milligrams is None:
            continue
        amount = milligrams * 1000 if unit == "µg" else milligrams
        totals[entry.key] = totals.get(entry.key, Decimal(0)) + amount
    return totals


def limit_of(rule: DailyLimit, regimen: Regimen) -> Decimal:
    if rule.policy is None:
        return rule.limit
    return Decimal(str(getattr(regimen.policy, rule.policy)))


def _limit_warnings(regimen: Regimen, table: RuleTable) -> list[str]:
    warnings: list[str] = []
    for rule in table.limits:
        entries = [entry for entry in regimen.supplements if entry.key == rule.subject]
        if not entries:
            continue
        warnings += [
            f"{entry.name} {entry.dose}: given in IU, so it cannot be checked against "
            f"{rule.id} ({rule.text})"
            for entry in entries
            if entry.dose.milligrams is None
        ]
        total = daily_totals(entries, rule.unit).get(rule.subject, Decimal(0))
        limit = limit_of(rule, regimen)
        if total <= limit:
            continue
        if rule.waived_by_deficiency and all(entry.deficiency_confirmed for entry in entries):
            continue
        message = (
            f"{_shown(rule.subject)} {_number(total)} {rule.unit}/day is above {_number(limit)} "
            f"{rule.unit}/day: {rule.text} [{rule.label}]"
        )
        if rule.action == "refuse":
            raise PlanRefused(message, (rule.id,))
        warnings.append(message)
    return warnings


def _deficiency_warnings(supplements: list[SupplementEntry], table: RuleTable) -> list[str]:
    return [
        f"{entry.name}: {rule.text}; set deficiency_confirmed: true once a physician has "
        f"found one [{rule.label}]"
        for rule in table.needs_deficiency
        for entry in supplements
        if entry.key == rule.subject and not entry.deficiency_confirmed
    ]


def _form_warnings(supplements: list[SupplementEntry], table: RuleTable) -> list[str]:
    return [
        f"{entry.name}: {rule.text} [{rule.label}]"
        for rule in table.poor_forms
        for entry in supplements
        if entry.key == rule.subject and (entry.identity.form or "").startswith(rule.form)
    ]


def _pairing_warnings(supplements: list[SupplementEntry], table: RuleTable) -> list[str]:
    keys = [entry.key for entry in supplements]
    return [
        f"{_shown(rule.subject)} without {_shown(rule.partner)}: {rule.text} [{rule.label}]"
        for rule in table.together
        if keys.count(rule.subject) > keys.count(rule.partner)
    ]


def _shown(key: str) -> str:
    """A supplement as the plan's English texts name it ("vitamin C", not "vitamin_c")."""
    return display_name(key, DEFAULT_LANGUAGE)


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")
