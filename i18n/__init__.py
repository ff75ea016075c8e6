"""Every text a person sees, in their language: gettext catalogues read through Babel.

The catalogues are `locales/<language>/LC_MESSAGES/dosewise.po`; a language is one more such
file. Code marks its texts with `gettext` and `ngettext` on a `Translator`, which `pybabel
extract` finds (`make messages` refreshes the template and the catalogues).
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "dosewise"
DEFAULT_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = tuple(
    sorted(path.parent.parent.name for path in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
)


class Translator:
    """gettext and ngettext of one language, with `str.format` values filled in."""

    def __init__(self, language: str, translations: NullTranslations) -> None:
        self.language = language
        self._translations = translations

    def gettext(self, message: str, **values: Any) -> str:
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """The form for `n` ("1 person", "2 people"); `{n}` in the text is `n`."""
        return self._translations.ngettext(singular, plural, n).format(n=n, **values)


def translator(language: str | None) -> Translator:
    """The language's translator; an unknown language (or None) reads in the default one."""
    known = language if language in LANGUAGES else DEFAULT_LANGUAGE
    return _translator(known)


@cache
def _translator(language: str) -> Translator:
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # the .po is the source; no compiled file to keep in step
    compiled.seek(0)
    return Translator(language, Translations(compiled, domain=DOMAIN))
