"""A seeded history whose adherence numbers are known by construction (Core inserts).

Window: 2026-11-01 .. 2026-11-10, report "now" 2026-11-11 12:00 UTC.

Ana (Europe/Copenhagen; breakfast 07:30 dairy, dinner 18:30 dairy, levothyroxine 06:45), two
dose slots a day: iron + vitamin C at 11:30, magnesium at 21:00.
  day 1-3  both taken on time (iron at 11:35)
  day 4    iron late (12:30), magnesium on time
  day 5    iron on time (11:40), magnesium skipped
  day 6    both missed; the iron SMS failed and fell back to e-mail (delivered), the
           magnesium SMS failed
  day 7    opted out 13:00-20:00: the day is left out (iron taken, magnesium cancelled)
  day 8    iron taken at 16:00 (late, and 2.5 h before the dairy dinner: timing broken),
           magnesium on time
  day 9    both on time, plus a cancelled extra reminder
  day 10   iron on time; magnesium still open (its SMS is `sent`)
  a lozenge of a cold course (onset day 3, ran its five days) taken on day 3
Bo (America/New_York), selenium at 21:30 local (the next UTC day), days 1-8 on time, days 9
and 10 missed; reminders on Oct 31 and Nov 11 lie outside the window; a cold course started
on day 5 and ended early on day 6.
Cy: enrolled, nothing planned.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.engine import Connection, Engine

from schemas.regimen import Regimen
from store.models import (
    ColdCourseRow,
    ConfirmationRow,
    OptOutRow,
    OutgoingMessageRow,
    PersonRow,
    RegimenRow,
    ReminderRow,
)

START = date(2026, 11, 1)
END = date(2026, 11, 10)
NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
CPH = ZoneInfo("Europe/Copenhagen")
NYC = ZoneInfo("America/New_York")
ANA, BO, CY = 1, 2, 3
ANA_PHONE, BO_PHONE, CY_PHONE = "+4520123456", "+12125550100", "+4520999999"

IRON = [
    {"supplement": "iron", "dose": "18 mg", "name": "iron"},
    {"supplement": "vitamin_c", "dose": "250 mg", "name": "vitamin C"},
]
MAGNESIUM = [{"supplement": "magnesium", "dose": "300 mg", "name": "magnesium citrate"}]
SELENIUM = [{"supplement": "selenium", "dose": "100 µg", "name": "selenium"}]

# what the report must say, by construction
EXPECTED: dict[str, Any] = {
    "totals": {
        "planned": 28,
        "sent": 27,
        "on_time": 20,
        "late": 2,
        "taken": 22,
        "skipped": 1,
        "missed": 4,
        "expired": 0,
        "open": 1,
        "adherence": round(22 / 27, 4),  # of those due: the open one not counted
    },
    ANA: {
        "planned": 18,
        "sent": 17,
        "on_time": 12,
        "late": 2,
        "taken": 14,
        "skipped": 1,
        "missed": 2,
        "expired": 0,
        "open": 1,
        "adherence": round(14 / 17, 4),
        "streak": {"current": 2, "longest": 4},
        "iron_timing": {"taken": 8, "gap_kept": 7, "min_hours": 3.0, "ratio": 0.875},
        "cold_courses": {"started": 1, "completed": 1, "ended_early": 0},
        "deliveries": {"delivered": 17, "failed": 2, "email_fallback": 1},
        "opted_out_days": 1,
        "supplements": {
            "iron": {"planned": 9, "sent": 9, "on_time": 6, "late": 2, "missed": 1},
            "vitamin_c": {"planned": 9, "sent": 9, "on_time": 6, "late": 2, "missed": 1},
            "magnesium": {
                "planned": 9,
                "sent": 8,
                "on_time": 6,
                "late": 0,
                "skipped": 1,
                "missed": 1,
                "open": 1,
            },
        },
    },
    BO: {
        "planned": 10,
        "sent": 10,
        "on_time": 8,
        "late": 0,
        "taken": 8,
        "skipped": 0,
        "missed": 2,
        "open": 0,
        "adherence": 0.8,
        "streak": {"current": 0, "longest": 8},
        "iron_timing": {"taken": 0, "gap_kept": 0, "min_hours": 3.0, "ratio": None},
        "cold_courses": {"started": 1, "completed": 0, "ended_early": 1},
        "deliveries": {"delivered": 10, "failed": 0, "email_fallback": 0},
        "opted_out_days": 0,
        "supplements": {"selenium": {"planned": 10, "on_time": 8, "missed": 2}},
    },
    CY: {"planned": 0, "adherence": None},
    # the people, those who need attention first
    "order": [BO, ANA, CY],  # Bo 80%, Ana 82% (14 of 17 due)
    # Ana's day 1 + Bo's day 1; Ana's day 7 is left out
    "days": {
        "2026-11-01": {"planned": 3, "on_time": 3},
        "2026-11-06": {"planned": 3, "missed": 2, "on_time": 1},
        "2026-11-07": {"planned": 1, "on_time": 1},
        "2026-11-10": {"planned": 3, "on_time": 1, "missed": 1, "open": 1},
    },
}


def _regimen(name: str, phone: str, zone: str, **extra: Any) -> dict[str, Any]:
    body = {"person": {"name": name, "phone": phone, "timezone": zone}, **extra}
    return Regimen.model_validate(body).model_dump(mode="json")


ANA_REGIMEN = _regimen(
    "Ana Jensen",
    ANA_PHONE,
    "Europe/Copenhagen",
    meals=[
        {"name": "breakfast", "at": "07:30", "contains": ["dairy"]},
        {"name": "lunch", "at": "12:00"},
        {"name": "dinner", "at": "18:30", "contains": ["dairy"]},
    ],
    medications=[{"name": "levothyroxine", "at": "06:45"}],
    supplements=[
        {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True},
        {"name": "vitamin C", "dose": "250 mg"},
        {"name": "magnesium citrate", "dose": "300 mg", "at": "21:00"},
    ],
)
BO_REGIMEN = _regimen(
    "Bo Smith",
    BO_PHONE,
    "America/New_York",
    supplements=[{"name": "selenium", "dose": "100 µg", "at": "21:30"}],
)


def local(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), zone).astimezone(UTC)


class _Seeder:
    def __init__(self) -> None:
        self.reminders: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.confirmations: list[dict[str, Any]] = []

    def dose(
        self,
        person: int,
        regimen: int,
        day: date,
        due: datetime,
        items: list[dict[str, str]],
        status: str,
        *,
        taken_at: datetime | None = None,
        message: str | None = "delivered",
        fallback: str | None = None,
        kind: str = "dose",
        key: str | None = None,
    ) -> None:
        reminder_id = len(self.reminders) + 1
        names = "+".join(item["supplement"] for item in items)
        self.reminders.append(
            {
                "id": reminder_id,
                "person_id": person,
                "regimen_id": regimen if kind == "dose" else None,
                "slot_key": key or f"{day.isoformat()}#{names}",
                "kind": kind,
                "items": items,
                "due_at": due,
                "window_closes_at": due + timedelta(hours=2),
                "followup_due_at": None,
                "status": status,
                "confirmed_at": taken_at if status == "confirmed" else None,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        if status in ("confirmed", "skipped"):
            self.confirmations.append(
                {
                    "reminder_id": reminder_id,
                    "person_id": person,
                    "outcome": "taken" if status == "confirmed" else "skipped",
                    "at": taken_at or due + timedelta(minutes=5),
                    "source": "sms",
                }
            )
        for purpose, state in (("initial", message), ("initial-email", fallback)):
            if state is None:
                continue
            self.messages.append(
                {
                    "reminder_id": reminder_id,
                    "person_id": person,
                    "channel": "email" if purpose.endswith("email") else "sms",
                    "recipient": "x",
                    "body": "reminder",
                    "purpose": purpose,
                    "status": state,
                    "due_at": due,
                    "attempts": 1,
                    "next_attempt_at": due,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )


def seed(engine: Engine) -> None:
    s = _Seeder()
    for offset in range(10):
        day = START + timedelta(days=offset)
        number = offset + 1
        iron_due = local(day, 11, 30, CPH)
        mag_due = local(day, 21, 0, CPH)
        iron_at = {
            4: local(day, 12, 30, CPH),
            5: local(day, 11, 40, CPH),
            8: local(day, 16, 0, CPH),
        }.get(number, local(day, 11, 35, CPH))
        if number == 6:
            s.dose(ANA, 1, day, iron_due, IRON, "missed", message="failed", fallback="delivered")
            s.dose(ANA, 1, day, mag_due, MAGNESIUM, "missed", message="failed")
            continue
        s.dose(ANA, 1, day, iron_due, IRON, "confirmed", taken_at=iron_at)
        if number == 5:
            s.dose(ANA, 1, day, mag_due, MAGNESIUM, "skipped")
        elif number == 7:
            s.dose(ANA, 1, day, mag_due, MAGNESIUM, "cancelled", message=None)
        elif number == 10:
            s.dose(ANA, 1, day, mag_due, MAGNESIUM, "sent", message="sent")
        else:
            s.dose(ANA, 1, day, mag_due, MAGNESIUM, "confirmed", taken_at=mag_due)
        if number == 9:
            extra = local(day, 15, 0, CPH)
            s.dose(
                ANA,
                1,
                day,
                extra,
                MAGNESIUM,
                "cancelled",
                message=None,
                key=f"{day.isoformat()}#extra",
            )
        if number == 3:
            lozenge = [{"supplement": "zinc", "dose": "14 mg", "name": "zinc lozenge"}]
            s.dose(
                ANA,
                1,
                day,
                local(day, 10, 0, CPH),
                lozenge,
                "confirmed",
                taken_at=local(day, 10, 1, CPH),
                message=None,
                kind="lozenge",
                key=f"{day.isoformat()}#cold-course-1-1",
            )
    for offset in range(-1, 11):
        day = START + timedelta(days=offset)
        due = local(day, 21, 30, NYC)
        if offset in (8, 9):
            s.dose(BO, 2, day, due, SELENIUM, "missed")
        else:
            s.dose(BO, 2, day, due, SELENIUM, "confirmed", taken_at=due + timedelta(minutes=10))

    with engine.begin() as connection:
        connection.execute(
            insert(PersonRow),
            [
                _person(ANA, "Ana Jensen", ANA_PHONE, "Europe/Copenhagen"),
                _person(BO, "Bo Smith", BO_PHONE, "America/New_York"),
                _person(CY, "Cy Berg", CY_PHONE, "Europe/Copenhagen"),
            ],
        )
        connection.execute(
            insert(RegimenRow),
            [
                {"id": 1, "person_id": ANA, "version": 1, "body": ANA_REGIMEN, "created_at": NOW},
                {"id": 2, "person_id": BO, "version": 1, "body": BO_REGIMEN, "created_at": NOW},
            ],
        )
        onset = local(START + timedelta(days=2), 9, 0, CPH)
        bo_onset = local(START + timedelta(days=4), 9, 0, NYC)
        connection.execute(
            insert(ColdCourseRow),
            [
                {
                    "id": 1,
                    "person_id": ANA,
                    "onset_at": onset,
                    "ends_at": onset + timedelta(days=5),
                    "ended_at": None,
                },
                {
                    "id": 2,
                    "person_id": BO,
                    "onset_at": bo_onset,
                    "ends_at": bo_onset + timedelta(days=5),
                    "ended_at": bo_onset + timedelta(days=1),
                },
            ],
        )
        connection.execute(insert(ReminderRow), s.reminders)
        connection.execute(insert(OutgoingMessageRow), s.messages)
        connection.execute(insert(ConfirmationRow), s.confirmations)
        day7 = START + timedelta(days=6)
        connection.execute(
            insert(OptOutRow),
            [
                {
                    "person_id": ANA,
                    "opted_out_at": local(day7, 13, 0, CPH),
                    "opted_in_at": local(day7, 20, 0, CPH),
                    "source": "sms",
                }
            ],
        )
        _move_sequences(connection)


def _move_sequences(connection: Connection) -> None:
    """The rows above carry their own ids: on PostgreSQL, move the sequences past them, so
    rows the services add later get fresh ones (SQLite takes max(id) + 1 by itself)."""
    if connection.dialect.name != "postgresql":
        return
    for table in ("people", "regimens", "cold_courses", "reminders", "outgoing_messages"):
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        )


def _person(person_id: int, name: str, phone: str, zone: str) -> dict[str, Any]:
    return {
        "id": person_id,
        "name": name,
        "phone": phone,
        "email": None,
        "channel": "sms",
        "timezone": zone,
        "active": True,
        "opted_out": False,
        "created_at": NOW,
        "updated_at": NOW,
    }
