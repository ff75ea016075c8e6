"""`dosewise report adherence` as a real process: JSON, CSV and table agree with the read model."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy.engine import Engine

from tests.report_seed import ANA, ANA_PHONE, BO, END, EXPECTED, START, seed


def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _report(database_url, "adherence", *args)


def _report(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOSEWISE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "dosewise", "report", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


WINDOW = ("--from", START.isoformat(), "--to", END.isoformat())


def test_json_csv_table_agree(engine: Engine, database_url: str) -> None:
    seed(engine)
    done = _run(database_url, *WINDOW, "--format", "json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    people = {person["id"]: person for person in report["people"]}
    assert people[ANA]["taken"] == EXPECTED[ANA]["taken"]
    assert people[ANA]["streak"] == EXPECTED[ANA]["streak"]
    assert report["totals"]["adherence"] == EXPECTED["totals"]["adherence"]

    rows = list(csv.DictReader(io.StringIO(_run(database_url, *WINDOW, "--format", "csv").stdout)))
    whole = {int(row["person_id"]): row for row in rows if row["supplement"] == ""}
    for person_id in (ANA, BO):
        for key in ("planned", "sent", "on_time", "late", "skipped", "missed", "open"):
            assert int(whole[person_id][key]) == people[person_id][key]
        assert (
            int(whole[person_id]["iron_gap_kept"]) == people[person_id]["iron_timing"]["gap_kept"]
        )
    iron = next(r for r in rows if r["person_id"] == str(ANA) and r["supplement"] == "iron")
    assert int(iron["planned"]) == EXPECTED[ANA]["supplements"]["iron"]["planned"]

    table = _run(database_url, *WINDOW).stdout
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "Ana Jensen" in table
    assert "iron timing: 7 of 8 taken kept 3 h" in table

    html = _run(database_url, *WINDOW, "--format", "html", "--person", ANA_PHONE).stdout
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count('class="dose on_time"') == 12


def test_one_line_errors(engine: Engine, database_url: str) -> None:
    seed(engine)
    for args, words in (
        (("--from", "2026-13-01"), "YYYY-MM-DD"),
        (("--person", "+4500000000"), "no person"),
        (("--from", "2026-11-05", "--to", "2026-11-01"), "before"),
    ):
        done = _run(database_url, *args)
        assert done.returncode == 2
        assert words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_defaults_to_the_last_30_days(engine: Engine, database_url: str) -> None:
    seed(engine)
    done = _run(database_url, "--format", "json", "--person", str(BO))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    from datetime import date

    assert (date.fromisoformat(report["to"]) - date.fromisoformat(report["from"])).days == 29


def test_refresh_rebuilds_the_queued_days(engine: Engine, database_url: str) -> None:
    seed(engine)
    before = _run(database_url, *WINDOW, "--format", "json")
    done = _report(database_url, "refresh")
    assert done.returncode == 0, done.stderr
    # Ana's 11 days (one with a lozenge only) and Bo's 12 (two outside the window)
    assert done.stdout == "report rollup: 22 person-days rebuilt\n"
    again = _report(database_url, "refresh")
    assert again.stdout == "report rollup: 0 person-days rebuilt\n"
    after = _run(database_url, *WINDOW, "--format", "json")
    generated = '"generated_at"'
    assert [line for line in after.stdout.splitlines() if generated not in line] == [
        line for line in before.stdout.splitlines() if generated not in line
    ]
