"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from store.errors import SchemaNotCurrent
from store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from store.models import PersonRow, metadata
from store.types import NaiveDateTimeError


def differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrations_and_models_agree(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert differences(engine) == []


def test_upgrade_again_changes_nothing(database_url: str, engine: Engine) -> None:
    assert upgrade(database_url) == head_revision()
    assert differences(engine) == []


def test_downgrade_to_nothing_and_back(database_url: str, engine: Engine) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert current_revision(engine) is None
    upgrade(database_url)
    assert differences(engine) == []


def test_a_revision_of_another_dosewise_is_refused_and_left_alone(
    database_url: str, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    said = f"has schema revision 0099, which this dosewise (schema {head_revision()}) does not know"
    with pytest.raises(SchemaNotCurrent, match=re.escape(said)) as upgrading:
        upgrade(database_url)
    assert "db upgrade" not in str(upgrading.value)  # it could not help
    with pytest.raises(SchemaNotCurrent, match=re.escape(said)):
        require_current(engine)
    assert current_revision(engine) == "0099"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head_revision()}'")


def person(created_at: datetime) -> dict[str, object]:
    return {
        "name": "Ana",
        "phone": "+4520123456",
        "email": None,
        "channel": "sms",
        "timezone": "Europe/Copenhagen",
        "active": True,
        "opted_out": False,
        "created_at": created_at,
        "updated_at": created_at,
    }


def test_instants_come_back_as_utc(engine: Engine) -> None:
    copenhagen_winter = timezone(timedelta(hours=1))
    written = datetime(2026, 11, 23, 8, 30, tzinfo=copenhagen_winter)
    with engine.begin() as connection:
        connection.execute(insert(PersonRow), person(written))
    with engine.connect() as connection:
        read = connection.scalar(select(PersonRow.created_at))
    assert read == written
    assert read is not None
    assert read.tzinfo == UTC
    assert read.hour == 7


def test_naive_instants_are_refused(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(StatementError) as raised:
        connection.execute(insert(PersonRow), person(datetime(2026, 11, 23, 8, 30)))
    assert isinstance(raised.value.orig, NaiveDateTimeError)
    with engine.connect() as connection:
        assert connection.scalar(select(PersonRow.id)) is None
