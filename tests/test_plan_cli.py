"""`dosewise plan` as a person runs it: a real process, its output and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ana.yaml"


def dosewise(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dosewise", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_plan_has_the_contract_shape() -> None:
    result = dosewise("plan", EXAMPLE, "--date", "2026-11-23", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["date"] == "2026-11-23"
    assert plan["timezone"] == "Europe/Copenhagen"
    first = plan["slots"][0]
    assert first["at"] == "2026-11-23T11:30:00+01:00"
    supplements = [item["supplement"] for item in first["items"]]
    assert supplements[:2] == ["iron", "vitamin_c"]
    assert {"supplement": "iron", "dose": "18 mg"}.items() <= first["items"][0].items()
    assert any("iron-apart-from-dairy-calcium-medicines" in line for line in first["why"])
    assert plan["slots"][-1]["at"] == "2026-11-23T21:00:00+01:00"
    assert isinstance(plan["warnings"], list)


def test_text_plan_is_a_table_a_person_reads() -> None:
    result = dosewise("plan", EXAMPLE, "--date", "2026-11-23")
    assert result.returncode == 0, result.stderr
    assert "Dose plan for Ana Jensen" in result.stdout
    assert "11:30" in result.stdout and "iron 18 mg + vitamin C 250 mg" in result.stdout
    assert "21:00" in result.stdout and "magnesium citrate 300 mg" in result.stdout


def _write(tmp_path: Path, supplements: str, meals: str = "[]", extra: str = "") -> Path:
    path = tmp_path / "regimen.yaml"
    path.write_text(
        "person: {name: Bo, phone: '+4520123456', timezone: Europe/Copenhagen}\n"
        f"meals: {meals}\nsupplements: {supplements}\n{extra}",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("supplements", "meals", "expected"),
    [
        ("[{name: selenium, dose: 400 µg}]", "[]", "selenium-upper-limit"),
        (
            "[{name: iron, dose: 9 mg, at: '08:00', deficiency_confirmed: true}]",
            "[{name: breakfast, at: '07:30', contains: [dairy]}]",
            "iron-apart-from-dairy-calcium-medicines",
        ),
        (
            "[{name: iron, dose: 9 mg, deficiency_confirmed: true},"
            " {name: vitamin C, dose: 100 mg}]",
            "["
            + ", ".join(
                f"{{name: m{h}, at: '{h:02d}:00', contains: [dairy]}}" for h in range(7, 23, 5)
            )
            + "]",
            "iron-apart-from-dairy-calcium-medicines",
        ),
        ("[{name: vitamin C, dose: 1 g, at: '23:30'}]", "[]", "waking-window"),
    ],
)
def test_a_refused_plan_is_one_line_naming_the_rules(
    tmp_path: Path, supplements: str, meals: str, expected: str
) -> None:
    result = dosewise("plan", _write(tmp_path, supplements, meals), "--date", "2026-11-23")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "plan refused" in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("plan", "missing.yaml"), "missing.yaml: no such file"),
        (("plan", EXAMPLE, "--date", "23/11/2026"), "a date is written YYYY-MM-DD"),
        (("plan", EXAMPLE, "--format", "xml"), "invalid choice"),
        (("plan",), "the following arguments are required"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(arguments: tuple[str, ...], expected: str) -> None:
    result = dosewise(*arguments)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_an_unknown_time_zone_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[{name: zinc, dose: 10 mg}]")
    path.write_text(path.read_text().replace("Europe/Copenhagen", "Europe/Atlantis"))
    result = dosewise("plan", path)
    assert result.returncode == 2
    assert "unknown time zone 'Europe/Atlantis'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2201-01-01"])
def test_a_date_outside_the_years_planned_for_is_one_line(day: str) -> None:
    result = dosewise("plan", EXAMPLE, "--date", day)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert day in lines[0] and "between 1900 and 2200" in lines[0], lines[0]


@pytest.mark.parametrize("day", ["1900-01-01", "2200-12-31"])
def test_the_first_and_last_years_are_planned(day: str) -> None:
    result = dosewise("plan", EXAMPLE, "--date", day, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["date"] == day


def test_the_night_the_clocks_go_back_tells_the_two_hours_apart(tmp_path: Path) -> None:
    """01:00 comes twice in New York on 2026-11-01: the text says which one each slot is."""
    path = tmp_path / "fallback.yaml"
    path.write_text(
        "person: {name: Bo, phone: '+12125550123', timezone: America/New_York,"
        " waking: {from: '01:00', to: '23:00'}, quiet: [{from: '02:00', to: '23:00'}]}\n"
        "supplements: [{name: zinc, dose: 5 mg}, {name: zinc, dose: 5 mg}]\n"
        "policy: {repeat_gap_hours: 1}\n",
        encoding="utf-8",
    )
    text = dosewise("plan", path, "--date", "2026-11-01")
    assert text.returncode == 0, text.stderr
    clocks = [line.split("  ")[0] for line in text.stdout.splitlines() if "zinc 5 mg" in line]
    assert clocks == ["01:00 EDT", "01:00 EST"]
    ordinary = dosewise("plan", EXAMPLE, "--date", "2026-11-23").stdout
    assert "11:30  iron 18 mg" in ordinary  # no zone on a day without a repeated hour
