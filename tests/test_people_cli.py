"""`dosewise db upgrade`, `people add` and `people list` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dosewise.cli import main
from store.migrate import head_revision

GOOD = """\
person:
  name: Ana Jensen
  phone: "+4520123456"
  email: ana@example.com
  channel: sms
  timezone: Europe/Copenhagen
  language: en  # written: a Danish number without it is warned about
  waking: {from: "07:00", to: "22:00"}
meals:
  - {name: breakfast, at: "07:30", contains: [dairy]}
supplements:
  - {name: iron, dose: "18 mg", deficiency_confirmed: true}
  - {name: vitamin C, dose: "250 mg"}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def on_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    return database_url


def regimen_file(tmp_path: Path, text: str, name: str = "ana.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_people_add_then_list(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "people", "add", regimen_file(tmp_path, GOOD))
    assert (status, err) == (0, "")
    assert out == "enrolled Ana Jensen (+4520123456) with regimen version 1\n"
    changed = regimen_file(tmp_path, GOOD.replace("18 mg", "9 mg"), "ana-2.yaml")
    status, out, _ = run(capsys, "people", "add", changed)
    assert (status, out) == (0, "Ana Jensen (+4520123456) now has regimen version 2\n")
    status, out, _ = run(capsys, "people", "list")
    header, line = out.splitlines()
    assert status == 0
    assert header.split() == ["id", "name", "phone", "channel", "time", "zone", "regimen", "state"]
    assert line.split() == [
        "1",
        "Ana",
        "Jensen",
        "+4520123456",
        "sms",
        "Europe/Copenhagen",
        "v2",
        "active",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD.replace("Europe/Copenhagen", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (GOOD.replace('"+4520123456"', "12345"), "person.phone"),
        ("person: [unclosed", "not valid YAML or JSON"),
    ],
)
def test_a_bad_file_is_one_line_and_writes_nothing(
    on_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    problem: str,
) -> None:
    status, out, err = run(capsys, "people", "add", regimen_file(tmp_path, text))
    assert (status, out) == (2, "")
    assert err.startswith("dosewise: ") and err.endswith("\n") and err.count("\n") == 1
    assert problem in err
    status, out, _ = run(capsys, "people", "list")
    assert (status, out) == (
        0,
        "nobody is enrolled yet: add someone with `dosewise people add FILE`\n",
    )


NOBODY = "nobody is enrolled yet: add someone with `dosewise people add FILE`\n"


@pytest.mark.parametrize(
    ("supplements", "problem"),
    [
        # 350 µg of selenium a day: over the upper limit, which refuses
        (
            '  - {name: selenium, dose: "200 mcg"}\n'
            '  - {name: selenomethionine, dose: "0.15 mg"}\n',
            "selenium-upper-limit",
        ),
        # iron and vitamin C fixed at different times: the pairing rule cannot hold
        (
            '  - {name: iron, dose: "18 mg", deficiency_confirmed: true, at: "10:00"}\n'
            '  - {name: vitamin C, dose: "250 mg", at: "15:00"}\n',
            "iron-with-vitamin-c",
        ),
    ],
)
def test_a_regimen_the_planner_refuses_is_not_enrolled(
    on_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    supplements: str,
    problem: str,
) -> None:
    text = GOOD.split("supplements:", maxsplit=1)[0] + "supplements:\n" + supplements
    status, out, err = run(capsys, "people", "add", regimen_file(tmp_path, text))
    assert (status, out) == (2, "")
    assert err.startswith("dosewise: ") and err.count("\n") == 1
    assert "is refused" in err and problem in err and "nothing was enrolled" in err
    assert run(capsys, "people", "list")[1] == NOBODY


def test_another_name_on_an_enrolled_phone_is_refused_unless_renamed(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "people", "add", regimen_file(tmp_path, GOOD))[0] == 0
    other = regimen_file(tmp_path, GOOD.replace("Ana Jensen", "Bo Berg"), "bo.yaml")
    status, out, err = run(capsys, "people", "add", other)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert "+4520123456 is enrolled as 'Ana Jensen', not 'Bo Berg'" in err
    assert "--rename" in err
    assert run(capsys, "people", "list")[1].splitlines()[1].split()[1:3] == ["Ana", "Jensen"]
    status, out, _ = run(capsys, "people", "add", other, "--rename")
    assert (status, out) == (0, "Bo Berg (+4520123456) now has regimen version 2\n")
    assert run(capsys, "people", "list")[1].splitlines()[1].split()[1:3] == ["Bo", "Berg"]


def test_the_first_days_plan_warnings_are_shown(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unconfirmed = GOOD.replace(", deficiency_confirmed: true", "")
    status, out, _ = run(capsys, "people", "add", regimen_file(tmp_path, unconfirmed))
    lines = out.splitlines()
    assert (status, lines[0]) == (0, "enrolled Ana Jensen (+4520123456) with regimen version 1")
    assert any(line.startswith("warning: ") and "iron" in line for line in lines[1:])


def test_a_cold_course_policy_outside_the_studied_dose_is_a_warning_at_enrolment(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heavy = GOOD + 'policy: {lozenge_dose: "100 mg", lozenges_per_day: 12}\n'
    status, out, _ = run(capsys, "people", "add", regimen_file(tmp_path, heavy))
    assert status == 0, out
    assert (
        "warning: a cold course: zinc during the course totals 1200 mg/day; the studies used "
        "80 to 92 mg/day"
    ) in out
    status, out, _ = run(capsys, "people", "add", regimen_file(tmp_path, GOOD, "bo.yaml"))
    assert "cold course" not in out  # the default policy: 6 lozenges of 14 mg, 84 mg/day


def test_a_missing_file_is_one_line(on_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "people", "add", "/nonexistent/ana.yaml")
    assert (status, err) == (2, "dosewise: /nonexistent/ana.yaml: no such file\n")


def test_db_upgrade_on_a_new_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", url)
    status, _, err = run(capsys, "people", "list")
    assert status == 2
    head = head_revision()
    assert err == (
        f"dosewise: database {url} does not exist yet: run `dosewise db upgrade` to create it\n"
    )
    assert not (tmp_path / "new.db").exists()  # refused before connecting: no empty file left
    status, out, _ = run(capsys, "db", "upgrade")
    assert (status, out) == (0, f"database {url} is at schema revision {head}\n")
    assert run(capsys, "people", "list")[0] == 0


def test_db_upgrade_on_a_migrated_database(
    on_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "db", "upgrade")
    assert (status, out.endswith(f"is at schema revision {head_revision()}\n")) == (0, True)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://dosewise:secret@127.0.0.1:1/dosewise",
        "sqlite:////nonexistent/directory/dosewise.db",
        "nosuchdb://somewhere/dosewise",
    ],
)
@pytest.mark.parametrize("command", [("db", "upgrade"), ("people", "list")])
def test_an_unreachable_database_is_one_line(
    url: str,
    command: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", url)
    status, out, err = run(capsys, *command)
    assert (status, out) == (2, "")
    assert err.startswith("dosewise: ") and err.count("\n") == 1
    assert "secret" not in err
