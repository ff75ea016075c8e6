"""Two real `dosewise scheduler` processes on one PostgreSQL database: exactly one acts, and
the other takes over within 10 s of the leader's `kill -9`, planning nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from schemas.files import load_regimen
from services.enrolment import enrol_person
from services.ports import ReminderPlan
from store.engine import create_engine, session_factory
from store.models import OutgoingMessageRow, ReminderRow
from store.unit_of_work import SqlUnitOfWork

EXAMPLE = Path(__file__).parent.parent / "examples" / "ana.yaml"
DOSEWISE = Path(sys.executable).with_name("dosewise")


def scheduler(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOSEWISE_DATABASE_URL": url}
    return subprocess.Popen([str(DOSEWISE), "scheduler"], env=env, stderr=log.open("wb"))


def wait_for(condition: Callable[[], bool], within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {within} s")


def test_one_leader_and_a_takeover_within_10_s(postgres_url: str, tmp_path: Path) -> None:
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    now = datetime.now(UTC)
    person_id = enrol_person(uow(), load_regimen(EXAMPLE), now).person_id

    def due_now(tag: str, count: int) -> None:
        plans = [
            ReminderPlan(
                person_id=person_id,
                slot_key=f"{tag}-{n}",
                kind="dose",
                due_at=datetime.now(UTC) - timedelta(seconds=1),
                window_closes_at=datetime.now(UTC) + timedelta(hours=1),
                items=[{"supplement": "iron", "dose": "18 mg", "name": "iron"}],
            )
            for n in range(count)
        ]
        with uow() as work:
            work.scheduling.save_reminders(plans, datetime.now(UTC))
            work.commit()

    def count(table: type[ReminderRow] | type[OutgoingMessageRow]) -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())

    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [scheduler(postgres_url, log) for log in logs]
    try:
        due_now("first", 10)
        wait_for(lambda: count(OutgoingMessageRow) == 10, within=15)
        leading = [i for i, log in enumerate(logs) if "scheduler: leading" in log.read_text()]
        assert len(leading) == 1, [log.read_text() for log in logs]
        leader, standby = leading[0], 1 - leading[0]
        wait_for(lambda: "scheduler: standing by" in logs[standby].read_text(), within=10)
        assert logs[standby].read_text().count("scheduler: standing by") == 1  # said once
        assert "standing by" not in logs[leader].read_text()
        planned = count(ReminderRow)

        processes[leader].send_signal(signal.SIGKILL)
        processes[leader].wait()
        killed = time.monotonic()
        due_now("second", 10)
        wait_for(lambda: count(OutgoingMessageRow) == 20, within=10)
        assert time.monotonic() - killed < 10
        assert "scheduler: leading" in logs[standby].read_text()
        # nothing planned or enqueued twice: the new leader found the rows already there
        assert count(ReminderRow) == planned + 10
        time.sleep(1.5)
        assert count(OutgoingMessageRow) == 20
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=10) in (0, -signal.SIGKILL)
        engine.dispose()
