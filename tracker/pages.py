"""The small HTML page a confirm link answers with, in its reader's language."""

from __future__ import annotations

from html import escape

from i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, translator


def _title(status: str, words: Translator) -> str:
    titles = {
        "recorded": words.gettext("Recorded"),
        "used": words.gettext("Link already used"),
        "expired": words.gettext("Link expired"),
        "closed": words.gettext("Already answered"),
        "unknown": words.gettext("Unknown link"),
        "unavailable": words.gettext("Not recorded yet"),
    }
    return titles.get(status, "dosewise")


def link_page(status: str, text: str, language: str | None = None) -> str:
    """The page for a link's `status`, its title and `lang` in `language` (English when the
    person is not known); `text` comes written in that language."""
    words = translator(language or DEFAULT_LANGUAGE)
    title = _title(status, words)
    return (
        "<!doctype html>\n"
        f'<html lang="{escape(words.language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dosewise: {escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}</style></head>\n"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>\n"
    )


def unknown_link_page(language: str) -> str:
    words = translator(language)
    return link_page("unknown", words.gettext("This link is not one dosewise sent."), language)


def unavailable_page(language: str) -> str:
    words = translator(language)
    text = words.gettext("dosewise cannot record this right now. Please open the link again later.")
    return link_page("unavailable", text, language)


def reader_language(accept_language: str | None) -> str:
    """The language a browser asks for (its Accept-Language header) among those dosewise
    writes, for a page whose person is not known; the default when it asks for none of them."""
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if quality > 0 and language in LANGUAGES:
            wanted.append((-quality, position, language))
    return min(wanted)[2] if wanted else DEFAULT_LANGUAGE
