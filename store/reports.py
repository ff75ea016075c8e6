"""The adherence report's read model: aggregation in SQL, on SQLite and on PostgreSQL.

Two ways to the same figures:

- **Direct** (one person's report, and the reference the tests hold the rollup to): grouped
  scans of `reminders` in the window (per person and day, per supplement), never a row per
  reminder into Python. One person's window is a few hundred rows found through the
  (person_id, due_at, slot_key) index.
- **Rollup** (everyone's report): `report_days` holds each person's measures per local date
  and `report_supplement_days` per date and supplement; `report_weeks` and
  `report_supplement_weeks` hold their sums per Monday-to-Sunday week, with each day's streak
  flag (all taken / not / no closed doses) in 4 bits of the week's `flags`. A window is read
  as its full weeks plus at most six days at each edge: 90 days for 10,000 people is about
  180,000 + 900,000 narrow rows instead of 3.6 million reminders joined to their messages
  (and 4.5 million per supplement and day). The iron gap check (Python, against the
  regimen's meals) is stored per day instead of redone for every iron dose at every report.
  Streaks need the days in order: each person's flags come back as a few 56-bit integers
  (two weeks each) summed in the same grouped scan, and Python reads the runs off them.

Keeping the rollup exact. Reminder and message statuses are written by the scheduler, the
notifier and the tracker; the rollup must not depend on each of them remembering to tell it.
So triggers (migration 0003; statement-level on PostgreSQL, row-level on SQLite) queue the
(person, local date) of every reminder or message change that can move a measure into
`report_dirty_days`, inside the writer's own transaction: a change and its queue row commit
together or not at all, whoever wrote it, late changes (a status callback days later, a
scheduler catching up after an outage) included. Nothing relies on clocks, margins or an
event being written.

- `SqlReportRollup.refresh` (store.report_rollup; a scheduler job every minute, and the
  `dosewise report refresh` command) claims queued rows with DELETE ... RETURNING and
  rebuilds those days from `reminders`, in one transaction under an advisory lock. A change
  committed meanwhile queues a new row, which the next refresh reads.
- A report never waits for it: it scans the rollup as it is, then corrects the queued days
  (their stored figures out, the same aggregation done live on `reminders` in) and the
  opted-out days (their doses out), all in one REPEATABLE READ snapshot, so its figures equal
  the direct aggregation at that moment however far behind the refresh is; the refresh only
  keeps the live part small. Every measure, the streak flags included, is a sum over days,
  so a correction is a subtraction and an addition in Python over a few rows.
- Opted-out days are not baked in: they are left out at read time, from `opt_outs`.

We preferred triggers to the event log (docs/events.md) because not every status change
writes an event (a delivery receipt, a window closing, a hand-off), and to a settled-day
cut-off because statuses do change late; the triggers' cost falls on writers: one INSERT
per statement (PostgreSQL) or per changed row (SQLite), only when a counted column changes.

The local date of a reminder is the first ten characters of its slot key (the scheduler's
`YYYY-MM-DD#...`: the plan's day in the person's zone), so no time-zone arithmetic happens in
SQL. A reminder's outcome is read from its own status and `confirmed_at` (the tracker writes
them with the confirmation, in one transaction), which spares a join with `confirmations`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from reports.adherence import (
    AdherenceReport,
    ColdCourses,
    Counts,
    DayLine,
    Deliveries,
    DoseLine,
    IronTiming,
    PersonLine,
    Streaks,
)
from reports.ports import PersonRef
from reports.timing import CALCIUM, IRON, IronGaps
from store.engine import unavailable_on_error
from store.report_rollup import RolledQueries
from store.report_sql import (
    COUNT_COLUMNS,
    DAY,
    DOSES,
    SENT_JOINS,
    dialect_of,
    instants,
    load_regimens,
    statement,
)
from store.types import UTCDateTime

# every zone is within 14 h of UTC: these margins make the due_at range cover the local dates
_MARGIN = timedelta(days=1)
_IRON_MIN_HOURS = IronGaps().rule.min_hours


# people.id is a 32-bit INTEGER
MAX_PERSON_ID = 2**31 - 1


@dataclass(frozen=True)
class _Scope:
    """Which reminders a report reads: local dates, perhaps one person, less opted-out days."""

    start: date
    end: date
    person_id: int | None
    excluded: list[tuple[int, str]]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "lo": datetime.combine(self.start, datetime.min.time(), UTC) - _MARGIN,
            "hi": datetime.combine(self.end, datetime.min.time(), UTC) + 2 * _MARGIN,
            "d_from": self.start.isoformat(),
            # keys start with the ISO date: a range on the plain column is estimated well
            "d_after": (self.end + timedelta(days=1)).isoformat(),
        }
        if self.person_id is not None:
            params["person"] = self.person_id
        if self.excluded:
            params["excluded"] = json.dumps(self.excluded)
        return params


class SqlAdherenceQueries:
    """reports.ports.AdherenceQueries on an engine (the report opens its own connection)."""

    def __init__(self, engine: Engine, *, rollup: bool = True) -> None:
        """`rollup=False` reads everyone's report directly too (the tests' reference)."""
        self._engine = engine
        self._sql = dialect_of(engine)
        self._rollup = rollup

    def find_person(self, ref: str) -> PersonRef | None:
        ref = ref.strip()
        column = "id" if ref.isdigit() else "phone"
        value: int | str = int(ref) if ref.isdigit() else ref
        if isinstance(value, int) and value > MAX_PERSON_ID:
            return None  # past any id the column can hold (the databases would refuse it)
        with unavailable_on_error(self._engine), self._engine.connect() as connection:
            row = connection.execute(
                text(f"SELECT id, name, phone FROM people WHERE {column} = :value"),
                {"value": value},
            ).first()
        return None if row is None else PersonRef(row.id, row.name, row.phone)

    def report(
        self, start: date, end: date, now: datetime, person_id: int | None = None
    ) -> AdherenceReport:
        if end < start:
            raise ValueError(f"the window ends ({end}) before it starts ({start})")
        with unavailable_on_error(self._engine):
            return self._report(start, end, now, person_id)

    def _report(
        self, start: date, end: date, now: datetime, person_id: int | None
    ) -> AdherenceReport:
        with self._snapshot(everyone=person_id is None) as connection:
            people = self._people(connection, person_id)
            excluded = self._opted_out_days(connection, people, start, end, now)
            scope = _Scope(
                start,
                end,
                person_id,
                sorted((pid, day.isoformat()) for pid, days in excluded.items() for day in days),
            )
            if person_id is None and self._rollup:
                rolled = RolledQueries(connection, self._sql, scope.params())
                measures = rolled.measures(_IRON_MIN_HOURS)
                per_person, days, streaks = measures.counts, measures.days, measures.streaks
                per_supplement, deliveries = measures.supplements, measures.deliveries
                iron = measures.iron
            else:
                per_person, days, streaks = self._day_measures(connection, scope)
                per_supplement = self._supplement_measures(connection, scope)
                deliveries = self._deliveries(connection, scope)
                iron = self._iron_timing(connection, scope)
            colds = self._cold_courses(connection, people, start, end, now)
            doses = self._doses(connection, scope, people) if person_id is not None else []
        lines = [
            PersonLine(
                id=pid,
                name=name,
                phone=phone,
                timezone=zone,
                counts=per_person.get(pid, Counts()),
                supplements=per_supplement.get(pid, {}),
                streaks=streaks.get(pid, Streaks()),
                iron_timing=iron.get(pid, IronTiming(min_hours=_IRON_MIN_HOURS)),
                cold_courses=colds.get(pid, ColdCourses()),
                deliveries=deliveries.get(pid, Deliveries()),
                opted_out_days=len(excluded.get(pid, ())),
            )
            for pid, (name, phone, zone) in people.items()
        ]
        totals: dict[str, Counts] = defaultdict(Counts)
        for supplements in per_supplement.values():
            for name, counts in supplements.items():
                totals[name] += counts
        opted_out = sorted(excluded.get(person_id, ())) if person_id is not None else []
        return AdherenceReport(start, end, now, lines, days, dict(totals), doses, opted_out)

    @contextmanager
    def _snapshot(self, *, everyone: bool) -> Iterator[Connection]:
        """One consistent snapshot for all of a report's statements."""
        with self._engine.connect() as plain:
            connection = plain
            if self._sql.name == "postgresql":
                connection = plain.execution_options(isolation_level="REPEATABLE READ")
                if everyone:
                    # JIT compiling these one-off aggregates costs more than it saves;
                    # hashing everyone's groups in memory instead of on disk needs over 4 MB
                    connection.execute(text("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"))
            yield connection

    # -- the pieces ---------------------------------------------------------------------------

    def _people(
        self, connection: Connection, person_id: int | None
    ) -> dict[int, tuple[str, str, str]]:
        where = "" if person_id is None else "WHERE id = :person"
        rows = connection.execute(
            text(f"SELECT id, name, phone, timezone FROM people {where} ORDER BY id"),
            {} if person_id is None else {"person": person_id},
        )
        return {row.id: (row.name, row.phone, row.timezone) for row in rows}

    def _opted_out_days(
        self,
        connection: Connection,
        people: Mapping[int, tuple[str, str, str]],
        start: date,
        end: date,
        now: datetime,
    ) -> dict[int, set[date]]:
        """The local dates of the window on which each person was opted out at any moment."""
        lo = datetime.combine(start, datetime.min.time(), UTC) - _MARGIN
        hi = datetime.combine(end, datetime.min.time(), UTC) + 2 * _MARGIN
        statement = text(
            "SELECT person_id, opted_out_at, opted_in_at FROM opt_outs "
            "WHERE opted_out_at < :hi AND (opted_in_at IS NULL OR opted_in_at >= :lo)"
        ).bindparams(*instants("lo", "hi"))
        typed = statement.columns(opted_out_at=UTCDateTime(), opted_in_at=UTCDateTime())
        days: dict[int, set[date]] = defaultdict(set)
        for row in connection.execute(typed, {"lo": lo, "hi": hi}):
            if row.person_id not in people:
                continue
            zone = ZoneInfo(people[row.person_id][2])
            first = row.opted_out_at.astimezone(zone).date()
            last = (row.opted_in_at or max(now, hi)).astimezone(zone).date()
            day = max(first, start)
            while day <= min(last, end):
                days[row.person_id].add(day)
                day += timedelta(days=1)
        return days

    def _dose_rows(self, scope: _Scope, *, items: bool = False) -> str:
        """FROM and WHERE of the window's doses, with `sent` as the joins m1/m2 (and with
        `items`, one row per supplement of a dose, as alias e)."""
        unnest = self._sql.reminder_items if items else ""
        where = [
            "r.due_at >= :lo",
            "r.due_at < :hi",
            "r.slot_key >= :d_from",
            "r.slot_key < :d_after",
            DOSES,
        ]
        if scope.person_id is not None:
            where.append("r.person_id = :person")
        if scope.excluded:
            # NOT EXISTS is planned as an anti-join (a LEFT JOIN ... IS NULL on a function's
            # output is estimated to keep 0.5 % of the rows, which picks nested loops)
            where.append(
                f"NOT EXISTS (SELECT 1 FROM ({self._sql.pairs('excluded')}) xo "
                f"WHERE xo.person_id = r.person_id AND xo.day = {DAY})"
            )
        return f"FROM reminders r {SENT_JOINS} {unnest} WHERE {' AND '.join(where)}"

    def _sums(self) -> str:
        return (
            "count(*) AS planned, "
            "sum(CASE WHEN m1.id IS NOT NULL OR m2.id IS NOT NULL THEN 1 ELSE 0 END) AS sent, "
            f"sum(CASE WHEN r.status = 'confirmed' AND {self._sql.on_time} "
            "THEN 1 ELSE 0 END) AS on_time, "
            f"sum(CASE WHEN r.status = 'confirmed' AND NOT ({self._sql.on_time}) "
            "THEN 1 ELSE 0 END) AS late, "
            "sum(CASE WHEN r.status = 'skipped' THEN 1 ELSE 0 END) AS skipped, "
            "sum(CASE WHEN r.status = 'missed' THEN 1 ELSE 0 END) AS missed, "
            "sum(CASE WHEN r.status = 'expired' THEN 1 ELSE 0 END) AS expired, "
            "sum(CASE WHEN r.status IN ('planned', 'queued', 'sent') THEN 1 ELSE 0 END) "
            "AS pending"
        )

    def _day_measures(
        self, connection: Connection, scope: _Scope
    ) -> tuple[dict[int, Counts], list[DayLine], dict[int, Streaks]]:
        """Per person, per day and the streaks: one grouped scan, (person, day) rows stay in
        the database."""
        summed = ", ".join(f"sum({column})" for column in COUNT_COLUMNS)
        sql = f"""
        WITH pday AS (
            SELECT r.person_id, {DAY} AS d, {self._sums()}
            {self._dose_rows(scope)}
            GROUP BY r.person_id, {DAY}
        ),
        closed AS (
            SELECT person_id, d, CASE WHEN on_time + late = planned THEN 1 ELSE 0 END AS ok
            FROM pday WHERE pending = 0
        ),
        marked AS (
            SELECT person_id, ok,
                   sum(1 - ok) OVER (PARTITION BY person_id ORDER BY d
                                     ROWS UNBOUNDED PRECEDING) AS grp
            FROM closed
        ),
        runs AS (
            SELECT person_id, grp, sum(ok) AS n FROM marked GROUP BY person_id, grp
        ),
        ranked AS (
            SELECT person_id, grp, n, max(grp) OVER (PARTITION BY person_id) AS last_grp
            FROM runs
        )
        SELECT 'person' AS section, person_id, NULL AS d, {summed}
        FROM pday GROUP BY person_id
        UNION ALL
        SELECT 'day', NULL, d, {summed} FROM pday GROUP BY d
        UNION ALL
        SELECT 'streak', person_id, NULL, max(n),
               max(CASE WHEN grp = last_grp THEN n ELSE 0 END), 0, 0, 0, 0, 0, 0
        FROM ranked GROUP BY person_id
        """
        per_person: dict[int, Counts] = {}
        days: list[DayLine] = []
        streaks: dict[int, Streaks] = {}
        for row in connection.execute(statement(sql), scope.params()):
            section, person_id, day, *numbers = row
            values = [int(number or 0) for number in numbers]
            if section == "person":
                per_person[int(person_id)] = _counts(values)
            elif section == "day":
                days.append(DayLine(date.fromisoformat(day), _counts(values)))
            else:
                streaks[int(person_id)] = Streaks(current=values[1], longest=values[0])
        days.sort(key=lambda line: line.day)
        return per_person, days, streaks

    def _supplement_measures(
        self, connection: Connection, scope: _Scope
    ) -> dict[int, dict[str, Counts]]:
        """Per person and supplement: each dose counts for every supplement it holds."""
        sql = f"""
        SELECT r.person_id, {self._sql.supplement} AS supplement, {self._sums()}
        {self._dose_rows(scope, items=True)}
        GROUP BY r.person_id, {self._sql.supplement}
        """
        result: dict[int, dict[str, Counts]] = defaultdict(dict)
        for row in connection.execute(statement(sql), scope.params()):
            person_id, supplement, *numbers = row
            result[int(person_id)][str(supplement)] = _counts([int(n or 0) for n in numbers])
        return result

    def _deliveries(self, connection: Connection, scope: _Scope) -> dict[int, Deliveries]:
        """Every message of the window's reminders (doses and lozenges, follow-ups too)."""
        where = [
            "r.due_at >= :lo",
            "r.due_at < :hi",
            "r.slot_key >= :d_from",
            "r.slot_key < :d_after",
        ]
        if scope.person_id is not None:
            where.append("r.person_id = :person")
        sql = f"""
        SELECT r.person_id,
               sum(CASE WHEN m.status = 'delivered' THEN 1 ELSE 0 END) AS delivered,
               sum(CASE WHEN m.status = 'failed' THEN 1 ELSE 0 END) AS failed,
               sum(CASE WHEN m.purpose LIKE '%-email' THEN 1 ELSE 0 END) AS email_fallback
        FROM outgoing_messages m JOIN reminders r ON r.id = m.reminder_id
        WHERE {" AND ".join(where)}
        GROUP BY r.person_id
        """
        params = {k: v for k, v in scope.params().items() if k != "excluded"}
        return {
            int(row.person_id): Deliveries(
                int(row.delivered), int(row.failed), int(row.email_fallback)
            )
            for row in connection.execute(statement(sql), params)
        }

    def _iron_timing(self, connection: Connection, scope: _Scope) -> dict[int, IronTiming]:
        gaps = IronGaps()
        base = self._dose_rows(scope)
        taken = connection.execute(
            statement(
                f"SELECT r.person_id, r.regimen_id, {DAY} AS d, r.confirmed_at {base} "
                f"AND r.status = 'confirmed' AND {self._sql.has_supplement}",
                confirmed_at=UTCDateTime(),
            ),
            {**scope.params(), "supplement": IRON},
        ).all()
        if not taken:
            return {}
        calcium: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        for row in connection.execute(
            statement(
                f"SELECT r.person_id, {DAY} AS d, r.due_at {base} AND {self._sql.has_supplement}",
                due_at=UTCDateTime(),
            ),
            {**scope.params(), "supplement": CALCIUM},
        ):
            calcium[(row.person_id, row.d)].append(row.due_at)
        load_regimens(connection, gaps, {row.regimen_id for row in taken})
        kept: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for row in taken:
            tally = kept[row.person_id]
            tally[0] += 1
            day = date.fromisoformat(row.d)
            if gaps.kept(
                row.regimen_id, day, row.confirmed_at, calcium.get((row.person_id, row.d), ())
            ):
                tally[1] += 1
        return {
            pid: IronTiming(taken=n, gap_kept=ok, min_hours=gaps.rule.min_hours)
            for pid, (n, ok) in kept.items()
        }

    def _cold_courses(
        self,
        connection: Connection,
        people: Mapping[int, tuple[str, str, str]],
        start: date,
        end: date,
        now: datetime,
    ) -> dict[int, ColdCourses]:
        """Courses whose onset falls on a local date of the window: started, completed (ran to
        their end), ended early (WELL before the end)."""
        statement = text(
            "SELECT person_id, onset_at, ends_at, ended_at FROM cold_courses "
            "WHERE onset_at >= :lo AND onset_at < :hi"
            # one person's report finds their courses by the person_id index
            + (" AND person_id = :person" if len(people) == 1 else "")
        ).bindparams(*instants("lo", "hi"))
        typed = statement.columns(
            onset_at=UTCDateTime(), ends_at=UTCDateTime(), ended_at=UTCDateTime()
        )
        params: dict[str, Any] = {
            "lo": datetime.combine(start, datetime.min.time(), UTC) - _MARGIN,
            "hi": datetime.combine(end, datetime.min.time(), UTC) + 2 * _MARGIN,
            "person": next(iter(people), None),
        }
        tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in connection.execute(typed, params):
            if row.person_id not in people:
                continue
            zone = ZoneInfo(people[row.person_id][2])
            if not start <= row.onset_at.astimezone(zone).date() <= end:
                continue
            tally = tallies[row.person_id]
            tally[0] += 1
            if row.ended_at is not None and row.ended_at < row.ends_at:
                tally[2] += 1
            elif row.ends_at <= now:
                tally[1] += 1
        return {pid: ColdCourses(*tally) for pid, tally in tallies.items()}

    def _doses(
        self,
        connection: Connection,
        scope: _Scope,
        people: Mapping[int, tuple[str, str, str]],
    ) -> list[DoseLine]:
        """One person's doses, for the calendar (at most a few per day)."""
        if scope.person_id is None or scope.person_id not in people:
            return []
        zone = ZoneInfo(people[scope.person_id][2])
        on_time = f"CASE WHEN {self._sql.on_time} THEN 1 ELSE 0 END"
        rows = connection.execute(
            statement(
                f"SELECT {DAY} AS d, r.due_at, r.status, r.items, {on_time} AS on_time "
                f"{self._dose_rows(scope)} ORDER BY r.due_at, r.id",
                due_at=UTCDateTime(),
            ),
            scope.params(),
        )
        doses = []
        for row in rows:
            items = row.items if isinstance(row.items, list) else json.loads(row.items)
            doses.append(
                DoseLine(
                    day=date.fromisoformat(row.d),
                    due_at=row.due_at.astimezone(zone),
                    supplements=tuple(str(item.get("supplement")) for item in items),
                    outcome=_outcome(row.status, bool(row.on_time)),
                )
            )
        return doses


def _counts(values: list[int]) -> Counts:
    planned, sent, on_time, late, skipped, missed, expired, pending = values
    return Counts(planned, sent, on_time, late, skipped, missed, expired, pending)


def _outcome(status: str, on_time: bool) -> str:
    if status == "confirmed":
        return "on_time" if on_time else "late"
    if status in ("skipped", "missed", "expired"):
        return status
    return "open"
