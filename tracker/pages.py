"""The small HTML pages a confirm link answers with, in their reader's language: the dose
with its two buttons, or what became of the link. Their one inline style is allowed by hash
(CONTENT_SECURITY_POLICY); they run no script."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import quote

from i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, translator

# the pages' only style, inline; the Content-Security-Policy allows it by this hash
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
    "padding:0 1rem;line-height:1.5}"
    "button{font:inherit;padding:.6rem 1.2rem;margin:0 .5rem .5rem 0;border-radius:.4rem;"
    "border:2px solid #1a4d8f;background:#fff;color:#1a4d8f}"
    "button.chosen{background:#1a4d8f;color:#fff}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _title(status: str, words: Translator) -> str:
    titles = {
        "open": words.gettext("Your dose"),
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
    return _page(_title(status, words), f"<p>{escape(text)}</p>", words)


def answer_page(token: str, text: str, chosen: str, language: str) -> str:
    """The page a confirm link opens while its dose takes an answer: the dose (`text`, in
    `language`) and two buttons that POST the answer back to the same address; the one
    `chosen` (taken | skip, the link's action) is pre-selected. Opening it records nothing."""
    words = translator(language)
    labels = {"taken": words.gettext("I took it"), "skip": words.gettext("Skip this one")}
    buttons = "".join(
        f'<button type="submit" name="action" value="{action}"'
        + (' class="chosen" autofocus' if action == chosen else "")
        + f">{escape(label)}</button>"
        for action, label in labels.items()
    )
    note = words.gettext("Nothing is recorded until you press a button.")
    body = (
        f"<p>{escape(text)}</p>"
        f'<form method="post" action="{quote(token, safe="")}">{buttons}</form>'
        f"<p><small>{escape(note)}</small></p>"
    )
    return _page(_title("open", words), body, words)


def _page(title: str, body: str, words: Translator) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="{escape(words.language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dosewise: {escape(title)}</title>"
        f"<style>{STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
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
