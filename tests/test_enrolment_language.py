"""`dosewise people add` warns, in one line and still enrolling, when the phone number is of a
country whose language dosewise writes (+45: Danish) but the regimen file set no
`person.language`, so the person would get English texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dosewise.cli import main
from schemas.files import parse_regimen_text
from services.enrolment import LanguageHint, language_hint

PERSON = """\
person:
  name: Ana Jensen
  phone: "{phone}"
  timezone: Europe/Copenhagen
{language}supplements:
  - {{name: vitamin C, dose: "250 mg"}}
"""


def regimen_text(phone: str, language: str | None = None) -> str:
    written = "" if language is None else f"  language: {language}\n"
    return PERSON.format(phone=phone, language=written)


@pytest.fixture
def on_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    monkeypatch.delenv("DOSEWISE_LANGUAGE", raising=False)
    return database_url


def add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> tuple[int, list[str], str, str]:
    path = tmp_path / "ana.yaml"
    path.write_text(text, encoding="utf-8")
    status = main(["people", "add", str(path)])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err, str(path)


def listed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["people", "list"]) == 0
    return capsys.readouterr().out.splitlines()[1:]


def test_a_danish_number_without_a_language_is_warned_about_and_still_enrolled(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err, path = add(tmp_path, capsys, regimen_text("+45 20 12 34 56"))
    assert (status, err) == (0, "")
    assert lines == [
        "enrolled Ana Jensen (+4520123456) with regimen version 1",
        f"warning: +4520123456 is a number in Denmark and {path} sets no person.language: "
        "Ana Jensen will get texts in English; write `language: da` under person if they "
        "read Danish",
    ]
    assert [line.split()[3] for line in listed(capsys)] == ["+4520123456"]


@pytest.mark.parametrize(
    ("phone", "language"),
    [
        ("+4520123456", "da"),
        ("+4520123456", "en"),  # written: the admin chose English for this Dane
        ("+12125550100", None),  # the United States read English, the default
        ("+4915112345678", None),  # Germany reads German, which dosewise does not write
    ],
)
def test_no_warning_when_the_language_is_written_or_no_other_one_fits(
    on_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    phone: str,
    language: str | None,
) -> None:
    status, lines, err, _path = add(tmp_path, capsys, regimen_text(phone, language))
    assert (status, err) == (0, "")
    assert lines == [f"enrolled Ana Jensen ({phone}) with regimen version 1"]
    assert len(listed(capsys)) == 1


def test_the_warning_is_in_the_admins_language(
    on_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOSEWISE_LANGUAGE", "da")
    status, lines, err, path = add(tmp_path, capsys, regimen_text("+4520123456"))
    assert (status, err) == (0, "")
    assert lines == [
        "Ana Jensen (+4520123456) er tilmeldt med regimeversion 1",
        f"advarsel: +4520123456 er et nummer i Danmark, og {path} angiver ikke "
        "person.language: Ana Jensen får tekster på engelsk; skriv `language: da` under "
        "person, hvis vedkommende læser dansk",
    ]
    # the same file again changes nothing and still says so
    status, lines, _err, _path = add(tmp_path, capsys, regimen_text("+4520123456"))
    assert status == 0
    assert (
        lines[0]
        == "Ana Jensen (+4520123456) har allerede dette regime (version 1): intet er ændret"
    )
    assert lines[1].startswith("advarsel: +4520123456 er et nummer i Danmark")
    heading, row = main(["people", "list"]), capsys.readouterr().out.splitlines()
    assert heading == 0
    assert row[0].split() == ["id", "navn", "telefon", "kanal", "tidszone", "regime", "status"]
    assert row[1].split()[-1] == "aktiv"


def test_the_hint_follows_what_the_file_wrote_not_the_default_value() -> None:
    unset = parse_regimen_text(regimen_text("+4520123456"), "ana.yaml")
    assert unset.person.language == "en"
    assert language_hint(unset) == LanguageHint(region="DK", language="da")
    written = parse_regimen_text(regimen_text("+4520123456", "en"), "ana.yaml")
    assert written.person.language == "en"
    assert language_hint(written) is None
