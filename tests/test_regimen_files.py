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


def test_a_file_nested_absurdly_deep_is_refused_not_a_recursion_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for name, text in [("deep.json", deep), ("deep.yaml", f"a: {deep}\n")]:
        err = refusal(capsys, tmp_path, text, name)
        assert err.endswith(
            ": is nested more than 10 levels deep; a regimen file needs 4 at most\n"
        )


def test_yaml_blocks_nested_past_the_recursion_limit_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # indented blocks have no brackets to count: Python's recursion limit stops the YAML
    # library first, and that too is this one line
    text = "".join(" " * level + f"k{level}:\n" for level in range(1200)) + " " * 1200 + "x\n"
    err = refusal(capsys, tmp_path, text)
    assert "is nested more than 10 levels deep" in err


def test_lists_nested_under_the_bracket_count_are_refused_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "a:\n" + "".join("  " * level + "-\n" for level in range(1, 12)) + "  " * 12 + "- x\n"
    err = refusal(capsys, tmp_path, text)
    assert "is nested more than 10 levels deep" in err


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (
            "supplements: ["
            + ", ".join(f"{{name: herb {n}, dose: 1 mg}}" for n in range(101))
            + "]\n",
            "supplements: 101 supplements are more than a regimen may list (100)",
        ),
        (
            ZINC
            + "meals: ["
            + ", ".join(f"{{name: m{n}, at: '07:00'}}" for n in range(25))
            + "]\n",
            "meals: 25 meals are more than a regimen may list (24)",
        ),
        (
            ZINC
            + "medications: ["
            + ", ".join(f"{{name: pill {n}, at: '07:00'}}" for n in range(51))
            + "]\n",
            "medications: 51 medications are more than a regimen may list (50)",
        ),
        (
            ZINC + "medications: [{name: pill, at: [" + ", ".join(["'07:00'"] * 25) + "]}]\n",
            "medications.0.at: 25 times are more than a regimen may list (24)",
        ),
    ],
)
def test_more_entries_than_anyone_has_are_refused_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, entries: str, problem: str
) -> None:
    # 1000 supplements took seconds and then the planner's recursion limit (a traceback)
    err = refusal(capsys, tmp_path, PERSON + entries)
    assert err.endswith(f": {problem}\n")


def test_a_hundred_supplements_are_still_planned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "r.yaml"
    herbs = ", ".join(f"{{name: herb {n}, dose: 1 mg}}" for n in range(100))
    path.write_text(PERSON + f"supplements: [{herbs}]\n", encoding="utf-8")
    assert main(["plan", str(path), "--date", "2026-11-23"]) == 0
    assert "herb 99: no timing rules are known" in capsys.readouterr().out


def test_a_file_larger_than_any_regimen_is_refused_unread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = PERSON + ZINC + "# " + "x" * 1_000_000 + "\n"
    err = refusal(capsys, tmp_path, text)
    assert err.endswith(": is larger than any regimen file (over 1000000 characters)\n")


def test_an_alias_bomb_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    err = refusal(capsys, tmp_path, "\n".join(lines) + "\n")
    assert "holds more than 100000 values (a YAML alias counts each time it is used)" in err


def test_a_name_that_would_forge_rows_in_people_list_is_not_enrolled(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    path = tmp_path / "r.yaml"
    forged = r"Eve\n   2 Mallory                  +4520000000      sms     UTC\u001b[31m"
    path.write_text(PERSON.replace("name: Bo", f'name: "{forged}"') + ZINC, encoding="utf-8")
    assert main(["people", "add", str(path)]) == 2
    _, err = capsys.readouterr()
    assert err == (
        f"dosewise: {path}: person.name: contains a control character ('\\n' at position 4): "
        "write it as plain text on one line\n"
    )
    assert main(["people", "list"]) == 0
    assert "Mallory" not in capsys.readouterr().out
