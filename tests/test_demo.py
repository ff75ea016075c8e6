"""`dosewise demo` end to end, as a real process: its report must agree with its own messages.

The test reads the transcript the demo prints (what the phones got and answered) and counts
from it, independently of the database, what the adherence report should say; then it reads
the report back from the demo's database with `dosewise report adherence --format json` and
from the table the demo printed. The week spans Europe's spring-forward night (29 March 2026).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

FIRST_DAY = date(2026, 3, 26)  # Thursday; Copenhagen and Paris move their clocks on Sunday
DAYS = 7
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
NAMES = {"Ana": "Ana Jensen", "Ben": "Ben Carter", "Chloé": "Chloé Martin"}
LINE = re.compile(
    r"^  (?P<weekday>\w{3}) (?P<day>\d\d) (?P<time>\d\d:\d\d)  (?P<name>\S+)\s+"
    r"(?P<arrow>@<|@>|<|>)\s+(?P<text>.*)$"
)
DUE = re.compile(r"dosewise (\d\d:\d\d)")
FIRST_REMINDER = re.compile(r"^dosewise \d\d:\d\d: ")
DUE_IN_ANSWER = re.compile(r"\(the (\d\d:\d\d) reminder\)")


@dataclass
class Line:
    day: date
    at: datetime
    name: str
    arrow: str
    text: str


@dataclass
class Expected:
    """What the transcript says the report must hold for one person."""

    sent: int = 0
    on_time: int = 0
    late: int = 0
    skipped: int = 0
    colds: int = 0
    ended: int = 0
    taken_after_window: int = 0
    due: list[datetime] = field(default_factory=list)


def run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dosewise", "demo", *extra],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp_path = tmp_path_factory.mktemp("demo")
    done = run_demo(
        tmp_path,
        *("--start", FIRST_DAY.isoformat(), "--days", str(DAYS), "--seed", "3"),
        *("--database", "week.db", "--html", "week.html"),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return tmp_path, done.stdout


def transcript(stdout: str) -> list[Line]:
    lines = []
    for raw in stdout.splitlines():
        match = LINE.match(raw)
        if match is None:
            continue
        day = _date_of(match["weekday"], int(match["day"]))
        clock = time.fromisoformat(match["time"])
        lines.append(
            Line(day, datetime.combine(day, clock), match["name"], match["arrow"], match["text"])
        )
    return lines


def _date_of(weekday: str, day_of_month: int) -> date:
    # the simulation covers the window and a few hours on either side
    for offset in range(-2, DAYS + 2):
        candidate = FIRST_DAY + timedelta(days=offset)
        if candidate.day == day_of_month and f"{candidate:%a}" == weekday:
            return candidate
    raise AssertionError(f"{weekday} {day_of_month} is not near the demo's week")


def expected_from(lines: list[Line]) -> dict[str, Expected]:
    """Count doses sent, taken on time or late, and skipped, as the phones saw them."""
    expected: dict[str, Expected] = defaultdict(Expected)
    for line in lines:
        if not FIRST_DAY <= line.day <= LAST_DAY:
            continue
        person = expected[line.name]
        text = line.text
        if line.arrow in ("<", "@<") and _is_first_reminder(text):
            person.sent += 1
            found = DUE.search(text)
            assert found is not None, text
            person.due.append(datetime.combine(line.day, time.fromisoformat(found[1])))
        elif line.arrow in ("<", "@<") and "zinc lozenge" not in text:
            answer = text.removeprefix("page (200): ")
            if re.search(r"\blogged at\b", answer, re.IGNORECASE):
                # a reply answers the latest reminder sent before it (the habits never leave
                # two doses of one person waiting at once)
                due = max(d for d in person.due if d <= line.at)
                if line.at - due <= timedelta(minutes=30):
                    person.on_time += 1
                else:
                    person.late += 1
            elif "taken late" in answer:  # a TAKEN after the reminder's window closed
                person.late += 1
                person.taken_after_window += 1
            elif answer.startswith("Skipped: "):
                person.skipped += 1
            elif "cold course started" in answer:
                person.colds += 1
            elif "cold course has ended" in answer:
                person.ended += 1
    return expected


def _is_first_reminder(text: str) -> bool:
    """The first message of a dose: "dosewise 11:30: ..." (follow-ups and snoozes say more
    before the colon); lozenges are counted apart by the report."""
    return FIRST_REMINDER.match(text) is not None and "zinc lozenge" not in text


def report_json(tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "dosewise", "report", "adherence", "--format", "json"),
            *("--from", FIRST_DAY.isoformat(), "--to", LAST_DAY.isoformat()),
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOSEWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'week.db'}"},
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_report_agrees_with_the_messages_and_replies(demo: tuple[Path, str]) -> None:
    tmp_path, stdout = demo
    expected = expected_from(transcript(stdout))
    assert set(expected) == set(NAMES)
    people = {person["name"]: person for person in report_json(tmp_path)["people"]}
    for short, name in NAMES.items():
        mine, theirs = expected[short], people[name]
        assert theirs["sent"] == mine.sent > 0, name
        assert theirs["planned"] == mine.sent, name  # every planned dose went out
        assert (theirs["on_time"], theirs["late"]) == (mine.on_time, mine.late), name
        assert theirs["skipped"] == mine.skipped, name
        assert theirs["missed"] == mine.sent - mine.on_time - mine.late - mine.skipped, name
        colds = theirs["cold_courses"]
        assert colds["started"] == mine.colds, name
        assert colds["ended_early"] + colds["completed"] == mine.ended, name
    # the week has all of life in it: late, skipped and missing answers, and a cold
    assert sum(e.late for e in expected.values()) > 0
    assert sum(e.skipped for e in expected.values()) > 0
    assert sum(p["missed"] for p in people.values()) > 0
    assert expected["Ben"].colds == 1
    # one TAKEN came after its reminder's window closed, and is among the late
    assert sum(e.taken_after_window for e in expected.values()) == 1


def test_a_taken_after_the_window_closed_is_shown_and_counted_late(
    demo: tuple[Path, str],
) -> None:
    tmp_path, stdout = demo
    lines = transcript(stdout)
    [late] = [line for line in lines if line.arrow == "<" and "taken late" in line.text]
    # the evening dose, answered after the waking day (and with it the window) ended
    found = DUE_IN_ANSWER.search(late.text)
    assert found is not None, late.text
    assert late.at - datetime.combine(late.day, time.fromisoformat(found[1])) > timedelta(hours=1)
    assert f"{late.at:%a %d %H:%M}  {late.name}" in stdout.split("Taken after the reminder")[1]
    row = report_json(tmp_path)["people"]
    person = next(p for p in row if p["name"] == NAMES[late.name])
    assert person["late"] >= 1


def test_the_printed_report_is_the_database_report(demo: tuple[Path, str]) -> None:
    tmp_path, stdout = demo
    totals = report_json(tmp_path)["totals"]
    row = re.search(r"^\s+all\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", stdout, re.M)
    assert row is not None, stdout
    printed = [int(value) for value in row.groups()]
    assert printed == [
        totals[key] for key in ("planned", "sent", "on_time", "late", "skipped", "missed")
    ]


def test_the_tally_the_demo_prints_matches_its_transcript(demo: tuple[Path, str]) -> None:
    _tmp_path, stdout = demo
    expected = expected_from(transcript(stdout))
    tally = stdout[stdout.index("What the phones saw") :]
    for short in NAMES:
        row = re.search(rf"^{short}\s+(\d+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s+(\d+)", tally, re.M)
        assert row is not None, tally
        mine = expected[short]
        assert [int(value) for value in row.groups()] == [
            mine.sent,
            mine.on_time + mine.late,
            mine.skipped,
        ]


def test_the_html_report_is_written_where_it_says(demo: tuple[Path, str]) -> None:
    tmp_path, stdout = demo
    html_path = tmp_path / "week.html"
    assert f"HTML report: {html_path.resolve()}" in stdout
    html = html_path.read_text(encoding="utf-8")
    assert all(name in html for name in NAMES.values())
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)


def test_the_sms_days_cross_spring_forward_at_the_same_local_times(demo: tuple[Path, str]) -> None:
    _tmp_path, stdout = demo
    ana = [line for line in transcript(stdout) if line.name == "Ana" and line.arrow == "<"]
    iron = Counter(
        f"{line.at:%H:%M}" for line in ana if _is_first_reminder(line.text) and "iron" in line.text
    )
    assert iron == Counter({"11:30": DAYS})


def test_a_named_database_that_exists_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "mine.db").write_text("precious")
    done = run_demo(tmp_path, "--database", "mine.db", "--days", "1")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "already exists" in done.stderr
    assert (tmp_path / "mine.db").read_text() == "precious"


@pytest.mark.parametrize("days", ["0", "400", "x"])
def test_bad_days_are_refused_in_one_line(tmp_path: Path, days: str) -> None:
    done = run_demo(tmp_path, "--days", days)
    assert done.returncode == 2
    assert done.stderr.startswith("dosewise: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("html", "words"),
    [("missing-folder/r.html", "missing-folder is not a directory"), (".", "is a directory")],
)
def test_an_unwritable_html_path_is_refused_before_anything_runs(
    tmp_path: Path, html: str, words: str
) -> None:
    done = run_demo(tmp_path, "--quiet", "--days", "1", "--database", "new.db", "--html", html)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dosewise: --html "), done.stderr
    assert words in lines[0], lines[0]
    assert done.stdout == ""  # refused up front: nothing was simulated
    assert not (tmp_path / "new.db").exists()


def test_html_never_overwrites_a_file_that_is_not_a_page(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes")
    done = run_demo(
        tmp_path, "--quiet", "--days", "1", "--database", "new.db", "--html", "notes.txt"
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dosewise: --html notes.txt exists and is not an HTML page; it is left alone"
    ]
    assert precious.read_text() == "my notes"
    # the default database, replaced by each run, is no report's place either
    done = run_demo(tmp_path, "--quiet", "--days", "1", "--html", "dosewise-demo.db")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dosewise: --html dosewise-demo.db is the demo's database; name another file"
    ]


def test_a_start_outside_the_years_is_refused_in_one_line(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--start", "9999-12-31", "--days", "1", "--database", "new.db")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "between 1900 and 2200" in done.stderr
