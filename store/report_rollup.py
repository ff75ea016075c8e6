"""The adherence report's rollup: refreshed from the queue of changed days, read together
with the days still queued (aggregated live). Why it is built this way: store.reports.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from reports.adherence import Counts, DayLine, Deliveries, IronTiming, Streaks
from reports.timing import IRON
from store.engine import unavailable_on_error
from store.report_sql import (
    COUNT_COLUMNS,
    DAY_EXTRAS,
    EVERY_DAY,
    Dialect,
    day_rows,
    dialect_of,
    iron_broken,
    pairs_json,
    supplement_rows,
)

# pg_advisory_xact_lock key of the refresh ("dwROLLUP"): one refresh at a time, so a slower
# one can never write older figures over a newer one's
ROLLUP_LOCK = 0x6477_524F_4C4C_5550
REFRESH_BATCH = 5000
# the streak flag of a day: 1 every dose taken, 2 not, 0 no doses or some open (left out),
# in 4 bits at 4 x (days since Monday) of its week's `flags`; a report reads two weeks a word
_FLAG_BITS, _WEEK, _FLAGS_PER_WORD = 4, 7, 14
_DAY_COLUMNS = (*COUNT_COLUMNS, *DAY_EXTRAS)
ROLLUP_TABLES = ("report_days", "report_supplement_days", "report_weeks", "report_supplement_weeks")


def _flag_sql(alias: str) -> str:
    a = alias
    return (
        f"CAST(CASE WHEN {a}.planned > 0 AND {a}.pending = 0 THEN "
        f"CASE WHEN {a}.on_time + {a}.late = {a}.planned THEN 1 ELSE 2 END ELSE 0 END AS bigint)"
    )


def _shifted(flag: str, position: str) -> str:
    """`flag` moved to its 4 bits at day `position` of a word."""
    return f"{flag} * (CAST(1 AS bigint) << ({_FLAG_BITS} * ({position})))"


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


class SqlReportRollup:
    """Keeps report_days and report_supplement_days equal to the direct aggregation, and
    report_weeks and report_supplement_weeks equal to the sums of their days."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = dialect_of(engine)

    def refresh(self, limit: int = REFRESH_BATCH) -> int:
        """Rebuild the rows of up to `limit` queued changes in one transaction; how many
        (person, day) were rebuilt."""
        with unavailable_on_error(self._engine), self._engine.begin() as connection:
            if self._sql.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK})
            # DELETE ... RETURNING claims exactly the queued rows it saw (every row of the
            # oldest `limit` rows' days): a change committed after this statement queues a row
            # of its own, read by the next refresh
            claimed = connection.execute(
                text(
                    "DELETE FROM report_dirty_days WHERE EXISTS (SELECT 1 FROM "
                    "(SELECT person_id, day FROM report_dirty_days ORDER BY id LIMIT :limit) o "
                    "WHERE o.person_id = report_dirty_days.person_id "
                    "AND o.day = report_dirty_days.day) RETURNING person_id, day"
                ),
                {"limit": limit},
            ).all()
            days = {(int(row.person_id), str(row.day)) for row in claimed}
            if days:
                self._rebuild(connection, pairs_json(days))
        return len(days)

    def refresh_all(self, limit: int = REFRESH_BATCH) -> int:
        """Refresh until the queue is empty (each batch its own transaction)."""
        total = 0
        while (done := self.refresh(limit)) > 0:
            total += done
        return total

    def rebuild_all(self) -> int:
        """Rebuild the whole rollup with full scans of the reminders (after a bulk load or a
        restore: far faster than the queue's index probes for millions of days); how many
        person-days it holds now."""
        with unavailable_on_error(self._engine), self._engine.begin() as connection:
            if self._sql.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK})
            # every row queued so far is claimed: their changes are in the scans below
            connection.execute(text("DELETE FROM report_dirty_days"))
            for table in ROLLUP_TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
            self._insert_days(connection, EVERY_DAY, {"iron": IRON})
            days = connection.execute(text("SELECT person_id, day FROM report_days")).all()
            weeks = {(int(p), monday(date.fromisoformat(d)).isoformat()) for p, d in days}
            self._rebuild_weeks(connection, pairs_json(weeks))
        return len(days)

    def _rebuild(self, connection: Connection, days: str) -> None:
        source = self._sql.pairs("days")
        params = {"days": days, "iron": IRON}
        for table in ("report_days", "report_supplement_days"):
            connection.execute(
                text(
                    f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM ({source}) s "
                    f"WHERE s.person_id = {table}.person_id AND s.day = {table}.day)"
                ),
                params,
            )
        self._insert_days(connection, source, params)
        weeks = {(p, monday(date.fromisoformat(d)).isoformat()) for p, d in json.loads(days)}
        self._rebuild_weeks(connection, pairs_json(weeks))

    def _insert_days(self, connection: Connection, source: str, params: dict[str, Any]) -> None:
        """The day rows of the source's days (none there yet), iron gap check included."""
        day_columns = ", ".join(("person_id", "day", *_DAY_COLUMNS))
        connection.execute(
            text(
                f"INSERT INTO report_days ({day_columns}) SELECT {day_columns} "
                f"FROM ({day_rows(self._sql, source)}) x"
            ),
            params,
        )
        supplement_columns = ", ".join(("person_id", "day", "supplement", *COUNT_COLUMNS))
        connection.execute(
            text(
                f"INSERT INTO report_supplement_days ({supplement_columns}) "
                f"SELECT {supplement_columns} FROM ({supplement_rows(self._sql, source)}) x"
            ),
            params,
        )
        broken = iron_broken(connection, self._sql, source, params)
        if broken:
            connection.execute(
                text(
                    "UPDATE report_days SET iron_broken = :n "
                    "WHERE person_id = :person_id AND day = :day"
                ),
                [{"n": n, "person_id": p, "day": d} for (p, d), n in broken.items()],
            )

    def _rebuild_weeks(self, connection: Connection, weeks: str) -> None:
        """The weeks of the rebuilt days, summed again from their day rows."""
        sql, params = self._sql, {"weeks": weeks}
        source = sql.pairs("weeks")  # (person_id, day): day is the week's Monday
        for table in ("report_weeks", "report_supplement_weeks"):
            connection.execute(
                text(
                    f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM ({source}) s "
                    f"WHERE s.person_id = {table}.person_id AND s.day = {table}.week)"
                ),
                params,
            )
        of_week = (
            f"FROM ({source}) s JOIN {{table}} d ON d.person_id = s.person_id "
            f"AND d.day >= s.day AND d.day < {sql.plus_week.format('s.day')}"
        )
        summed = ", ".join(f"sum(d.{name})" for name in _DAY_COLUMNS)
        flags = _shifted(_flag_sql("d"), sql.day_number.format("s.day", "d.day"))
        columns = ", ".join(_DAY_COLUMNS)
        connection.execute(
            text(
                f"INSERT INTO report_weeks (person_id, week, {columns}, flags) "
                f"SELECT d.person_id, s.day, {summed}, sum({flags}) "
                f"{of_week.format(table='report_days')} GROUP BY d.person_id, s.day"
            ),
            params,
        )
        counts = ", ".join(COUNT_COLUMNS)
        summed_counts = ", ".join(f"sum(d.{name})" for name in COUNT_COLUMNS)
        connection.execute(
            text(
                f"INSERT INTO report_supplement_weeks (person_id, week, supplement, {counts}) "
                f"SELECT d.person_id, s.day, d.supplement, {summed_counts} "
                f"{of_week.format(table='report_supplement_days')} "
                "GROUP BY d.person_id, s.day, d.supplement"
            ),
            params,
        )


# -- reading -------------------------------------------------------------------------------
#
# Everyone's report scans the rollup rows of the window as they are (plain grouped scans, no
# joins), then corrects the few (person, day) it must read otherwise: the queued days (their
# rows may be stale: replaced by the same aggregation done live) and the opted-out days (their
# doses left out; deliveries still count). Every measure is a sum over days, the streak flags
# included (each day has its own 4 bits), so a correction is a subtraction and an addition.


@dataclass
class RolledMeasures:
    """The dose measures of a window, as the report's store part needs them."""

    counts: dict[int, Counts] = field(default_factory=dict)
    days: list[DayLine] = field(default_factory=list)
    streaks: dict[int, Streaks] = field(default_factory=dict)
    supplements: dict[int, dict[str, Counts]] = field(default_factory=dict)
    deliveries: dict[int, Deliveries] = field(default_factory=dict)
    iron: dict[int, IronTiming] = field(default_factory=dict)


_Key = tuple[int, str]  # (person_id, day)
_WIDTH = len(_DAY_COLUMNS)
_DOSE_PART = len(COUNT_COLUMNS) + 2  # the counts and iron: left out on opted-out days


class RolledQueries:
    """Dose measures from the rollup, corrected for the queued and the opted-out days: equal to
    the direct aggregation at the moment of the read (the caller reads in one snapshot)."""

    def __init__(self, connection: Connection, sql: Dialect, params: dict[str, Any]) -> None:
        self._connection = connection
        self._sql = sql
        self._person = "person" in params
        self._excluded: set[_Key] = {
            (int(p), str(d)) for p, d in json.loads(params.get("excluded", "[]"))
        }
        self._split = _Split.of(
            date.fromisoformat(params["d_from"]),
            date.fromisoformat(params["d_after"]) - timedelta(days=1),
        )
        self._params = {**params, **self._split.params(), "iron": IRON}

    def measures(self, iron_min_hours: float) -> RolledMeasures:
        live = self._live_days()
        fixes = _Fixes(self._split.week_zero, live, self._excluded)
        if fixes.keys:
            self._read_fixes(fixes, live)
        sums, words = self._per_person(fixes)
        result = RolledMeasures()
        for person_id, row in sums.items():
            result.counts[person_id] = Counts(*row[: len(COUNT_COLUMNS)])
            taken, broken = row[len(COUNT_COLUMNS)], row[len(COUNT_COLUMNS) + 1]
            result.iron[person_id] = IronTiming(taken, taken - broken, iron_min_hours)
            result.deliveries[person_id] = Deliveries(*row[_DOSE_PART:])
            result.streaks[person_id] = _streaks(words.get(person_id, {}))
        result.days = self._per_day(fixes)
        result.supplements = self._per_supplement(fixes)
        return result

    # -- the corrections ---------------------------------------------------------------------

    def _window(self, alias: str) -> str:
        where = f"{alias}.day >= :d_from AND {alias}.day < :d_after"
        return where + (f" AND {alias}.person_id = :person" if self._person else "")

    def _live_days(self) -> set[_Key]:
        """The window's queued days: their rollup rows may be stale, so they are read live."""
        rows = self._connection.execute(
            text(
                f"SELECT DISTINCT d.person_id, d.day FROM report_dirty_days d WHERE "
                f"{self._window('d')}"
            ),
            self._params,
        )
        return {(int(row.person_id), str(row.day)) for row in rows}

    def _read_fixes(self, fixes: _Fixes, live: set[_Key]) -> None:
        sql, connection = self._sql, self._connection
        params = {**self._params, "fixed": pairs_json(fixes.keys), "live": pairs_json(live)}
        fixed, live_source = sql.pairs("fixed"), sql.pairs("live")
        columns = ", ".join(f"d.{name}" for name in _DAY_COLUMNS)
        stored = (
            f"FROM report_days d JOIN ({fixed}) s ON s.person_id = d.person_id AND s.day = d.day"
        )
        for row in connection.execute(
            text(f"SELECT d.person_id, d.day, {columns} {stored}"), params
        ):
            fixes.stored[(int(row[0]), str(row[1]))] = [int(n) for n in row[2:]]
        supplement_columns = ", ".join(f"d.{name}" for name in COUNT_COLUMNS)
        for row in connection.execute(
            text(
                f"SELECT d.person_id, d.day, d.supplement, {supplement_columns} "
                f"FROM report_supplement_days d JOIN ({fixed}) s "
                "ON s.person_id = d.person_id AND s.day = d.day"
            ),
            params,
        ):
            fixes.stored_supplements[(int(row[0]), str(row[1]))][str(row[2])] = [
                int(n) for n in row[3:]
            ]
        if not live:
            return
        for row in connection.execute(text(day_rows(sql, live_source)), params):
            fixes.fresh[(int(row[0]), str(row[1]))] = [int(n or 0) for n in row[2:]]
        broken = iron_broken(connection, sql, live_source, params)
        for key, n in broken.items():
            fixes.fresh[key][len(COUNT_COLUMNS) + 1] = n
        for row in connection.execute(text(supplement_rows(sql, live_source)), params):
            fixes.fresh_supplements[(int(row[0]), str(row[1]))][str(row[2])] = [
                int(n or 0) for n in row[3:]
            ]

    # -- the scans ---------------------------------------------------------------------------

    def _per_person(self, fixes: _Fixes) -> tuple[dict[int, list[int]], dict[int, dict[int, int]]]:
        """Sums per person, and the streak flags of the window's days packed in integers, two
        weeks a column: one grouped scan of the full weeks' rows and the edge days' rows."""
        sql, split = self._sql, self._split
        week_n = sql.day_number.format(":week_zero", "w.week")
        day_n = sql.day_number.format(":week_zero", "d.day")
        week_columns = ", ".join(f"w.{name}" for name in _DAY_COLUMNS)
        day_columns = ", ".join(f"d.{name}" for name in _DAY_COLUMNS)
        summed = ", ".join(f"sum(x.{name})" for name in _DAY_COLUMNS)
        words = ", ".join(
            f"sum(CASE WHEN x.n / {_FLAGS_PER_WORD} = {word} THEN "
            f"x.flags * (CAST(1 AS bigint) << ({_FLAG_BITS * _WEEK} * ((x.n / {_WEEK}) % 2))) "
            "ELSE 0 END)"
            for word in range(split.words)
        )
        query = f"""
        SELECT x.person_id, {summed}, {words} FROM (
            SELECT w.person_id, {week_n} AS n, {week_columns}, w.flags
            FROM report_weeks w WHERE {self._weeks("w")}
            UNION ALL
            SELECT d.person_id, {day_n} AS n, {day_columns},
                   {_shifted(_flag_sql("d"), f"{day_n} % {_WEEK}")} AS flags
            FROM report_days d WHERE {self._edges("d")}
        ) x GROUP BY x.person_id
        """
        sums: dict[int, list[int]] = defaultdict(lambda: [0] * _WIDTH)
        packed: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for row in self._connection.execute(text(query), self._params):
            person_id = int(row[0])
            _add(sums[person_id], [int(x or 0) for x in row[1 : 1 + _WIDTH]])
            for word, value in enumerate(row[1 + _WIDTH :]):
                packed[person_id][word] += int(value or 0)
        for (person_id, _day), delta in fixes.day_deltas().items():
            _add(sums[person_id], delta)
        for (person_id, word), change in fixes.word_deltas().items():
            packed[person_id][word] += change
        return sums, packed

    def _weeks(self, alias: str) -> str:
        where = f"{alias}.week >= :w_from AND {alias}.week < :w_after"
        return where + (f" AND {alias}.person_id = :person" if self._person else "")

    def _edges(self, alias: str) -> str:
        a = alias
        where = (
            f"(({a}.day >= :e1_from AND {a}.day < :e1_to) "
            f"OR ({a}.day >= :e2_from AND {a}.day < :e2_to))"
        )
        return where + (f" AND {a}.person_id = :person" if self._person else "")

    def _per_day(self, fixes: _Fixes) -> list[DayLine]:
        summed = ", ".join(f"sum(d.{name})" for name in COUNT_COLUMNS)
        query = (
            f"SELECT d.day, {summed} FROM report_days d WHERE {self._window('d')} GROUP BY d.day"
        )
        days: dict[str, list[int]] = defaultdict(lambda: [0] * len(COUNT_COLUMNS))
        for row in self._connection.execute(text(query), self._params):
            _add(days[str(row[0])], [int(x or 0) for x in row[1:]])
        for (_person, day), delta in fixes.day_deltas().items():
            _add(days[day], delta[: len(COUNT_COLUMNS)])
        lines = [
            DayLine(date.fromisoformat(day), Counts(*numbers))
            for day, numbers in days.items()
            if numbers[0] > 0  # days with doses only
        ]
        return sorted(lines, key=lambda line: line.day)

    def _per_supplement(self, fixes: _Fixes) -> dict[int, dict[str, Counts]]:
        summed = ", ".join(f"sum(x.{name})" for name in COUNT_COLUMNS)
        week_columns = ", ".join(f"w.{name}" for name in COUNT_COLUMNS)
        day_columns = ", ".join(f"d.{name}" for name in COUNT_COLUMNS)
        query = f"""
        SELECT x.person_id, x.supplement, {summed} FROM (
            SELECT w.person_id, w.supplement, {week_columns}
            FROM report_supplement_weeks w WHERE {self._weeks("w")}
            UNION ALL
            SELECT d.person_id, d.supplement, {day_columns}
            FROM report_supplement_days d WHERE {self._edges("d")}
        ) x GROUP BY x.person_id, x.supplement
        """
        sums: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * len(COUNT_COLUMNS))
        for row in self._connection.execute(text(query), self._params):
            _add(sums[(int(row[0]), str(row[1]))], [int(x or 0) for x in row[2:]])
        for key, delta in fixes.supplement_deltas().items():
            _add(sums[key], delta)
        result: dict[int, dict[str, Counts]] = defaultdict(dict)
        for (person_id, supplement), numbers in sums.items():
            if numbers[0] > 0:  # supplements with doses only
                result[person_id][supplement] = Counts(*numbers)
        return result


@dataclass(frozen=True)
class _Split:
    """A window as its full weeks (read from the week rows) and the days before and after
    them (read from the day rows)."""

    start: date
    end: date
    first_week: date  # the first full week's Monday
    full_weeks: int

    @classmethod
    def of(cls, start: date, end: date) -> _Split:
        first_week = start + timedelta(days=(_WEEK - start.weekday()) % _WEEK)
        full_weeks = max(0, ((end - first_week).days + 1) // _WEEK)
        return cls(start, end, first_week, full_weeks)

    @property
    def week_zero(self) -> date:
        """Day 0 of the streak words: the Monday of the window's first day."""
        return monday(self.start)

    @property
    def words(self) -> int:
        days = (monday(self.end) - self.week_zero).days + _WEEK
        return -(-days // _FLAGS_PER_WORD)

    def params(self) -> dict[str, str]:
        after_weeks = self.first_week + timedelta(days=_WEEK * self.full_weeks)
        after_end = self.end + timedelta(days=1)
        if self.full_weeks == 0:
            edges = [(self.start, after_end), (after_end, after_end)]
        else:
            edges = [(self.start, self.first_week), (after_weeks, after_end)]
        return {
            "week_zero": self.week_zero.isoformat(),
            "w_from": self.first_week.isoformat(),
            "w_after": after_weeks.isoformat() if self.full_weeks else self.first_week.isoformat(),
            "e1_from": edges[0][0].isoformat(),
            "e1_to": edges[0][1].isoformat(),
            "e2_from": edges[1][0].isoformat(),
            "e2_to": edges[1][1].isoformat(),
        }


@dataclass
class _Fixes:
    """What the plain scans counted for the queued and opted-out days (`stored`), and what
    they should have counted (`fresh` for queued days, nothing of the doses when opted out)."""

    start: date
    live: set[_Key]
    excluded: set[_Key]
    stored: dict[_Key, list[int]] = field(default_factory=dict)
    fresh: dict[_Key, list[int]] = field(default_factory=dict)
    stored_supplements: dict[_Key, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    fresh_supplements: dict[_Key, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    @property
    def keys(self) -> set[_Key]:
        return self.live | self.excluded

    def _wanted(self, key: _Key) -> list[int]:
        row = list(self.fresh.get(key, [0] * _WIDTH) if key in self.live else self._was(key))
        if key in self.excluded:
            row[:_DOSE_PART] = [0] * _DOSE_PART
        return row

    def _was(self, key: _Key) -> list[int]:
        return self.stored.get(key, [0] * _WIDTH)

    def day_deltas(self) -> dict[_Key, list[int]]:
        return {
            key: [w - s for w, s in zip(self._wanted(key), self._was(key), strict=True)]
            for key in self.keys
        }

    def word_deltas(self) -> dict[tuple[int, int], int]:
        deltas: dict[tuple[int, int], int] = defaultdict(int)
        for key in self.keys:
            number = (date.fromisoformat(key[1]) - self.start).days
            shift = _FLAG_BITS * (number % _FLAGS_PER_WORD)
            change = _flag(self._wanted(key)) - _flag(self._was(key))
            deltas[(key[0], number // _FLAGS_PER_WORD)] += change << shift
        return deltas

    def supplement_deltas(self) -> dict[tuple[int, str], list[int]]:
        deltas: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * len(COUNT_COLUMNS))
        for key in self.keys:
            was = self.stored_supplements.get(key, {})
            if key in self.excluded:
                wanted: dict[str, list[int]] = {}
            elif key in self.live:
                wanted = self.fresh_supplements.get(key, {})
            else:
                wanted = was
            for name, numbers in wanted.items():
                _add(deltas[(key[0], name)], numbers)
            for name, numbers in was.items():
                _add(deltas[(key[0], name)], [-n for n in numbers])
        return deltas


def _flag(row: list[int]) -> int:
    """A day's streak flag: 1 every dose taken, 2 not, 0 no doses or some still open."""
    planned, on_time, late, pending = row[0], row[2], row[3], row[7]
    if planned == 0 or pending > 0:
        return 0
    return 1 if on_time + late == planned else 2


def _add(total: list[int], numbers: list[int]) -> None:
    for index, number in enumerate(numbers):
        total[index] += number


def _streaks(words: dict[int, int]) -> Streaks:
    """Current and longest run of days with every dose taken, from the packed day flags."""
    if not words:
        return Streaks()
    digits = "".join(
        format(words.get(word, 0), f"0{_FLAGS_PER_WORD}x")[::-1] for word in range(max(words) + 1)
    )
    runs = digits.replace("0", "").split("2")
    return Streaks(current=len(runs[-1]), longest=max(len(run) for run in runs))
