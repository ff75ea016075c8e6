"""SQL shared by the adherence report's direct aggregation and its rollup (store.reports).

A *day source* is a SELECT of (person_id, day) pairs, `day` the local date as YYYY-MM-DD;
`day_rows` and `supplement_rows` aggregate the reminders and messages of exactly those days,
which is how the rollup is built and how the days it does not hold yet are read live.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import TextClause, TextualSelect, bindparam, text
from sqlalchemy.engine import Connection, Engine

from reports.adherence import ON_TIME_MINUTES
from reports.timing import CALCIUM, IRON, IronGaps
from schemas.regimen import Regimen
from store.types import UTCDateTime

COUNT_COLUMNS = ("planned", "sent", "on_time", "late", "skipped", "missed", "expired", "pending")
# the rollup's per-day columns after the counts, in table order
DAY_EXTRAS = ("iron_taken", "iron_broken", "delivered", "failed", "email_fallback")
DAY = "substr(r.slot_key, 1, 10)"


@dataclass(frozen=True)
class Dialect:
    """The few SQL fragments SQLite and PostgreSQL spell differently."""

    name: str
    on_time: str  # a confirmed reminder's confirmed_at within ON_TIME_MINUTES of due_at
    pairs_prefix: str  # rows (person_id, day) of a JSON text parameter: prefix + name + suffix
    pairs_suffix: str
    items: str  # FROM-clause fragment unnesting alias s's items as alias e
    reminder_items: str  # the same for alias r
    supplement: str  # the canonical supplement name of e
    has_supplement: str  # true when r.items holds the supplement :supplement
    has_iron: str  # true when r.items holds the supplement :iron
    day_lo: str  # format: the instant a day before the local date {0} began in UTC
    day_hi: str  # format: two days after
    day_number: str  # format: days from date {0} to date {1}, both YYYY-MM-DD
    plus_week: str  # format: the date 7 days after date {0}, YYYY-MM-DD

    def pairs(self, parameter: str) -> str:
        return f"{self.pairs_prefix}:{parameter}{self.pairs_suffix}"


POSTGRESQL = Dialect(
    name="postgresql",
    on_time=f"r.confirmed_at <= r.due_at + interval '{ON_TIME_MINUTES} minutes'",
    pairs_prefix=(
        "SELECT (x.value->>0)::integer AS person_id, x.value->>1 AS day "
        "FROM jsonb_array_elements(CAST("
    ),
    pairs_suffix=" AS jsonb)) AS x(value)",
    items="CROSS JOIN LATERAL jsonb_array_elements(s.items) AS e(value)",
    reminder_items="CROSS JOIN LATERAL jsonb_array_elements(r.items) AS e(value)",
    supplement="e.value->>'supplement'",
    has_supplement=(
        "r.items @> jsonb_build_array(jsonb_build_object('supplement', CAST(:supplement AS text)))"
    ),
    has_iron="r.items @> jsonb_build_array(jsonb_build_object('supplement', CAST(:iron AS text)))",
    day_lo="(CAST({0} AS timestamp) AT TIME ZONE 'UTC') - interval '1 day'",
    day_hi="(CAST({0} AS timestamp) AT TIME ZONE 'UTC') + interval '2 days'",
    day_number="(CAST({1} AS date) - CAST({0} AS date))",
    plus_week="to_char(CAST({0} AS date) + 7, 'YYYY-MM-DD')",
)
SQLITE = Dialect(
    name="sqlite",
    # julianday keeps milliseconds: allow one for the floating point
    on_time=(
        f"(julianday(r.confirmed_at) - julianday(r.due_at)) * 86400.0 <= {ON_TIME_MINUTES * 60}.001"
    ),
    pairs_prefix=(
        "SELECT json_extract(x.value, '$[0]') AS person_id, "
        "json_extract(x.value, '$[1]') AS day "
        "FROM json_each("
    ),
    pairs_suffix=") AS x",
    items="CROSS JOIN json_each(s.items) AS e",
    reminder_items="CROSS JOIN json_each(r.items) AS e",
    supplement="json_extract(e.value, '$.supplement')",
    has_supplement=(
        "EXISTS (SELECT 1 FROM json_each(r.items) AS i "
        "WHERE json_extract(i.value, '$.supplement') = :supplement)"
    ),
    has_iron=(
        "EXISTS (SELECT 1 FROM json_each(r.items) AS i "
        "WHERE json_extract(i.value, '$.supplement') = :iron)"
    ),
    day_lo="datetime({0}, '-1 day')",
    day_hi="datetime({0}, '+2 days')",
    day_number="CAST(julianday({1}) - julianday({0}) AS INTEGER)",
    plus_week="date({0}, '+7 days')",
)


def dialect_of(engine: Engine | Connection) -> Dialect:
    return POSTGRESQL if engine.dialect.name == "postgresql" else SQLITE


def pairs_json(pairs: Iterable[tuple[int, str]]) -> str:
    return json.dumps(sorted(set(pairs)))


# -- aggregation of the reminders of a day source ------------------------------------------


# the day source that is every reminder's day (a full rebuild: scans instead of index probes)
EVERY_DAY = "every day"


def _day(source: str) -> str:
    return DAY if source == EVERY_DAY else "s.day"


def _reminders_of(sql: Dialect, source: str) -> str:
    """FROM the source's days joined to their reminders; the due_at range lets the
    (person_id, due_at, slot_key) index find them (every zone is within 14 h of UTC)."""
    if source == EVERY_DAY:
        return "FROM reminders r "
    return (
        f"FROM ({source}) s JOIN reminders r ON r.person_id = s.person_id "
        f"AND r.due_at >= {sql.day_lo.format('s.day')} "
        f"AND r.due_at < {sql.day_hi.format('s.day')} AND {DAY} = s.day "
    )


SENT_JOINS = (
    "LEFT JOIN outgoing_messages m1 ON m1.reminder_id = r.id AND m1.purpose = 'initial' "
    "AND m1.status IN ('sent', 'delivered') "
    "LEFT JOIN outgoing_messages m2 ON m2.reminder_id = r.id "
    "AND m2.purpose = 'initial-email' AND m2.status IN ('sent', 'delivered') "
)
DOSES = "r.kind = 'dose' AND r.status <> 'cancelled'"


def dose_flags(sql: Dialect) -> list[str]:
    """One 0/1 expression per count column, for one dose reminder r (joined to m1, m2)."""
    return [
        "1",
        "CASE WHEN m1.id IS NOT NULL OR m2.id IS NOT NULL THEN 1 ELSE 0 END",
        f"CASE WHEN r.status = 'confirmed' AND {sql.on_time} THEN 1 ELSE 0 END",
        f"CASE WHEN r.status = 'confirmed' AND NOT ({sql.on_time}) THEN 1 ELSE 0 END",
        "CASE WHEN r.status = 'skipped' THEN 1 ELSE 0 END",
        "CASE WHEN r.status = 'missed' THEN 1 ELSE 0 END",
        "CASE WHEN r.status = 'expired' THEN 1 ELSE 0 END",
        "CASE WHEN r.status IN ('planned', 'queued', 'sent') THEN 1 ELSE 0 END",
    ]


def day_rows(sql: Dialect, source: str) -> str:
    """Per (person_id, day) of the source: the rollup's columns (iron_broken is 0 here: the
    gap check is Python's, see `iron_broken`). Needs the parameter :iron."""
    doses = ", ".join(
        f"{flag} AS {name}" for flag, name in zip(dose_flags(sql), COUNT_COLUMNS, strict=True)
    )
    zeros = ", ".join(f"0 AS {name}" for name in COUNT_COLUMNS)
    summed = ", ".join(f"sum({name}) AS {name}" for name in (*COUNT_COLUMNS, *DAY_EXTRAS))
    return f"""
    SELECT person_id, day, {summed} FROM (
        SELECT r.person_id, {_day(source)} AS day, {doses},
               CASE WHEN r.status = 'confirmed' AND {sql.has_iron} THEN 1 ELSE 0 END
                   AS iron_taken,
               0 AS iron_broken, 0 AS delivered, 0 AS failed, 0 AS email_fallback
        {_reminders_of(sql, source)} {SENT_JOINS} WHERE {DOSES}
        UNION ALL
        SELECT r.person_id, {_day(source)} AS day, {zeros}, 0 AS iron_taken, 0 AS iron_broken,
               CASE WHEN m.status = 'delivered' THEN 1 ELSE 0 END AS delivered,
               CASE WHEN m.status = 'failed' THEN 1 ELSE 0 END AS failed,
               CASE WHEN m.purpose LIKE '%-email' THEN 1 ELSE 0 END AS email_fallback
        {_reminders_of(sql, source)} JOIN outgoing_messages m ON m.reminder_id = r.id
    ) x GROUP BY person_id, day
    """


def supplement_rows(sql: Dialect, source: str) -> str:
    """Per (person_id, day, supplement) of the source: the counts of the doses holding it."""
    summed = ", ".join(
        f"sum({flag}) AS {name}" for flag, name in zip(dose_flags(sql), COUNT_COLUMNS, strict=True)
    )
    return f"""
    SELECT r.person_id, {_day(source)} AS day, {sql.supplement} AS supplement, {summed}
    {_reminders_of(sql, source)} {SENT_JOINS} {sql.reminder_items}
    WHERE {DOSES}
    GROUP BY r.person_id, {_day(source)}, {sql.supplement}
    """


def iron_broken(
    connection: Connection, sql: Dialect, source: str, params: dict[str, Any]
) -> dict[tuple[int, str], int]:
    """Per (person_id, day) of the source: the iron doses taken that broke the gap of the iron
    Apart rule (only days with one appear). Python, not SQL: the meals and medicines are wall
    times of the regimen in the person's zone."""
    reminders = _reminders_of(sql, source)
    taken = connection.execute(
        statement(
            f"SELECT r.person_id, r.regimen_id, {_day(source)} AS day, r.confirmed_at {reminders} "
            f"WHERE {DOSES} AND r.status = 'confirmed' AND {sql.has_iron}",
            confirmed_at=UTCDateTime(),
        ),
        {**params, "iron": IRON},
    ).all()
    if not taken:
        return {}
    calcium: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for row in connection.execute(
        statement(
            f"SELECT r.person_id, {_day(source)} AS day, r.due_at {reminders} WHERE {DOSES} "
            f"AND {sql.has_supplement}",
            due_at=UTCDateTime(),
        ),
        {**params, "supplement": CALCIUM},
    ):
        calcium[(row.person_id, row.day)].append(row.due_at)
    gaps = IronGaps()
    load_regimens(connection, gaps, {row.regimen_id for row in taken})
    broken: dict[tuple[int, str], int] = defaultdict(int)
    for row in taken:
        key = (row.person_id, row.day)
        if not gaps.kept(
            row.regimen_id, date.fromisoformat(row.day), row.confirmed_at, calcium.get(key, ())
        ):
            broken[key] += 1
    return dict(broken)


def load_regimens(connection: Connection, gaps: IronGaps, ids: Iterable[int | None]) -> None:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return
    query = text("SELECT id, body FROM regimens WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    validated: dict[str, Regimen | None] = {}
    for row in connection.execute(query, {"ids": wanted}):
        body = row.body if isinstance(row.body, dict) else json.loads(row.body)
        # people with one routine (zone, meals, medicines, fixed-time doses: the iron gaps
        # read those of the day before and after) share one validated regimen
        fixed = [
            [entry.get("name"), entry.get("at")]
            for entry in body.get("supplements") or ()
            if entry.get("at") is not None
        ]
        routine = json.dumps(
            [body["person"]["timezone"], body.get("meals"), body.get("medications"), fixed],
            sort_keys=True,
        )
        if routine not in validated:
            validated[routine] = _readable(body)
        regimen = validated[routine]
        if regimen is not None:
            gaps.add_regimen(row.id, regimen)


def _readable(body: dict[str, Any]) -> Regimen | None:
    """The stored regimen, or None when today's rules refuse what an earlier dosewise let
    in: its iron gaps are then not judged, rather than the report failing for everyone."""
    try:
        return Regimen.model_validate(body)
    except ValidationError:
        return None


def instants(*names: str) -> list[Any]:
    return [bindparam(name, type_=UTCDateTime()) for name in names]


def statement(sql: str, **columns: Any) -> TextClause | TextualSelect:
    """A text statement whose :lo and :hi (when used) are instants, typed result columns."""
    clause = text(sql)
    used = [name for name in ("lo", "hi") if f":{name}" in sql]
    if used:
        clause = clause.bindparams(*instants(*used))
    return clause.columns(**columns) if columns else clause
