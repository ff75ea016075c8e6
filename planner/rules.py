"""The rule table: every fact of domain-rules.md as one entry, with its source and kind.

The planner reads this table; it has no per-supplement if-chains of its own. A rule's
numbers marked `policy` are derived defaults that a regimen's `policy:` section may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Kind = Literal["stated", "derived"]

WEYH_2022 = (
    'Weyh et al., "The Role of Minerals in the Optimal Functioning of the Immune System", '
    "Nutrients, 2 Feb 2022"
)
MAGNESIUM_2025 = '"The Role of Magnesium in Supporting a Healthy Immune Response", 2025'

# tags: a dose carries its canonical supplement name; a meal what it contains; a medicine
# carries MEDICATION; a zinc lozenge of a cold course carries COLD_COURSE as well as "zinc".
MEDICATION = "medication"
COLD_COURSE = "cold_course"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: Kind
    text: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.id} ({self.kind})"


@dataclass(frozen=True)
class Together(Rule):
    """Take `subject` in the same slot as `partner`."""

    subject: str = ""
    partner: str = ""


@dataclass(frozen=True)
class Apart(Rule):
    """Keep doses tagged `subject` at least `min_hours` (preferably `preferred_hours`) from
    anything tagged with one of `others`, in real elapsed time."""

    subject: str = ""
    others: frozenset[str] = frozenset()
    min_hours: float = 0.0
    preferred_hours: float = 0.0
    policy: str | None = None  # a Policy field that replaces min_hours


@dataclass(frozen=True)
class RepeatApart(Rule):
    """Two doses of one supplement in a day go into different slots, this far apart; never
    less than `floor_hours` apart, whatever the policy says (two reminders a minute apart are
    one dose taken twice)."""

    min_hours: float = 0.0
    policy: str | None = None
    floor_hours: float = 1.0

    def minutes(self, policy: object) -> int:
        """The gap the planner keeps: the policy's (or the default), at least the floor."""
        hours = getattr(policy, self.policy) if self.policy else self.min_hours
        return round(max(hours, self.floor_hours) * 60)


@dataclass(frozen=True)
class DailyLimit(Rule):
    """A daily total above `limit` is a warning or a refusal."""

    subject: str = ""
    limit: Decimal = Decimal(0)
    unit: Literal["mg", "µg"] = "mg"
    action: Literal["warn", "refuse"] = "warn"
    waived_by_deficiency: bool = False
    policy: str | None = None


@dataclass(frozen=True)
class NeedsDeficiency(Rule):
    """Warn unless a physician confirmed a deficiency (`deficiency_confirmed: true`)."""

    subject: str = ""


@dataclass(frozen=True)
class PoorForm(Rule):
    """Warn on a form of a supplement that is poorly absorbed."""

    subject: str = ""
    form: str = ""


@dataclass(frozen=True)
class ColdCourse(Rule):
    """The zinc course started at the first report of cold symptoms (numbers in Policy)."""

    daily_range_mg: tuple[Decimal, Decimal] = (Decimal(80), Decimal(92))
    max_days: int = 14


@dataclass(frozen=True)
class Window(Rule):
    """Reminders fall in the waking window and never in quiet hours."""


@dataclass(frozen=True)
class RuleTable:
    together: tuple[Together, ...]
    apart: tuple[Apart, ...]
    repeat: RepeatApart
    limits: tuple[DailyLimit, ...]
    needs_deficiency: tuple[NeedsDeficiency, ...]
    poor_forms: tuple[PoorForm, ...]
    cold_course: ColdCourse
    window: Window
    reference_intakes: dict[str, str] = field(default_factory=dict)

    def all(self) -> tuple[Rule, ...]:
        return (
            *self.together,
            *self.apart,
            self.repeat,
            *self.limits,
            *self.needs_deficiency,
            *self.poor_forms,
            self.cold_course,
            self.window,
        )

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.all():
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


RULES = RuleTable(
    together=(
        Together(
            id="iron-with-vitamin-c",
            kind="stated",
            text="take iron together with vitamin C: it raises uptake",
            source=WEYH_2022,
            subject="iron",
            partner="vitamin_c",
        ),
    ),
    apart=(
        Apart(
            id="iron-apart-from-dairy-calcium-medicines",
            kind="stated",
            text="keep iron 3 to 4 h away from dairy, calcium and medicines",
            source=WEYH_2022,
            subject="iron",
            others=frozenset({"dairy", "calcium", MEDICATION}),
            min_hours=3.0,
            preferred_hours=4.0,
        ),
        Apart(
            id="iron-apart-from-black-tea",
            kind="derived",
            text="keep iron away from black tea like dairy (3 h minimum)",
            source=WEYH_2022,
            subject="iron",
            others=frozenset({"black_tea"}),
            min_hours=3.0,
            preferred_hours=4.0,
            policy="black_tea_gap_hours",
        ),
        Apart(
            id="cold-course-zinc-apart-from-iron-copper",
            kind="derived",
            text="during a cold course keep zinc at least 2 h from iron and copper",
            source=WEYH_2022,
            subject=COLD_COURSE,
            others=frozenset({"iron", "copper"}),
            min_hours=2.0,
            preferred_hours=2.0,
            policy="course_zinc_gap_hours",
        ),
    ),
    repeat=RepeatApart(
        id="repeat-doses-apart",
        kind="derived",
        text="two doses of one supplement in a day go into different slots",
        source="dosewise policy",
        min_hours=4.0,
        policy="repeat_gap_hours",
    ),
    limits=(
        DailyLimit(
            id="selenium-upper-limit",
            kind="stated",
            text="safe upper intake of selenium (EFSA): 300 µg/day",
            source=WEYH_2022,
            subject="selenium",
            limit=Decimal(300),
            unit="µg",
            action="refuse",
        ),
        DailyLimit(
            id="zinc-upper-limit",
            kind="stated",
            text="safe upper intake of zinc (EFSA): 25 mg/day outside a brief cold course",
            source=WEYH_2022,
            subject="zinc",
            limit=Decimal(25),
            unit="mg",
            action="warn",
        ),
        DailyLimit(
            id="iron-excess",
            kind="derived",
            text="too much iron is harmful: more than 18 mg/day needs a confirmed deficiency",
            source=WEYH_2022,
            subject="iron",
            limit=Decimal(18),
            unit="mg",
            action="warn",
            waived_by_deficiency=True,
            policy="iron_daily_warn_mg",
        ),
    ),
    needs_deficiency=(
        NeedsDeficiency(
            id="iron-needs-confirmed-deficiency",
            kind="stated",
            text="avoid iron supplements unless a physician has detected a deficiency",
            source=WEYH_2022,
            subject="iron",
        ),
        NeedsDeficiency(
            id="copper-needs-confirmed-deficiency",
            kind="stated",
            text="supplement copper only where a shortage has been detected",
            source=WEYH_2022,
            subject="copper",
        ),
    ),
    poor_forms=(
        PoorForm(
            id="magnesium-oxide-poorly-absorbed",
            kind="stated",
            text="magnesium oxide is poorly absorbed; citrate, glycinate and malate are better",
            source=MAGNESIUM_2025,
            subject="magnesium",
            form="oxide",
        ),
    ),
    cold_course=ColdCourse(
        id="zinc-cold-course",
        kind="stated",
        text=(
            "start zinc at the first sign of a cold: 80 to 92 mg/day, about five days "
            "(default 6 lozenges of 14 mg, one every 2 to 3 h while awake; at most 14 days)"
        ),
        source=WEYH_2022,
    ),
    window=Window(
        id="waking-window",
        kind="derived",
        text="reminders fall inside the waking window and never in quiet hours",
        source="dosewise policy",
    ),
    reference_intakes={
        "iron": "9 mg/day (12 to 18 mg/day for menstruating women)",
        "zinc": "10 mg/day",
        "selenium": "50 to 70 µg/day; about 100 µg/day saturates selenoprotein P",
        "magnesium": "375 mg/day (some experts: up to 500 mg)",
        "copper": "1 mg/day",
    },
)
