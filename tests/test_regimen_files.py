"""Bad regimen files at the command line: exit status 2 and one line naming the problem, for
`dosewise plan` and `dosewise people add` alike; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from dosewise.cli import main

PERSON = "person: {name: Bo, phone: '+4520123456', timezone: Europe/Copenhagen}\n"
ZINC = "supplements: [{name: zinc, dose: 10 mg}]\n"


def refusal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, name: str = "r.yaml"
) -> str:
    """Plan the file; it must be refused with exit 2 and one line; that line."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    status = main(["plan", str(path), "--date", "2026-11-23"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, ""), err
    assert err.startswith(f"dosewise: {path}: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "zone", ["Europe", "America/Argentina", "localtime", "Factory", "posixrules", "../UTC"]
)
def test_a_time_zone_that_is_no_iana_zone_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: str
) -> None:
    # "Europe" is a folder of zone files (it was an IsADirectoryError), "localtime" is the
    # machine's own zone, whatever that is
    text = PERSON.replace("Europe/Copenhagen", zone) + ZINC
    err = refusal(capsys, tmp_path, text)
    assert f"person.timezone: unknown time zone {zone!r}: use an IANA name like" in err


def test_a_time_zone_in_the_wrong_case_is_refused_with_the_right_spelling(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refusal(capsys, tmp_path, PERSON.replace("Europe/", "europe/") + ZINC)
    assert "(did you mean Europe/Copenhagen?)" in err


def test_people_add_refuses_a_folder_as_time_zone(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    path = tmp_path / "r.yaml"
    path.write_text(PERSON.replace("Europe/Copenhagen", "Europe") + ZINC, encoding="utf-8")
    status = main(["people", "add", str(path)])
    _, err = capsys.readouterr()
    assert status == 2
    assert err == (
        f"dosewise: {path}: person.timezone: unknown time zone 'Europe': "
        "use an IANA name like Europe/Copenhagen\n"
    )
