"""/healthz and /readyz tell the truth: the database counts as up only when it takes a write
(reads alone pass on a full disk or a read-only database), a pooled connection the database
dropped costs no false 503, and readiness holds while the spool keeps what comes in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from services.health import Health, SpoolState
from store.engine import create_engine
from store.errors import DatabaseUnavailable
from store.health import SqlDatabaseProbe
from tests.conftest import end_other_backends
from tests.outages import Switchable, sqlite_on_small_disk, switchable, wait_until
from tests.tracker_client import AUTH_TOKEN, NOW, PUBLIC_URL, Tracker
from tracker.spool import InboundSpool, SpoolLimits

__all__ = ["switchable"]


@pytest.fixture
def tracker(switchable: Switchable, tmp_path: Path) -> Iterator[Tracker]:
    tracker = Tracker(switchable.engine)
    settings = Settings(
        database_url=switchable.url, public_url=PUBLIC_URL, twilio_auth_token=AUTH_TOKEN
    )
    app = tracker_app(
        settings,
        database_on(switchable.engine),
        tracker.clock,
        spool=InboundSpool(tmp_path / "spool", SpoolLimits(max_bytes=64 * 1024)),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        tracker.client = client
        yield tracker


def test_healthz_is_ok_when_a_write_succeeds_and_reports_the_empty_spool(
    tracker: Tracker,
) -> None:
    answer = tracker.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "up",
        "spool": {"depth": 0, "oldest_s": None, "accepting": True},
    }
    assert tracker.client.get("/readyz").json()["status"] == "ready"


def test_while_the_database_is_away_health_fails_and_readiness_holds_on_the_spool(
    switchable: Switchable, tracker: Tracker
) -> None:
    switchable.away()
    assert tracker.sms("TAKEN").status_code == 200  # kept
    health = tracker.client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["database"] == "down"
    assert health.json()["spool"]["depth"] == 1
    ready = tracker.client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    metrics = tracker.client.get("/metrics").text
    assert "dosewise_tracker_database_up 0.0" in metrics
    assert "dosewise_tracker_spool_depth 1.0" in metrics
    switchable.back()
    wait_until(lambda: tracker.client.get("/healthz").status_code == 200, 15, "healthy again")
    replayed = 'dosewise_tracker_spool_replayed_total{route="/twilio/sms"} '
    # the replay's counter moves after its commit, which a busy machine may show a moment later
    wait_until(lambda: replayed in tracker.client.get("/metrics").text, 5, "replay counted")
    metrics = tracker.client.get("/metrics").text
    assert "dosewise_tracker_database_up 1.0" in metrics
    assert "dosewise_tracker_spool_depth 0.0" in metrics
    assert f"{replayed}1.0" in metrics


def test_a_full_sqlite_disk_fails_the_check_although_reads_still_work(
    sqlite_template: Path,
) -> None:
    with sqlite_on_small_disk(sqlite_template) as (url, disk):
        engine = create_engine(url)
        try:
            probe = SqlDatabaseProbe(engine)
            probe.check_writable()
            disk.fill()
            with engine.connect() as connection:  # a read, as the check once was
                assert connection.exec_driver_sql("SELECT count(*) FROM people").scalar() == 0
            with pytest.raises(DatabaseUnavailable, match="full"):
                probe.check_writable()
            disk.free()
            probe.check_writable()
        finally:
            engine.dispose()


def _read_only(url: str, on: bool) -> None:
    name = make_url(url).database
    admin = sqlalchemy.create_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as connection:
        value = "on" if on else "off"
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}'
        )
    admin.dispose()


def test_a_read_only_postgresql_fails_the_check_although_reads_still_work(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, pool_size=1, pre_ping=False)
    probe = SqlDatabaseProbe(engine)
    try:
        probe.check_writable()
        _read_only(postgres_url, True)
        end_other_backends(postgres_url)  # new sessions read the setting
        engine.dispose()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        with pytest.raises(DatabaseUnavailable, match="read-only"):
            probe.check_writable()
    finally:
        _read_only(postgres_url, False)
        engine.dispose()


def test_after_postgresql_ended_every_session_the_first_probe_is_ok(postgres_url: str) -> None:
    """After a restart the pooled connection is dead; the check tries once more on a fresh
    connection before it says 503, so an orchestrator does not restart a healthy tracker."""
    engine = create_engine(postgres_url, pool_size=1, pre_ping=False)  # the tracker's kind
    tracker = Tracker(engine)
    app = tracker_app(Settings(database_url=postgres_url), database_on(engine), tracker.clock)
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200  # the pool holds a connection
            assert end_other_backends(postgres_url) >= 1
            first = client.get("/healthz")
            assert (first.status_code, first.json()["database"]) == (200, "up")
    finally:
        engine.dispose()


def test_health_reports_down_while_replays_fail_even_if_the_probe_writes() -> None:
    """A probe's small rewrite can pass where the replies' inserts fail (a disk full but for
    a page); replays that keep failing say the database is down."""
    failing = SpoolState(depth=3, oldest_s=40.0, accepting=True, replay_failing="disk full")
    health = Health(None, failing)
    assert (health.healthy, health.ready, health.reason) == (False, True, "disk full")
    assert health.as_dict()["database"] == "down"
    full = SpoolState(depth=3, oldest_s=40.0, accepting=False, replay_failing="disk full")
    assert not Health(None, full).ready
    assert Health("gone", None).as_dict(readiness=True) == {
        "status": "unavailable",
        "database": "down",
    }


def test_oldest_kept_age_is_measured_on_the_trackers_clock(
    switchable: Switchable, tracker: Tracker
) -> None:
    switchable.away()
    assert tracker.sms("TAKEN").status_code == 200
    tracker.now = NOW + timedelta(seconds=42)
    assert tracker.client.get("/readyz").json()["spool"]["oldest_s"] == 42.0
