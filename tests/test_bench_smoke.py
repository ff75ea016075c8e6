"""Every benchmark still runs: each `bench/` script at a small size completes and prints its
figures. A smoke run, not a measurement: the figures are not compared with the goals here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PostgresServer

ROOT = Path(__file__).resolve().parent.parent

SMALL_RUNS = {
    "plan.py": (["--count", "300"], "plans/s"),
    "schedule.py": (["--people", "200", "--events", "20"], "event"),
    "notify.py": (
        ["--count", "300", "--late-count", "100", "--rate", "100", "--processes", "1"],
        "lateness",
    ),
    "report.py": (["--people", "30", "--days", "7", "--runs", "1"], "report for one person"),
    "webhook.py": (["--seconds", "1", "--rate", "50", "--people", "200", "--workers", "1"], "p99"),
}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert {path.name for path in (ROOT / "bench").glob("*.py")} == set(SMALL_RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL_RUNS))
def test_the_benchmark_runs_and_prints_its_figures(
    script: str, postgres_server: PostgresServer
) -> None:
    arguments, figure = SMALL_RUNS[script]
    server = postgres_server.url.render_as_string(hide_password=False)
    environment = {**os.environ, "DOSEWISE_TEST_POSTGRES_URL": server}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert figure in result.stdout, result.stdout[-2000:]
