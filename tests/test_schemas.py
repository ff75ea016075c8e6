"""The regimen file: strict validation, normalised amounts and names, one clear error."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from planner.day import plan_day
from schemas.amounts import parse_amount
from schemas.dates import checked_date
from schemas.export import regimen_schema_text
from schemas.files import RegimenFileError, load_regimen, parse_regimen_text
from schemas.names import identify
from tests.regimens import regimen

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("written", "value", "unit", "milligrams"),
    [
        ("18 mg", "18", "mg", "18"),
        ("100 mcg", "100", "µg", "0.1"),
        ("100 ug", "100", "µg", "0.1"),
        ("100µg", "100", "µg", "0.1"),
        ("0.5 g", "500", "mg", "500"),
        ("1,5 mg", "1.5", "mg", "1.5"),
        ("0,125 mg", "0.125", "mg", "0.125"),
        ("0.125 mg", "0.125", "mg", "0.125"),
        ("1.25 mg", "1.25", "mg", "1.25"),
        ("1000 mcg", "1000", "µg", "1"),
        ("1.0000 g", "1000", "mg", "1000"),
        ("1000 IU", "1000", "IU", None),
    ],
)
def test_amounts_are_normalised(
    written: str, value: str, unit: str, milligrams: str | None
) -> None:
    amount = parse_amount(written)
    assert amount.value == Decimal(value)
    assert amount.unit == unit
    assert amount.milligrams == (Decimal(milligrams) if milligrams else None)


@pytest.mark.parametrize("written", ["", "mg", "18", "-3 mg", "0 mg", "18 kg", "lots"])
def test_bad_amounts_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match=r"dose|unit"):
        parse_amount(written)


@pytest.mark.parametrize("written", ["1,000 mcg", "2.500 IU", "1,000 mg", "10.000 IE", "3,000 g"])
def test_digits_grouped_in_thousands_are_refused_not_guessed(written: str) -> None:
    # a thousand where the separator groups digits, one where it is a decimal comma or point
    with pytest.raises(ValueError, match="ambiguous"):
        parse_amount(written)


@pytest.mark.parametrize(
    ("written", "canonical", "form"),
    [
        ("vitamin C", "vitamin_c", None),
        ("Vitamin-C", "vitamin_c", None),
        ("ascorbic acid", "vitamin_c", None),
        ("magnesium citrate", "magnesium", "citrate"),
        ("Magnesium Oxide", "magnesium", "oxide"),
        ("ferrous bisglycinate", "iron", "bisglycinate"),
        ("zinc gluconate", "zinc", "gluconate"),
        ("selenium", "selenium", None),
        ("vitamin_d", "vitamin_d", None),
        ("ashwagandha", None, None),
        ("Iron (ferrous bisglycinate)", "iron", "bisglycinate"),
        ("chelated magnesium", "magnesium", "chelated"),
        ("zinc 15 mg", "zinc", "15 mg"),
        ("potassium iodide", "iodine", None),
        ("Omega-3 fish oil (EPA/DHA)", "omega_3", None),
        ("sugar-free vitamin C", "vitamin_c", "sugar free"),
        ("Iron-free multivitamin", None, None),
        ("multivitamin without iron", None, None),
        ("no iron multi", None, None),
        ("multivitamin free of copper", None, None),
    ],
)
def test_supplement_names_are_canonical_with_forms(
    written: str, canonical: str | None, form: str | None
) -> None:
    name = identify(written)
    assert (name.canonical, name.form) == (canonical, form)


def test_an_unknown_supplement_is_kept_as_a_custom_item_with_a_warning() -> None:
    person = regimen([{"name": "Ashwagandha root", "dose": "300 mg"}])
    plan = plan_day(person, date(2026, 11, 23))
    assert [item.supplement for slot in plan.slots for item in slot.items] == ["ashwagandha_root"]
    assert any("Ashwagandha root: no timing rules are known" in line for line in plan.warnings)


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("Iron with vitamin C", "iron, vitamin C"),
        ("Vitamin D3 + Calcium", "vitamin D, calcium"),
        ("Calcium + Vitamin D3", "calcium, vitamin D"),
        ("Vitamin C + zinc", "vitamin C, zinc"),
        ("zinc and copper", "zinc, copper"),
        ("Ca/Mg/Zn", "calcium, magnesium, zinc"),
        ("Vitamin D3 + K2", "vitamin D, vitamin K"),
        ("Iron-free multivitamin with zinc and selenium", "zinc, selenium"),
    ],
)
def test_a_name_of_two_supplements_is_refused_not_read_as_one(written: str, named: str) -> None:
    # read as one of them, the other would be planned by the wrong rules: iron with vitamin C
    # was vitamin C at the medicine, calcium with vitamin D shared a slot with iron
    text = BASE.replace("{name: iron, dose: 18 mg}", f"{{name: {written}, dose: 500 mg}}")
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert str(caught.value) == (
        f"r.yaml: supplements.0: {written!r} names more than one supplement ({named}): "
        "list each as its own entry, with its own dose"
    )


def test_a_product_free_of_iron_gets_no_iron_rules() -> None:
    person = regimen([{"name": "Iron-free multivitamin", "dose": "1 mg"}])
    plan = plan_day(person, date(2026, 11, 23))
    assert [item.supplement for slot in plan.slots for item in slot.items] == [
        "iron_free_multivitamin"
    ]
    assert not any("avoid iron" in line or "iron without" in line for line in plan.warnings)


BASE = """
person: {name: Ana, phone: "+4520123456", timezone: Europe/Copenhagen}
supplements: [{name: iron, dose: 18 mg}]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("+4520123456", "12345"), "person.phone: phone '12345' is not in E.164"),
        (BASE.replace("Europe/Copenhagen", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (BASE.replace("18 mg", "18 kg"), "unknown unit 'kg'"),
        (
            BASE + "meals: [{name: lunch, at: '25:00'}]",
            'meals.0.at: a time of day is written "HH:MM"',
        ),
        (
            BASE.replace("supplements: [{name: iron, dose: 18 mg}]", "supplements: []"),
            "supplements",
        ),
        (BASE + "colour: blue", "colour: is not a known field"),
        ("person: [unclosed", "not valid YAML or JSON"),
        (
            BASE.replace(
                "timezone: Europe/Copenhagen", "timezone: Europe/Copenhagen, channel: email"
            ),
            "channel: email needs an email address",
        ),
    ],
)
def test_a_bad_regimen_gets_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("r.yaml: ")


def test_unquoted_times_in_yaml_are_times_not_base_sixty_numbers() -> None:
    parsed = parse_regimen_text(BASE + "meals: [{name: lunch, at: 12:00}]")
    assert parsed.meals[0].at.strftime("%H:%M") == "12:00"


def test_json_regimen_files_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(
        '{"person": {"name": "Ana", "phone": "+4520123456", "timezone": "Europe/Copenhagen"},'
        ' "supplements": [{"name": "zinc", "dose": "10 mg"}]}'
    )
    assert load_regimen(path).supplements[0].key == "zinc"


def test_the_example_regimen_loads_and_the_phone_is_e164() -> None:
    parsed = load_regimen(ROOT / "examples" / "ana.yaml")
    assert parsed.person.phone == "+4520123456"
    assert parsed.person.waking.start.hour == 7


def test_the_published_json_schema_matches_the_models() -> None:
    published = (ROOT / "docs" / "regimen.schema.json").read_text(encoding="utf-8")
    assert published == regimen_schema_text(), "run: python -m schemas.export"


@pytest.mark.parametrize("written", ["20261201", "2026-W49-1", "2026-12-1", " 2026-12-01"])
def test_a_typed_date_is_yyyy_mm_dd_only(written: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        checked_date(written)
    assert checked_date("2026-12-01").isoformat() == "2026-12-01"


@pytest.mark.parametrize("written", ["2026-02-30", "2026-13-01", "2026-00-10"])
def test_a_date_written_right_that_does_not_exist_is_said_so(written: str) -> None:
    with pytest.raises(ValueError, match=f"^{written} is not a date: there is no such day$"):
        checked_date(written)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # two supplement lists: only the second (100 µg of selenium, not 500) was planned
        (
            BASE + "supplements: [{name: selenium, dose: 100 µg}]",
            "duplicate key 'supplements' on line 4: give each key once",
        ),
        (
            BASE.replace("18 mg}", "18 mg, deficiency_confirmed: true, deficiency_confirmed: no}"),
            "duplicate key 'deficiency_confirmed' on line 3: give each key once",
        ),
        (
            '{"person": {"name": "Ana", "phone": "+4520123456", "timezone": "UTC"},'
            ' "supplements": [{"name": "selenium", "dose": "500 µg"}],'
            ' "supplements": [{"name": "selenium", "dose": "100 µg"}]}',
            "duplicate key 'supplements' at the top level: give each key once",
        ),
        (
            '{"person": {"name": "Ana", "phone": "+4520123456", "timezone": "UTC"},'
            ' "supplements": [{"name": "iron", "dose": "18 mg", "deficiency_confirmed": true,'
            ' "deficiency_confirmed": false}]}',
            "duplicate key 'deficiency_confirmed' in supplements.0: give each key once",
        ),
    ],
)
def test_a_key_given_twice_is_refused_not_the_last_one_kept(text: str, message: str) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert str(caught.value) == f"r.yaml: {message}"


def test_a_yaml_merge_key_may_still_be_overridden() -> None:
    parsed = parse_regimen_text(
        BASE.replace(
            "supplements: [{name: iron, dose: 18 mg}]",
            "supplements:\n  - &zinc {name: zinc, dose: 10 mg}\n  - {<<: *zinc, dose: 5 mg}",
        )
    )
    assert [(entry.key, str(entry.dose)) for entry in parsed.supplements] == [
        ("zinc", "10 mg"),
        ("zinc", "5 mg"),
    ]


FLOW = (
    '{person: {name: Flow Style, phone: "+4520123456", timezone: Europe/Copenhagen},\n'
    ' supplements: [{name: zinc, dose: "10 mg"}]}\n'
)


def test_yaml_in_flow_style_is_read_though_it_starts_like_json(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW, encoding="utf-8")
    parsed = load_regimen(path)
    assert (parsed.person.name, parsed.supplements[0].key) == ("Flow Style", "zinc")


def test_a_json_file_gets_the_json_error(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(FLOW, encoding="utf-8")
    with pytest.raises(RegimenFileError) as caught:
        load_regimen(path)
    assert str(caught.value) == (
        f"{path}: not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("person: [unclosed", "expected ',' or ']', but got '<stream end>' (line 1, column 18)"),
        ("a: 1\n---\nb: 2\n", "expected a single document in the stream, but found another"),
    ],
)
def test_a_yaml_syntax_error_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert str(caught.value).startswith(f"r.yaml: not valid YAML or JSON ({message}")


@pytest.mark.parametrize(
    ("field", "written", "shown"),
    [
        ("person.name", r"Eve\n   2 Mallory  +4520000000  sms", r"'\n' at position 4"),
        ("person.name", r"Eve\u001b[31m", r"'\x1b' at position 4"),
        ("supplements.0.name", r"zinc\u202e", r"'\u202e' at position 5"),
        ("meals.0.name", r"lunch\tlate", r"'\t' at position 6"),
        ("medications.0.name", r"levo\u2028thyroxine", r"'\u2028' at position 5"),
        ("medications.0.name", r"\u200blevothyroxine", r"'\u200b' at position 1"),
    ],
)
def test_a_control_character_in_a_name_is_refused(field: str, written: str, shown: str) -> None:
    # a newline and an escape in a person's name forged rows and colours in `people list`
    values = {"person.name": "Ana", "supplements.0.name": "iron"}
    values |= {"meals.0.name": "lunch", "medications.0.name": "levothyroxine", field: written}
    text = (
        f'person: {{name: "{values["person.name"]}", phone: "+4520123456", timezone: UTC}}\n'
        f'supplements: [{{name: "{values["supplements.0.name"]}", dose: 18 mg}}]\n'
        f'meals: [{{name: "{values["meals.0.name"]}", at: "12:00"}}]\n'
        f'medications: [{{name: "{values["medications.0.name"]}", at: "06:45"}}]\n'
    )
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert str(caught.value) == (
        f"r.yaml: {field}: contains a control character ({shown}): "
        "write it as plain text on one line"
    )


def test_names_in_any_script_with_ordinary_spaces_are_kept() -> None:
    parsed = parse_regimen_text(BASE.replace("name: Ana", 'name: "Chloé Ørsted\u00a0Jensen 李"'))
    assert parsed.person.name == "Chloé Ørsted\u00a0Jensen 李"


def test_a_blank_name_is_refused() -> None:
    with pytest.raises(RegimenFileError, match=r"^r.yaml: person.name: must not be blank$"):
        parse_regimen_text(BASE.replace("name: Ana", 'name: "   "'), "r.yaml")


def test_an_unknown_key_with_a_control_character_is_shown_escaped() -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(BASE + '"colour\\e[31m": blue', "r.yaml")
    assert str(caught.value) == r"r.yaml: 'colour\x1b[31m': is not a known field"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        # a repeat gap of 0 planned two zinc doses at 07:00 and 07:01
        ("{repeat_gap_hours: 0}", "repeat_gap_hours: Input should be greater than or equal to 1"),
        ("{repeat_gap_hours: 0.5}", "repeat_gap_hours: Input should be greater than or equal to 1"),
        (
            "{lozenge_min_interval_hours: 0.01}",
            "lozenge_min_interval_hours: Input should be greater than or equal to 1",
        ),
        ("{iron_daily_warn_mg: .inf}", "iron_daily_warn_mg: Input should be a finite number"),
        ("{black_tea_gap_hours: -1}", "black_tea_gap_hours: Input should be greater than or equal"),
        (
            "{lozenge_dose: 14 IU}",
            "lozenge_dose: a lozenge's zinc is a mass, in mg or µg, not 14 IU",
        ),
    ],
)
def test_a_policy_that_makes_no_schedule_is_refused(policy: str, message: str) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(BASE + f"policy: {policy}", "r.yaml")
    assert str(caught.value).startswith(f"r.yaml: policy.{message}")


def test_a_policy_may_still_drop_a_keep_away_gap_or_shorten_the_repeat_gap() -> None:
    parsed = parse_regimen_text(
        BASE + "policy: {black_tea_gap_hours: 0, repeat_gap_hours: 1, lozenge_dose: 14000 µg}"
    )
    assert parsed.policy.black_tea_gap_hours == 0
    assert parsed.policy.repeat_gap_hours == 1
    assert parsed.policy.lozenge_dose.milligrams == 14


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("", "empty"),
        ("null\n", "empty"),
        ("---\n", "empty"),
        ("42\n", "the number 42"),
        ("[1, 2]\n", "a list"),
        ("just words\n", "a line of text"),
        ("true\n", "the value true"),
    ],
)
def test_a_file_that_is_no_mapping_is_told_what_it_must_be(text: str, what: str) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(text, "r.yaml")
    assert str(caught.value) == (
        f"r.yaml: the file must be a mapping with person and supplements; it is {what}"
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"+4520123456"',
            "+4520123456",
            "person.phone: must be text: put it in quotes (unquoted, it is the number 4520123456)",
        ),
        (
            "name: Ana",
            "name: no",
            "person.name: must be text: put it in quotes (unquoted, it is the value false)",
        ),
        (
            "name: iron",
            "name: 5",
            "supplements.0.name: must be text: put it in quotes (unquoted, it is the number 5)",
        ),
    ],
)
def test_an_unquoted_value_yaml_reads_as_no_text_is_told_to_quote_it(
    old: str, new: str, message: str
) -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(BASE.replace(old, new), "r.yaml")
    assert str(caught.value) == f"r.yaml: {message}"


def test_a_date_where_a_time_belongs_is_shown_as_written() -> None:
    with pytest.raises(RegimenFileError) as caught:
        parse_regimen_text(BASE + "meals: [{name: lunch, at: 2026-01-01}]", "r.yaml")
    assert str(caught.value).endswith(
        'a time of day is written "HH:MM" (like "07:30"), not 2026-01-01'
    )
