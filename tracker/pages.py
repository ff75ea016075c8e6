"""The small HTML page a confirm link answers with."""

from __future__ import annotations

from html import escape

_TITLES = {
    "recorded": "Recorded",
    "used": "Link already used",
    "expired": "Link expired",
    "closed": "Already answered",
    "unknown": "Unknown link",
    "unavailable": "Not recorded yet",
}


def link_page(status: str, text: str) -> str:
    title = _TITLES.get(status, "dosewise")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dosewise: {escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}</style></head>\n"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>\n"
    )
