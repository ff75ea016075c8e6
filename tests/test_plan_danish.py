"""Danish regimens are planned by the same rules as their English twins.

Hand-written twins for the rules the issue names, a property test that spells generated
regimens in the other language (every name and meal content, in a random spelling from the
tables) and finds the same slot times and the same warnings' rules, and `dosewise plan` and
`dosewise people add` refusing Danish files in one line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dosewise.cli import main
from planner.day import plan_day
from planner.plan import PlanRefused
from schemas.contents import content_tag, content_words
from schemas.files import parse_regimen_text
from schemas.names import form_words, identify, spellings
from schemas.regimen import Regimen
from tests.test_plan_properties import Case, cases

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 23)
_LABEL = re.compile(r"\[([a-z0-9-]+) \((?:stated|derived)\)")

Outcome = tuple[Any, ...]


def outcome(regimen: Regimen, day: date) -> Outcome:
    """What must not change with the language: slot times, what each slot holds and the
    rules that placed it, each warning's rules (or a refusal's conflicting rules)."""
    try:
        plan = plan_day(regimen, day)
    except PlanRefused as refusal:
        return ("refused", tuple(sorted(refusal.conflicts)))
    slots = [
        (
            slot.at.isoformat(),
            sorted((item.supplement, item.dose, item.form or "") for item in slot.items),
            slot.rules,
        )
        for slot in plan.slots
    ]
    return ("planned", slots, sorted(tuple(_LABEL.findall(line)) for line in plan.warnings))


def warned_rules(regimen: Regimen) -> set[str]:
    return {rule for line in plan_day(regimen, DAY).warnings for rule in _LABEL.findall(line)}


def read(text: str) -> Regimen:
    return parse_regimen_text(text, "regimen.yaml")


# --- hand-written twins ----------------------------------------------------------------------
PERSON_EN = "person: {name: Ana, phone: '+4520123456', timezone: Europe/Copenhagen}\n"
PERSON_DA = (
    "person: {name: Mette, phone: '+4521345678', timezone: Europe/Copenhagen, language: da}\n"
)

IRON_WITH_DAIRY = (
    PERSON_EN
    + """meals:
  - {name: breakfast, at: "07:30", contains: [milk, cheese]}
  - {name: lunch, at: "12:00", contains: [black tea]}
  - {name: dinner, at: "18:30", contains: [yogurt]}
supplements:
  - {name: iron, dose: 18 mg, deficiency_confirmed: true}
  - {name: vitamin C, dose: 250 mg}
  - {name: calcium carbonate, dose: 500 mg}
""",
    PERSON_DA
    + """meals:
  - {name: morgenmad, at: "07:30", contains: [mælk, ost]}
  - {name: frokost, at: "12:00", contains: [sort te]}
  - {name: aftensmad, at: "18:30", contains: [Yoghurt]}
supplements:
  - {name: Jern, dose: 18 mg, deficiency_confirmed: true}
  - {name: C-vitamin, dose: 250 mg}
  - {name: Kalciumcarbonat, dose: 500 mg}
""",
)


def _twin(supplements_en: str, supplements_da: str) -> tuple[str, str]:
    return (
        f"{PERSON_EN}supplements: {supplements_en}\n",
        f"{PERSON_DA}supplements: {supplements_da}\n",
    )


TWINS = {
    "iron and vitamin C with a dairy breakfast": IRON_WITH_DAIRY,
    "selenium over the upper limit": _twin(
        "[{name: selenium, dose: 200 µg}, {name: selenium, dose: 200 µg}]",
        "[{name: Selen, dose: 200 µg}, {name: Selen, dose: 200 µg}]",
    ),
    "zinc over 25 mg": _twin("[{name: zinc, dose: 30 mg}]", "[{name: Zink, dose: 30 mg}]"),
    "magnesium oxide": _twin(
        "[{name: magnesium oxide, dose: 400 mg}]", "[{name: Magnesiumoxid, dose: 400 mg}]"
    ),
    "magnesium oxide in two words": _twin(
        "[{name: Magnesium Oxide, dose: 400 mg}]", "[{name: Magnesium oxid, dose: 400 mg}]"
    ),
    "copper without a confirmed deficiency": _twin(
        "[{name: copper, dose: 1 mg}]", "[{name: Kobber, dose: 1 mg}]"
    ),
    "iron without vitamin C, kalk": _twin(
        "[{name: ferrous sulfate, dose: 25 mg}, {name: calcium, dose: 500 mg}]",
        "[{name: Jernsulfat, dose: 25 mg}, {name: Kalk, dose: 500 mg}]",
    ),
}


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_a_danish_regimen_is_planned_like_its_english_twin(twin: str) -> None:
    english, danish = (read(text) for text in TWINS[twin])
    assert outcome(danish, DAY) == outcome(english, DAY)


def test_danish_iron_is_paired_with_c_vitamin_and_kept_from_the_dairy_and_tea() -> None:
    plan = plan_day(read(IRON_WITH_DAIRY[1]), DAY)
    (iron,) = [slot for slot in plan.slots if "iron" in {i.supplement for i in slot.items}]
    assert [item.supplement for item in iron.items] == ["iron", "vitamin_c"]
    assert {"iron-with-vitamin-c", "iron-apart-from-dairy-calcium-medicines"} <= set(iron.rules)
    assert "iron-apart-from-black-tea" in iron.rules
    assert f"{iron.at:%H:%M}" == "15:00"  # 3 h after the 12:00 tea, 3.5 h before dinner


def test_the_danish_selenium_over_the_limit_is_refused() -> None:
    with pytest.raises(PlanRefused) as caught:
        plan_day(read(TWINS["selenium over the upper limit"][1]), DAY)
    assert caught.value.conflicts == ("selenium-upper-limit",)
    assert "selenium 400 µg/day is above 300 µg/day" in caught.value.reason


@pytest.mark.parametrize(
    ("twin", "rule"),
    [
        ("zinc over 25 mg", "zinc-upper-limit"),
        ("magnesium oxide", "magnesium-oxide-poorly-absorbed"),
        ("magnesium oxide in two words", "magnesium-oxide-poorly-absorbed"),
        ("copper without a confirmed deficiency", "copper-needs-confirmed-deficiency"),
        ("iron without vitamin C, kalk", "iron-with-vitamin-c"),
        ("iron without vitamin C, kalk", "iron-needs-confirmed-deficiency"),
        ("iron without vitamin C, kalk", "iron-excess"),
    ],
)
def test_the_danish_regimen_gets_the_rules_warning(twin: str, rule: str) -> None:
    assert rule in warned_rules(read(TWINS[twin][1]))


def test_the_danish_plan_json_keeps_canonical_keys_and_the_persons_names() -> None:
    result = _dosewise(
        "plan", ROOT / "examples" / "mette.yaml", "--date", "2026-11-23", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    items = [item for slot in json.loads(result.stdout)["slots"] for item in slot["items"]]
    assert {item["supplement"]: item["name"] for item in items} == {
        "iron": "Jern",
        "vitamin_c": "C-vitamin",
        "magnesium": "Magnesiumcitrat",
        "vitamin_d": "D-vitamin",
    }


# --- the property: the language of the words changes nothing ------------------------------
def _variant(draw: st.DrawFn, text: str) -> str:
    """The same words as a person might type them: case, hyphens or spaces, decomposed."""
    cased = draw(st.sampled_from([text, text.lower(), text.upper(), text.capitalize()]))
    spaced = draw(st.sampled_from([cased, cased.replace("-", " "), cased.replace(" ", "-")]))
    return draw(st.sampled_from([spaced, unicodedata.normalize("NFD", spaced)]))


def _spell(draw: st.DrawFn, name: str, language: str) -> str:
    """`name` written in `language`: a listed spelling of its supplement and form, or a name
    and a form word, apart or (in Danish) as one compound word; a custom item as it was."""
    known = identify(name)
    if known.canonical is None:
        return name
    bare = spellings(known.canonical, language)
    if known.form is None:
        options = list(bare)
    else:
        words = form_words(known.form, language)
        options = list(spellings(known.canonical, language, known.form))
        options += [f"{spelled} {word}" for spelled in bare for word in words]
        if language == "da":
            options += [
                f"{spelled}{word}" for spelled in bare if len(spelled) > 2 for word in words
            ]
        if not options:
            options = [f"{spelled} {known.form}" for spelled in bare]
    return _variant(draw, draw(st.sampled_from(sorted(options))))


def _contents(draw: st.DrawFn, written: str, language: str) -> str:
    tag = content_tag(written)
    words = content_words(tag, language)
    return _variant(draw, draw(st.sampled_from(sorted(words)))) if words else written


def translated(draw: st.DrawFn, regimen: Regimen, language: str) -> Regimen:
    data = regimen.model_dump(mode="json", by_alias=True)
    data["person"]["language"] = language
    for entry in data["supplements"]:
        entry["name"] = _spell(draw, entry["name"], language)
    for meal in data["meals"]:
        meal["contains"] = [_contents(draw, content, language) for content in meal["contains"]]
    return Regimen.model_validate(data)


@st.composite
def twins(draw: st.DrawFn) -> tuple[Case, Regimen, Regimen]:
    case = draw(cases())
    danish = translated(draw, case.regimen, "da")
    return case, danish, translated(draw, danish, "en")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twins())
def test_spelling_a_regimen_in_the_other_language_changes_no_slot_and_no_rule(
    twin: tuple[Case, Regimen, Regimen],
) -> None:
    case, danish, english_again = twin
    expected = outcome(case.regimen, case.day)
    assert outcome(danish, case.day) == expected
    assert outcome(english_again, case.day) == expected


# --- the command line ------------------------------------------------------------------------
def _dosewise(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dosewise", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


REFUSED = {
    "selen": (
        TWINS["selenium over the upper limit"][1],
        "plan refused: selenium 400 µg/day is above 300 µg/day",
    ),
    "combined": (
        f"{PERSON_DA}supplements: [{{name: Jern + C-vitamin, dose: 100 mg}}]\n",
        "supplements.0: 'Jern + C-vitamin' names more than one supplement (jern, C-vitamin)",
    ),
    "close": (
        f"{PERSON_DA}supplements: [{{name: C-vitamin, dose: 100 mg}}, {{name: jren, dose: 14 mg}}]"
        "\n",
        "supplements.1: 'jren' is not a supplement dosewise knows; did you mean jern?",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_dosewise_plan_refuses_the_danish_file_in_one_line_with_status_2(
    tmp_path: Path, case: str
) -> None:
    text, expected = REFUSED[case]
    path = tmp_path / "mette.yaml"
    path.write_text(text, encoding="utf-8")
    result = _dosewise("plan", path, "--date", "2026-11-23")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"dosewise: {path}: {expected}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_dosewise_plan_plans_a_custom_item_the_file_says_is_one(tmp_path: Path) -> None:
    path = tmp_path / "mette.yaml"
    path.write_text(f"{PERSON_DA}supplements: [{{name: jren, dose: 14 mg, custom: true}}]\n")
    result = _dosewise("plan", path, "--date", "2026-11-23", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [item["supplement"] for slot in plan["slots"] for item in slot["items"]] == ["jren"]
    assert any("jren: no timing rules are known" in line for line in plan["warnings"])


@pytest.fixture
def on_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    return database_url


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_people_add_refuses_the_danish_file_in_one_line_and_enrols_nobody(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = REFUSED[case]
    path = tmp_path / "mette.yaml"
    path.write_text(text, encoding="utf-8")
    status = main(["people", "add", str(path)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and expected.removeprefix("plan refused: ") in err, err
    assert main(["people", "list"]) == 0
    assert capsys.readouterr().out.startswith("nobody is enrolled yet")


def test_people_add_enrols_the_danish_example_with_its_rules(
    on_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["people", "add", str(ROOT / "examples" / "mette.yaml")])
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), out
    assert out.startswith("enrolled Mette Nielsen (+4521345678) with regimen version 1")
    assert "no timing rules are known" not in out
