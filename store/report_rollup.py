"""The adherence report's rollup: refreshed from the queue of changed days, read together
with the days still queued (aggregated live). Why it is built this way: store.reports.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from reports.adherence import Counts, DayLine, Deliveries, IronTiming, Streaks
from reports.timing import IRON
from store.report_sql import (
    COUNT_COLUMNS,
    DAY_EXTRAS,
    Dialect,
    day_rows,
    dialect_of,
    iron_broken,
    pairs_json,
    statement,
    supplement_rows,
)

# pg_advisory_xact_lock key of the refresh ("dwROLLUP"): one refresh at a time, so a slower
# one can never write older figures over a newer one's
ROLLUP_LOCK = 0x6477_524F_4C4C_5550
REFRESH_BATCH = 5000
# the streak flags of a day: 1 every dose taken, 2 not, 0 no closed doses (left out); 15
# days of 4-bit flags fit in one 64-bit integer
_FLAG_BITS, _FLAGS_PER_WORD = 4, 15
_DAY_COLUMNS = (*COUNT_COLUMNS, *DAY_EXTRAS)


class SqlReportRollup:
    """Keeps report_days and report_supplement_days equal to the direct aggregation."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = dialect_of(engine)

    def refresh(self, limit: int = REFRESH_BATCH) -> int:
        """Rebuild the rows of up to `limit` queued changes in one transaction; how many
        (person, day) were rebuilt."""
        with self._engine.begin() as connection:
            if self._sql.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK})
            # DELETE ... RETURNING claims exactly the queued rows it saw: a change committed
            # after this statement queues a row of its own, read by the next refresh
            claimed = connection.execute(
                text(
                    "DELETE FROM report_dirty_days WHERE id IN "
                    "(SELECT id FROM report_dirty_days ORDER BY id LIMIT :limit) "
                    "RETURNING person_id, day"
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


# -- reading -------------------------------------------------------------------------------


@dataclass
class RolledMeasures:
    """The dose measures of a window, as the report's store part needs them."""

    counts: dict[int, Counts] = field(default_factory=dict)
    days: list[DayLine] = field(default_factory=list)
    streaks: dict[int, Streaks] = field(default_factory=dict)
    supplements: dict[int, dict[str, Counts]] = field(default_factory=dict)
    deliveries: dict[int, Deliveries] = field(default_factory=dict)
    iron: dict[int, IronTiming] = field(default_factory=dict)


def _live_days(person: bool) -> str:
    """The window's queued days: their rollup rows may be stale, so they are read live."""
    where = "day >= :d_from AND day < :d_after" + (" AND person_id = :person" if person else "")
    return f"SELECT DISTINCT person_id, day FROM report_dirty_days WHERE {where}"


class RolledQueries:
    """Dose measures from the rollup plus the queued days aggregated live: equal to the direct
    aggregation at the moment of the read (the caller reads in one snapshot)."""

    def __init__(self, connection: Connection, sql: Dialect, params: dict[str, Any]) -> None:
        self._connection = connection
        self._sql = sql
        self._params = {**params, "iron": IRON}
        self._person = "person" in params
        self._excluded = "excluded" in params

    def measures(self, iron_min_hours: float) -> RolledMeasures:
        result = RolledMeasures()
        self._per_person(result)
        result.days = self._per_day()
        result.supplements = self._per_supplement()
        self._iron(result, iron_min_hours)
        return result

    def _with(self) -> str:
        """CTEs: live (the queued days), pday (every (person, day) of the window, rollup rows
        where current, live rows where queued) and xo (the opted-out days)."""
        sql, columns = self._sql, ", ".join(_DAY_COLUMNS)
        window = "d.day >= :d_from AND d.day < :d_after"
        if self._person:
            window += " AND d.person_id = :person"
        ctes = [
            f"live AS ({_live_days(self._person)})",
            f"""pday AS (
                SELECT d.person_id, d.day, {columns} FROM report_days d
                WHERE {window} AND NOT EXISTS
                    (SELECT 1 FROM live l WHERE l.person_id = d.person_id AND l.day = d.day)
                UNION ALL
                SELECT person_id, day, {columns} FROM ({day_rows(sql, "SELECT * FROM live")}) lv
            )""",
        ]
        if self._excluded:
            ctes.append(f"xo AS ({sql.pairs('excluded')})")
        return "WITH " + ", ".join(ctes)

    def _not_excluded(self, alias: str) -> str:
        if not self._excluded:
            return "1 = 1"
        return (
            f"NOT EXISTS (SELECT 1 FROM xo WHERE xo.person_id = {alias}.person_id "
            f"AND xo.day = {alias}.day)"
        )

    def _per_person(self, result: RolledMeasures) -> None:
        """Sums per person, and the streak flags of each day packed in integers: one grouped
        scan, the (person, day) rows stay in the database."""
        sql = self._sql
        if self._excluded:
            counted = "CASE WHEN xo.person_id IS NULL THEN 1 ELSE 0 END"
            joined = "pday p LEFT JOIN xo ON xo.person_id = p.person_id AND xo.day = p.day"
        else:
            counted, joined = "1", "pday p"
        day_number = sql.day_number.format(":d_from", "p.day")
        flag = (
            "CASE WHEN c = 1 AND planned > 0 AND pending = 0 THEN "
            "CASE WHEN on_time + late = planned THEN 1 ELSE 2 END ELSE 0 END"
        )
        dose_sums = ", ".join(
            f"sum(c * {name})" for name in (*COUNT_COLUMNS, "iron_taken", "iron_broken")
        )
        query = f"""
        {self._with()},
        counted AS (SELECT p.*, {counted} AS c, {day_number} AS n FROM {joined})
        SELECT person_id, n / {_FLAGS_PER_WORD} AS word, {dose_sums},
               sum(delivered), sum(failed), sum(email_fallback),
               sum(CAST({flag} AS bigint) * (CAST(1 AS bigint)
                   << ({_FLAG_BITS} * (n % {_FLAGS_PER_WORD})))) AS flags
        FROM counted GROUP BY person_id, n / {_FLAGS_PER_WORD}
        """
        totals: dict[int, list[int]] = defaultdict(lambda: [0] * 13)
        words: dict[int, dict[int, int]] = defaultdict(dict)
        for row in self._connection.execute(statement(query), self._params):
            person_id, word, *numbers, flags = row
            sums = totals[int(person_id)]
            for index, number in enumerate(numbers):
                sums[index] += int(number or 0)
            words[int(person_id)][int(word)] = int(flags or 0)
        for person_id, sums in totals.items():
            result.counts[person_id] = Counts(*sums[:8])
            result.iron[person_id] = IronTiming(taken=sums[8], gap_kept=sums[8] - sums[9])
            result.deliveries[person_id] = Deliveries(*sums[10:13])
            result.streaks[person_id] = _streaks(words[person_id])

    def _per_day(self) -> list[DayLine]:
        summed = ", ".join(f"sum(p.{name})" for name in COUNT_COLUMNS)
        query = f"""
        {self._with()}
        SELECT p.day, {summed} FROM pday p WHERE {self._not_excluded("p")}
        GROUP BY p.day HAVING sum(p.planned) > 0
        """
        lines = [
            DayLine(date.fromisoformat(row[0]), Counts(*(int(n) for n in row[1:])))
            for row in self._connection.execute(statement(query), self._params)
        ]
        return sorted(lines, key=lambda line: line.day)

    def _per_supplement(self) -> dict[int, dict[str, Counts]]:
        columns = ", ".join(COUNT_COLUMNS)
        summed = ", ".join(f"sum({name})" for name in COUNT_COLUMNS)
        window = "d.day >= :d_from AND d.day < :d_after"
        if self._person:
            window += " AND d.person_id = :person"
        query = f"""
        {self._with()}
        SELECT person_id, supplement, {summed} FROM (
            SELECT d.person_id, d.day, d.supplement, {columns} FROM report_supplement_days d
            WHERE {window} AND NOT EXISTS
                (SELECT 1 FROM live l WHERE l.person_id = d.person_id AND l.day = d.day)
            UNION ALL
            SELECT person_id, day, supplement, {columns}
            FROM ({supplement_rows(self._sql, "SELECT * FROM live")}) lv
        ) d WHERE {self._not_excluded("d")}
        GROUP BY person_id, supplement
        """
        result: dict[int, dict[str, Counts]] = defaultdict(dict)
        for row in self._connection.execute(statement(query), self._params):
            person_id, supplement, *numbers = row
            result[int(person_id)][str(supplement)] = Counts(*(int(n or 0) for n in numbers))
        return result

    def _iron(self, result: RolledMeasures, min_hours: float) -> None:
        """The live days' iron doses are checked here (their rows hold no iron_broken yet)."""
        excluded = self._excluded_pairs()
        broken = iron_broken(self._connection, self._sql, _live_days(self._person), self._params)
        lost: dict[int, int] = defaultdict(int)
        for (person_id, day), n in broken.items():
            if (person_id, day) not in excluded:
                lost[person_id] += n
        for person_id, timing in list(result.iron.items()):
            result.iron[person_id] = IronTiming(
                taken=timing.taken,
                gap_kept=timing.gap_kept - lost.get(person_id, 0),
                min_hours=min_hours,
            )

    def _excluded_pairs(self) -> set[tuple[int, str]]:
        if not self._excluded:
            return set()
        return {(int(p), str(d)) for p, d in json.loads(self._params["excluded"])}


def _streaks(words: dict[int, int]) -> Streaks:
    """Current and longest run of days with every dose taken, from the packed day flags."""
    if not words:
        return Streaks()
    digits = "".join(
        format(words.get(word, 0), f"0{_FLAGS_PER_WORD}x")[::-1] for word in range(max(words) + 1)
    )
    runs = digits.replace("0", "").split("2")
    return Streaks(current=len(runs[-1]), longest=max(len(run) for run in runs))
