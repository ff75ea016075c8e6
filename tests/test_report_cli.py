"""`dosewise report adherence` as a real process: JSON, CSV and table agree with the read model."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from store.engine import create_engine
from store.migrate import head_revision
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
    assert "opted out, not counted: Ana Jensen 1 day\n" in table  # her opted-out day

    html = _run(database_url, *WINDOW, "--format", "html", "--person", ANA_PHONE).stdout
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count('class="dose on_time"') == 12


def test_one_line_errors(engine: Engine, database_url: str) -> None:
    seed(engine)
    for args, words in (
        (("--from", "2026-13-01"), "no such day"),
        (("--from", "1/12/2026"), "YYYY-MM-DD"),
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


def _one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dosewise: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_dates_outside_the_years_a_report_can_cover_are_one_line(
    engine: Engine, database_url: str
) -> None:
    seed(engine)
    for args, words in (
        (("--from", "1900-01-01", "--to", "9999-12-31"), ("9999-12-31", "between 1900 and 2200")),
        (("--from", "0001-01-01"), ("0001-01-01", "between 1900 and 2200")),
        (("--to", "1899-12-31"), ("1899-12-31", "between 1900 and 2200")),
        (("--from", "2201-01-01"), ("2201-01-01", "between 1900 and 2200")),
    ):
        _one_line_refusal(_run(database_url, *args), *words)


def test_a_window_longer_than_the_maximum_is_one_line(engine: Engine, database_url: str) -> None:
    seed(engine)
    for args in (
        ("--from", "1950-01-01"),
        ("--from", "1900-01-01", "--to", "2200-12-31"),
        ("--from", "2020-01-01", "--to", "2030-01-08"),  # 3661 days
    ):
        _one_line_refusal(_run(database_url, *args), "at most 3660 days")


def test_the_longest_window_is_answered(engine: Engine, database_url: str) -> None:
    seed(engine)
    # 2020-01-01 to 2030-01-07: 3660 days, one per row of the longest report
    done = _run(database_url, "--from", "2020-01-01", "--to", "2030-01-07", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["from"], report["to"]) == ("2020-01-01", "2030-01-07")


def test_a_database_without_its_tables_is_one_line(tmp_path: Path) -> None:
    """The version table says current, the tables are gone (a half-restored file, say)."""
    url = f"sqlite:///{tmp_path}/half.db"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql(f"INSERT INTO alembic_version VALUES ('{head_revision()}')")
    engine.dispose()
    for args in (
        ("adherence",),
        ("adherence", "--person", "1"),
        ("refresh",),
        ("refresh", "--all"),
    ):
        done = _report(url, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip().splitlines() == [
            f"dosewise: database {url}: no such table: "
            + ("people" if args[0] == "adherence" else "report_dirty_days")
        ]


def test_a_phone_is_found_as_people_write_it(engine: Engine, database_url: str) -> None:
    seed(engine)
    for typed in ("+1 212 555 0100", "+1-212-555-0100", "+1 (212) 555-0100"):
        done = _run(database_url, *WINDOW, "--format", "json", "--person", typed)
        assert done.returncode == 0, (typed, done.stderr)
        assert [p["id"] for p in json.loads(done.stdout)["people"]] == [BO]
    done = _run(database_url, *WINDOW, "--person", "+1 212 555 0199")
    assert done.returncode == 2 and "no person with id or phone '+1 212 555 0199'" in done.stderr
