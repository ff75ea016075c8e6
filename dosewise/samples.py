"""The demo's three sample people: a regimen each (read like a user's file) and a habit.

The habits are what makes a week of replies look like real life: most doses confirmed on
time, some late, some skipped, some snoozed, some never answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.files import parse_regimen_text
from schemas.regimen import Regimen

ANA = """\
# iron with vitamin C, kept 3-4 h away from two dairy meals and a morning medicine
person:
  name: Ana Jensen
  phone: "+4520123456"
  channel: sms
  timezone: Europe/Copenhagen
  waking: {from: "07:00", to: "22:00"}
meals:
  - {name: breakfast, at: "07:30", contains: [dairy]}
  - {name: lunch, at: "12:00"}
  - {name: dinner, at: "18:30", contains: [dairy]}
medications:
  - {name: levothyroxine, at: "06:45"}
supplements:
  - {name: iron, dose: "18 mg", deficiency_confirmed: true}
  - {name: vitamin C, dose: "250 mg"}
  - {name: magnesium citrate, dose: "300 mg", at: "21:00"}
"""

BEN = """\
# replies COLD one morning and gets a zinc lozenge course
person:
  name: Ben Carter
  phone: "+14155550123"
  channel: sms
  timezone: America/New_York
  waking: {from: "06:30", to: "23:00"}
meals:
  - {name: breakfast, at: "07:00", contains: [dairy]}
  - {name: dinner, at: "19:00"}
supplements:
  - {name: vitamin D, dose: "1000 IU", at: "07:00"}
  - {name: selenium, dose: "100 µg"}
  - {name: magnesium glycinate, dose: "200 mg", at: "22:00"}
"""

CHLOE = """\
# confirms by e-mail link; calcium kept away from her iron
person:
  name: Chloé Martin
  phone: "+33612345678"
  email: chloe@example.com
  channel: email
  timezone: Europe/Paris
  waking: {from: "07:30", to: "23:00"}
meals:
  - {name: breakfast, at: "08:00"}
  - {name: lunch, at: "12:30", contains: [dairy]}
  - {name: dinner, at: "20:00"}
supplements:
  - {name: iron, dose: "14 mg", deficiency_confirmed: true}
  - {name: vitamin C, dose: "200 mg"}
  - {name: calcium, dose: "500 mg"}
"""


@dataclass(frozen=True)
class Habit:
    """How a person answers a reminder; the rest of the probability is no answer at all."""

    on_time: float  # TAKEN within minutes
    late: float  # TAKEN more than half an hour after the reminder
    skip: float
    snooze: float  # LATER, then TAKEN when reminded again (SMS only)
    answers_followup: float  # an unanswered reminder's follow-up gets a (late) TAKEN

    def __post_init__(self) -> None:
        total = self.on_time + self.late + self.skip + self.snooze
        if not 0 <= total <= 1:
            raise ValueError(f"a habit's chances add up to {total}, not at most 1")


@dataclass(frozen=True)
class SamplePerson:
    regimen: Regimen
    habit: Habit
    cold_on_day: int | None = None  # the day (1 = the first) they reply COLD in the morning
    well_on_day: int | None = None  # the day they reply WELL


def sample_people() -> list[SamplePerson]:
    return [
        SamplePerson(
            parse_regimen_text(ANA, "ana.yaml"),
            Habit(on_time=0.75, late=0.1, skip=0.05, snooze=0.05, answers_followup=0.5),
        ),
        SamplePerson(
            parse_regimen_text(BEN, "ben.yaml"),
            Habit(on_time=0.55, late=0.15, skip=0.1, snooze=0.05, answers_followup=0.3),
            cold_on_day=3,
            well_on_day=6,
        ),
        SamplePerson(
            parse_regimen_text(CHLOE, "chloe.yaml"),
            Habit(on_time=0.7, late=0.1, skip=0.1, snooze=0.0, answers_followup=0.5),
        ),
    ]
