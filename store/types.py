"""Column types shared by the models: instants in UTC, ids and JSON that suit both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY, so big ids are plain INTEGER there
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL compares and indexes; SQLite stores JSON as text either way
Json = JSON().with_variant(JSONB(), "postgresql")


class NaiveDateTimeError(ValueError):
    """A datetime without a time zone reached the database layer."""


def require_aware(value: datetime) -> datetime:
    """`value`, when it is an instant; NaiveDateTimeError for a wall time without a zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDateTimeError(f"naive datetime {value.isoformat()} refused: pass an aware one")
    return value


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: refuses naive datetimes, stores UTC, always reads back aware UTC.

    SQLite has no time-zone type, so the UTC wall time is stored there without an offset.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        instant = require_aware(value).astimezone(UTC)
        return instant.replace(tzinfo=None) if dialect.name == "sqlite" else instant

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
