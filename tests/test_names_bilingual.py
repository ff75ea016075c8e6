"""Supplement names and meal contents in English and Danish: the tables, the normalisation,
compounds, close names refused with a suggestion, names of two supplements refused."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

import pytest

from planner.checks import meal_contents_known
from planner.day import plan_day
from planner.rules import RULES
from schemas.contents import content_rows, content_tag
from schemas.files import RegimenFileError, parse_regimen_text
from schemas.languages import LANGUAGES, has_display_name
from schemas.names import KNOWN_FORMS, canonical_names, identify, name_rows
from schemas.words import match_key
from tests.regimens import regimen

DAY = date(2026, 11, 23)

# English names people write for each supplement, each of which must keep naming it
ENGLISH_ALIASES = {
    "iron": ("iron", "ferrous", "ferric", "fe"),
    "vitamin_c": ("vitamin c", "vit c", "ascorbic acid", "ascorbate", "c vitamin"),
    "zinc": ("zinc", "zn"),
    "selenium": ("selenium", "se", "selenomethionine", "sodium selenite", "selenite"),
    "magnesium": ("magnesium", "mg"),
    "copper": ("copper", "cu", "cupric"),
    "calcium": ("calcium", "ca"),
    "vitamin_d": ("vitamin d", "vitamin d3", "vitamin d2", "vit d", "d3", "cholecalciferol"),
    "vitamin_b12": ("vitamin b12", "b12", "cobalamin", "methylcobalamin", "cyanocobalamin"),
    "folate": ("folate", "folic acid", "vitamin b9", "methylfolate"),
    "vitamin_a": ("vitamin a", "retinol"),
    "vitamin_e": ("vitamin e", "tocopherol"),
    "vitamin_k": ("vitamin k", "vitamin k2", "vitamin k1", "k2", "menaquinone", "phylloquinone"),
    "iodine": ("iodine", "iodide", "potassium iodide"),
    "omega_3": ("omega 3", "omega3", "fish oil", "epa", "dha"),
    "potassium": ("potassium",),
}


def _refusal(supplements: str) -> str:
    text = (
        "person: {name: Mette, phone: '+4521345678', timezone: Europe/Copenhagen, language: da}\n"
        f"supplements: {supplements}\n"
    )
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    return str(caught.value)


def _keys(plan_supplements: list[dict[str, Any]]) -> list[str]:
    plan = plan_day(regimen(plan_supplements), DAY)
    return [item.supplement for slot in plan.slots for item in slot.items]


# --- the tables ------------------------------------------------------------------------------
def test_every_canonical_supplement_has_names_in_every_language_and_a_display_name() -> None:
    assert set(canonical_names()) == set(ENGLISH_ALIASES)
    for canonical in canonical_names():
        assert has_display_name(canonical), canonical
        languages = {row.language for row in name_rows() if row.canonical == canonical}
        assert languages == set(LANGUAGES), canonical


def test_every_row_is_in_a_known_language_and_reads_back_as_its_supplement() -> None:
    for row in name_rows():
        assert row.language in LANGUAGES, row
        name = identify(row.name)
        assert (name.canonical, name.form) == (row.canonical, row.form), row
        assert row.form is None or row.form in KNOWN_FORMS.get(row.canonical, {row.form}), row


@pytest.mark.parametrize(
    ("canonical", "alias"),
    [(canonical, alias) for canonical, aliases in ENGLISH_ALIASES.items() for alias in aliases],
)
def test_every_english_name_names_its_supplement(canonical: str, alias: str) -> None:
    assert identify(alias).canonical == canonical


def test_every_meal_content_tag_in_the_table_is_one_a_rule_keeps_doses_from() -> None:
    known = meal_contents_known(RULES)
    assert {row.tag for row in content_rows()} == known
    for tag in known:
        assert {row.language for row in content_rows() if row.tag == tag} == set(LANGUAGES), tag
        assert content_tag(tag) == tag


# --- Danish names, forms and compounds -------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "canonical", "form"),
    [
        ("Jern", "iron", None),
        ("Zink", "zinc", None),
        ("Selen", "selenium", None),
        ("Kalk", "calcium", None),
        ("Kalcium", "calcium", None),
        ("Kobber", "copper", None),
        ("Magnesium", "magnesium", None),
        ("D-vitamin", "vitamin_d", None),
        ("D3-vitamin", "vitamin_d", None),
        ("B12-vitamin", "vitamin_b12", None),
        ("Folsyre", "folate", None),
        ("Jod", "iodine", None),
        ("Kalium", "potassium", None),
        ("Fiskeolie", "omega_3", None),
        ("A-vitamin", "vitamin_a", None),
        ("E-vitamin", "vitamin_e", None),
        ("K2-vitamin", "vitamin_k", None),
        ("Jernsulfat", "iron", "sulfate"),
        ("Jernfumarat", "iron", "fumarate"),
        ("Jerngluconat", "iron", "gluconate"),
        ("Zinkacetat", "zinc", "acetate"),
        ("Zinkgluconat", "zinc", "gluconate"),
        ("Zinkcitrat", "zinc", "citrate"),
        ("Magnesiumcitrat", "magnesium", "citrate"),
        ("Magnesiumoxid", "magnesium", "oxide"),
        ("Magnesium oxid", "magnesium", "oxide"),
        ("magnesium-oxid", "magnesium", "oxide"),
        ("Kalciumcarbonat", "calcium", "carbonate"),
        ("Selengær", "selenium", "yeast"),
        ("Magnesiumoxid tabletter", "magnesium", "oxide tablet"),
        ("Jern (ferrosulfat)", "iron", "sulfate"),
        ("Zink fri for sukker", "zinc", "fri for sukker"),
        ("selen 100 µg", "selenium", "100 µg"),
    ],
)
def test_danish_names_are_read_with_their_form(
    written: str, canonical: str, form: str | None
) -> None:
    name = identify(written)
    assert (name.canonical, name.form) == (canonical, form)


@pytest.mark.parametrize(
    ("written", "canonical", "form"),
    [
        ("kobbersulfat", "copper", "sulfate"),
        ("jernlaktat", "iron", "lactate"),
        ("Kaliumcitrat", "potassium", "citrate"),
        ("zinksulfat", "zinc", "sulfate"),
        ("Magnesiumklorid", "magnesium", "chloride"),
        ("Magnesiumthreonat", "magnesium", "threonate"),
        ("Kalciumlaktat", "calcium", "lactate"),
        ("Jerntabletter", "iron", "tablet"),
    ],
)
def test_a_compound_of_a_name_and_a_form_word_is_read_though_the_table_does_not_list_it(
    written: str, canonical: str, form: str
) -> None:
    assert match_key(written) not in {match_key(row.name) for row in name_rows()}
    name = identify(written)
    assert (name.canonical, name.form) == (canonical, form)


@pytest.mark.parametrize(
    "written",
    [
        "C-vitamin",
        "C vitamin",
        "c-vitamin",
        "C-VITAMIN",
        "vitamin C",
        "Vitamin-C",
        "C\u2011vitamin",  # a non-breaking hyphen, as word processors put on labels
        " C -  vitamin ",
        "C-vitamín",  # an accent the keyboard added
    ],
)
def test_bottle_spellings_of_vitamin_c_are_vitamin_c(written: str) -> None:
    assert identify(written).canonical == "vitamin_c"


@pytest.mark.parametrize("written", ["Jernsulfat", "JERNSULFAT", "jern-sulfat", "Jern sulfat"])
def test_bottle_spellings_of_iron_sulfate_are_iron_sulfate(written: str) -> None:
    name = identify(written)
    assert (name.canonical, name.form) == ("iron", "sulfate")


def test_composed_and_decomposed_unicode_name_the_same() -> None:
    for row in name_rows():
        decomposed = unicodedata.normalize("NFD", row.name)
        assert identify(decomposed).canonical == row.canonical, row
    for content in content_rows():
        decomposed = unicodedata.normalize("NFD", content.name)
        assert content_tag(decomposed) == content.tag, content


@pytest.mark.parametrize(
    "written",
    [
        "mælk",
        "Mælk",
        "MÆLK",
        "maelk",
        "fløde",
        "floede",
        "Sødmælk",
        "soedmaelk",
        "Crème fraîche",
        unicodedata.normalize("NFD", "Crème fraîche"),
        "creme-fraiche",
        "Ost",
        "skyr",
        "yoghurt",
        "kvark",
        "ymer",
        "letmælk",
    ],
)
def test_danish_dairy_is_dairy_however_it_is_written(written: str) -> None:
    assert content_tag(written) == "dairy"


@pytest.mark.parametrize(("written", "tag"), [("sort te", "black_tea"), ("Sort-te", "black_tea")])
def test_danish_black_tea_is_black_tea(written: str, tag: str) -> None:
    assert content_tag(written) == tag


@pytest.mark.parametrize("written", ["kaffe", "Mælkesnitte", "grøn te", "Smør"])
def test_an_unknown_meal_content_is_warned_about_as_written(written: str) -> None:
    meals = [{"name": "morgenmad", "at": "08:00", "contains": [written]}]
    plan = plan_day(regimen([{"name": "Zink", "dose": "10 mg"}], meals=meals), DAY)
    (warning,) = [line for line in plan.warnings if "is not a content" in line]
    assert f"{written!r} is not a content the timing rules know" in warning
    assert "_" not in warning.split(" is not", maxsplit=1)[0]


def test_danish_meal_contents_keep_iron_away_like_their_english_words() -> None:
    iron = [{"name": "Jern", "dose": "14 mg", "deficiency_confirmed": True}]
    iron.append({"name": "C-vitamin", "dose": "250 mg"})
    for contents in (["mælk"], ["ost"], ["sort te"]):
        meals = [{"name": "morgenmad", "at": "08:00", "contains": contents}]
        plan = plan_day(regimen(iron, meals=meals), DAY)
        assert not [line for line in plan.warnings if "is not a content" in line], plan.warnings
        assert plan.slots[0].at.hour >= 11, contents  # 3 h at least from the 08:00 meal


# --- names close to known ones ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "suggestion"),
    [
        ("iorn", "iron"),
        ("magnesum", "magnesium"),
        ("seleniun", "selenium"),
        ("zinkk", "zink"),
        ("jren", "jern"),
        ("C-vitamn", "C-vitamin"),
        ("Kobebr", "kobber"),
        ("iorn bisglycinate", "iron"),
        ("Jrensulfat", "jern"),
    ],
)
def test_a_name_close_to_a_known_one_is_refused_with_a_suggestion(
    written: str, suggestion: str
) -> None:
    assert _refusal(f'[{{name: "{written}", dose: 10 mg}}]') == (
        f"r.yaml: supplements.0: {written!r} is not a supplement dosewise knows; did you mean "
        f"{suggestion}? (if it is another supplement, give the entry custom: true)"
    )


@pytest.mark.parametrize(
    "written",
    [
        "probiotic",
        "ashwagandha",
        "melatonin",
        "q10",
        "kollagen",
        "turmeric",
        "omega 7",
        "Omega-6",
        "B-vitamin",
        "vitamin B6",
        "DHEA",
        "boron",
        "Mangan",
        "Silicium",
        "Jernurt",
        "Spirulina",
        "beetroot powder",
    ],
)
def test_a_custom_item_unlike_any_known_name_is_planned_with_its_note(written: str) -> None:
    plan = plan_day(regimen([{"name": written, "dose": "100 mg"}]), DAY)
    assert [item.name for slot in plan.slots for item in slot.items] == [written]
    assert f"{written}: no timing rules are known for it" in "\n".join(plan.warnings)


def test_custom_true_keeps_a_close_name_as_a_custom_item() -> None:
    entry = {"name": "iorn", "dose": "100 mg", "custom": True}
    plan = plan_day(regimen([entry]), DAY)
    assert [item.supplement for slot in plan.slots for item in slot.items] == ["iorn"]
    assert any("iorn: no timing rules are known" in line for line in plan.warnings)


def test_custom_true_on_a_name_dosewise_knows_is_refused_so_its_rules_stay_on() -> None:
    assert _refusal("[{name: Jern, dose: 14 mg, custom: true}]") == (
        "r.yaml: supplements.0: 'Jern' names jern, a supplement dosewise knows: remove "
        "custom: true so that its rules apply"
    )


# --- names of two supplements, and of none -------------------------------------------------
@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("Jern + C-vitamin", "jern, C-vitamin"),
        ("jern med C-vitamin", "jern, C-vitamin"),
        ("Kalk og D-vitamin", "calcium, D-vitamin"),
        ("Calcium + D3", "calcium, vitamin D"),
        ("zink/kobber", "zink, kobber"),
        ("Jernfri multivitamin med zink og selen", "zink, selen"),
        ("Iron with vitamin C", "iron, vitamin C"),
    ],
)
def test_a_name_of_two_supplements_is_refused_in_either_language(written: str, named: str) -> None:
    assert _refusal(f'[{{name: "{written}", dose: 100 mg}}]') == (
        f"r.yaml: supplements.0: {written!r} names more than one supplement ({named}): "
        "list each as its own entry, with its own dose"
    )


@pytest.mark.parametrize(
    "written",
    [
        "Multivitamin uden jern",
        "Jernfri multivitamin",
        "jern-fri multi",
        "Multivitamin fri for kobber",
    ],
)
def test_a_danish_name_saying_a_supplement_is_absent_does_not_name_it(written: str) -> None:
    name = identify(written)
    assert name.canonical is None and name.close_to is None
    assert _keys([{"name": written, "dose": "1 mg"}]) == [name.key]


def test_a_custom_name_keeps_its_letters_in_its_key() -> None:
    assert _keys([{"name": "Hørfrøolie", "dose": "1 g"}]) == ["hørfrøolie"]


def test_plan_warnings_name_supplements_by_display_name_not_internal_key() -> None:
    plan = plan_day(regimen([{"name": "Jern", "dose": "14 mg", "deficiency_confirmed": True}]), DAY)
    (pairing,) = [line for line in plan.warnings if "iron-with-vitamin-c" in line]
    assert pairing.startswith("iron without vitamin C:")
