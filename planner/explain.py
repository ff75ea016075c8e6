"""The `why` lines of a slot: which rules placed it there, in words a person reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.rules import Apart, RepeatApart, Rule, RuleTable
from planner.timeline import duration_text, instant_of

if TYPE_CHECKING:
    from planner.day import Day, GapRules, Group, Reference


def explain_slot(
    minute: int,
    members: list[Group],
    references: list[Reference],
    groups: list[Group],
    gaps: GapRules,
    frame: Day,
    table: RuleTable,
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(why lines, rule ids, whether a preferred gap fell back to the minimum)."""
    why: list[str] = []
    rules: list[str] = []
    fallback = False
    for group in members:
        sharing = [other for other in members if other is not group]
        lines, used, fell_back = _explain_group(
            minute, group, sharing, references, groups, gaps, frame, table
        )
        why += lines
        rules += [rule for rule in used if rule not in rules]
        fallback = fallback or fell_back
    rules.append(table.window.id)
    return tuple(why), tuple(rules), fallback


def _explain_group(
    minute: int,
    group: Group,
    sharing: list[Group],
    references: list[Reference],
    groups: list[Group],
    gaps: GapRules,
    frame: Day,
    table: RuleTable,
) -> tuple[list[str], list[str], bool]:
    why: list[str] = []
    used: list[str] = []
    for entry in group.entries:
        if entry.at is not None:
            why.append(f"{entry.name} at {entry.at:%H:%M}: the time the regimen sets")
    for rule in table.together:
        if rule.id in group.rules:
            why.append(f"{group.label} together: {rule.text} [{rule.label}]")
            used.append(rule.id)
    nearest = _nearest_constraints(minute, group, references, groups, gaps)
    fallback = False
    for distance, label, gap_min, gap_pref, rule_ids in nearest:
        relation = "after" if distance > 0 else "before"
        rule_text = _rule_words(rule_ids, table, gaps)
        if abs(distance) < gap_pref:
            fallback = True
            why.append(
                f"{group.label} {duration_text(distance)} {relation} {label}: the preferred "
                f"{duration_text(gap_pref)} does not fit, the minimum {duration_text(gap_min)} "
                f"is kept; {rule_text}"
            )
        else:
            why.append(f"{group.label} {duration_text(distance)} {relation} {label}; {rule_text}")
        used += [rule for rule in rule_ids if rule not in used]
    if not nearest and not any(entry.at for entry in group.entries):
        why.append(_free_placement(minute, group, sharing, frame))
    return why, used, fallback


def _free_placement(minute: int, group: Group, sharing: list[Group], frame: Day) -> str:
    """A group nothing of the day is kept from (the rules may still apply to other days).

    Only what is true of this day is said: no rule keeps it apart from the groups in its
    slot (else they could not share it), and nothing a rule keeps it from is in the day.
    """
    if sharing:
        others = ", ".join(other.label for other in sharing)
        return f"{group.label}: no rule keeps it apart from {others}, so they share one reminder"
    start = instant_of(frame.start, frame.zone)
    place = "at the start of" if minute == frame.start else "as early as it can in"
    return (
        f"{group.label}: nothing in this day's regimen is kept apart from it by a rule; "
        f"placed {place} the waking day (from {start:%H:%M})"
    )


def _nearest_constraints(
    minute: int,
    group: Group,
    references: list[Reference],
    groups: list[Group],
    gaps: GapRules,
) -> list[tuple[int, str, int, int, tuple[str, ...]]]:
    """The closest thing before and the closest after that a rule keeps this group from."""
    targets = [(ref.minute, ref.label, ref.gap_from(gaps, group.tags)) for ref in references]
    targets += [
        (other.fixed or 0, other.label, gaps.between(group.tags, other.tags))
        for other in groups
        if other is not group
    ]
    before = [
        (minute - at, label, gap) for at, label, gap in targets if gap.minimum and at <= minute
    ]
    after = [(minute - at, label, gap) for at, label, gap in targets if gap.minimum and at > minute]
    chosen = [
        *sorted(before, key=lambda item: item[0])[:1],
        *sorted(after, key=lambda item: -item[0])[:1],
    ]
    return [
        (distance, label, gap.minimum, gap.preferred, gap.rules) for distance, label, gap in chosen
    ]


def _rule_words(rule_ids: tuple[str, ...], table: RuleTable, gaps: GapRules) -> str:
    words = []
    for rule_id in rule_ids:
        rule = table.by_id(rule_id)
        words.append(f"{rule.text} [{rule.label}{default_note(rule, gaps.used(rule_id))}]")
    return "; ".join(words)


def default_note(rule: Rule, used: tuple[int, int] | None = None) -> str:
    """How a derived rule's numbers came about: its default, or the regimen's policy when that
    sets another gap (`used`: the minimum and preferred minutes the planner kept)."""
    if rule.kind != "derived":
        return ""
    if not isinstance(rule, Apart | RepeatApart) or not rule.policy:
        return ", a default"
    default = round(rule.min_hours * 60)
    if used is None or used[0] == default:
        return f", a default: policy.{rule.policy}"
    minimum, preferred = used
    asked = duration_text(minimum)
    if preferred != minimum:
        asked += f" (preferably {duration_text(preferred)})"
    return (
        f"; the gap used is {asked}, as this regimen's policy.{rule.policy} sets, "
        f"not the default {duration_text(default)}"
    )
