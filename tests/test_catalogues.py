"""Every text the code marks for translation is in every language's catalogue, translated,
with the same placeholders, and plural forms as the language has them."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

import i18n

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("i18n", "schemas", "planner", "scheduler", "notifier", "tracker", "services", "store")
PACKAGES += ("reports", "dosewise")


def _marked() -> dict[str, str | None]:
    """msgid -> its plural msgid (None for a singular text), as `make messages` extracts them."""
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")]
        ):
            if isinstance(message, tuple):
                found[message[0]] = message[1]
            else:
                found[message] = None
    return found


def _catalogue(language: str) -> Catalog:
    path = i18n.LOCALES / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as po:
        return read_po(po, locale=language)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


MARKED = _marked()


def test_the_code_marks_texts_for_translation() -> None:
    assert len(MARKED) > 20
    assert any(plural is not None for plural in MARKED.values())


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_marked_text_is_in_the_catalogue(language: str) -> None:
    catalogue = _catalogue(language)
    missing = sorted(msgid for msgid in MARKED if msgid not in catalogue)
    assert not missing, f"run `make messages`; {language} lacks: {missing[:5]}"


@pytest.mark.parametrize("language", [code for code in i18n.LANGUAGES if code != "en"])
def test_every_text_is_translated_with_the_same_placeholders(language: str) -> None:
    catalogue = _catalogue(language)
    problems = []
    for msgid in MARKED:
        message = catalogue.get(msgid)
        if message is None:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = _placeholders(msgid)
        if message.fuzzy or not all(forms):
            problems.append(f"not translated: {msgid!r}")
        for form in forms:
            if form and _placeholders(form) != wanted:
                problems.append(f"placeholders differ: {msgid!r} -> {form!r}")
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_plural_forms_are_the_languages_own(language: str) -> None:
    catalogue = _catalogue(language)
    assert catalogue.num_plurals == get_plural(language).num_plurals
    for msgid, plural in MARKED.items():
        if plural is None:
            continue
        message = catalogue[msgid]
        assert isinstance(message.id, tuple), f"{msgid!r} is plural in the code, not in {language}"
        if language != "en":
            assert len(message.string) == catalogue.num_plurals


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_counted_texts_agree_with_their_number(language: str) -> None:
    """No "1 people", in any language: the form for one is not the form for two."""
    translate = i18n.translator(language)
    for msgid, plural in MARKED.items():
        if plural is None or "{n}" not in msgid:
            continue
        values = dict.fromkeys((_placeholders(msgid) | _placeholders(plural)) - {"n"}, "x")
        one = translate.ngettext(msgid, plural, 1, **values)
        two = translate.ngettext(msgid, plural, 2, **values)
        assert one != two.replace("2", "1"), f"{language}: {msgid!r} reads the same for 1 and 2"


def test_an_unknown_language_reads_in_the_default_one() -> None:
    assert i18n.translator("xx").language == i18n.DEFAULT_LANGUAGE
    assert i18n.translator(None).language == i18n.DEFAULT_LANGUAGE


def test_the_template_is_up_to_date() -> None:
    with (i18n.LOCALES.parent / f"{i18n.DOMAIN}.pot").open("rb") as pot:
        template = read_po(pot)
    assert {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in template
        if message.id
    } == set(MARKED), "run `make messages`"
