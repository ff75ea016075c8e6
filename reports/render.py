"""The adherence report as text: an 80-column table, CSV, JSON and one self-contained HTML file.

Charts are SVG drawn here, inline: nothing is fetched from anywhere (many clinics are offline).
The dashboard reuses the SVG and page pieces. What people read (the table, the HTML) is in the
admin's language, with supplements by their display names; CSV and JSON keep the canonical keys
and field names (other programs read them) and add the display names beside them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Collection
from datetime import date, timedelta
from html import escape
from typing import Any

from babel.dates import get_day_names
from babel.numbers import format_decimal, format_percent

from i18n import Translator, translator
from reports.adherence import AdherenceReport, Counts, DayLine, DoseLine, IronTiming, PersonLine
from schemas.languages import DEFAULT_LANGUAGE, display_name

OUTCOME_COLOURS = {
    "on_time": "#2e7d32",
    "late": "#9ccc65",
    "skipped": "#ffb300",
    "missed": "#c62828",
    "expired": "#6d4c41",
    "open": "#b0bec5",
}


def outcome_words(t: Translator) -> dict[str, str]:
    """What became of a dose, as the calendar's legend and tooltips say it."""
    return {
        "on_time": t.gettext("taken on time"),
        "late": t.gettext("taken late"),
        "skipped": t.gettext("skipped"),
        "missed": t.gettext("missed"),
        "expired": t.gettext("expired"),
        "open": t.gettext("open"),
    }


def percent(value: float | None, language: str = DEFAULT_LANGUAGE) -> str:
    """A share as the language writes it ("82%", "82 %"); "-" for none."""
    if value is None:
        return "-"
    return format_percent(value, locale=language)


def supplement_names(keys: Collection[str], language: str) -> dict[str, str]:
    """Each canonical key with its display name, in the order a reader looks them up."""
    shown = {key: display_name(key, language) for key in keys}
    return dict(sorted(shown.items(), key=lambda pair: (pair[1].casefold(), pair[0])))


# -- table ---------------------------------------------------------------------------------


def render_table(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> str:
    """Fits an 80-column terminal."""
    t = translator(language)
    totals = report.totals
    heads = (
        t.gettext("id"),
        t.gettext("name"),
        t.gettext("plan"),
        t.gettext("sent"),
        t.gettext("ontime"),
        t.gettext("late"),
        t.gettext("skip"),
        t.gettext("miss"),
        t.gettext("adh"),
        t.gettext("streak"),
    )
    widths = tuple(max(width, len(head)) for width, head in zip(_WIDTHS, heads, strict=True))
    lines = [
        t.ngettext(
            "Adherence {start} to {end}: {n} person",
            "Adherence {start} to {end}: {n} people",
            len(report.people),
            start=report.start.isoformat(),
            end=report.end.isoformat(),
        ),
        _reminders_line(totals, t),
        "",
        _row(widths, *heads),
        _row(widths, *("-" * width for width in widths)),
    ]
    for person in report.by_attention():
        c = person.counts
        lines.append(
            _row(
                widths,
                str(person.id),
                _clip(person.name, widths[1]),
                *_numbers(c, language),
                f"{person.streaks.current}/{person.streaks.longest}",
            )
        )
    lines += [
        _row(widths, "", t.gettext("all"), *_numbers(totals, language), ""),
        "",
        t.gettext("streak: current/longest days in a row with every dose taken"),
        *textwrap.wrap(opted_out_note(report, t), 80),
        "",
        *_supplement_lines(report.supplements, t),
    ]
    iron, deliveries, colds = report.iron_timing, report.deliveries, report.cold_courses
    lines += [
        "",
        t.gettext(
            "iron timing: {kept} of {taken} taken kept {hours} h from dairy, calcium, "
            "medicines ({share})",
            kept=iron.gap_kept,
            taken=iron.taken,
            hours=format_decimal(iron.min_hours, locale=language),
            share=percent(iron.ratio, language),
        ),
        t.gettext(
            "deliveries: {delivered} delivered, {failed} failed, {fallback} fell back to e-mail",
            delivered=deliveries.delivered,
            failed=deliveries.failed,
            fallback=deliveries.email_fallback,
        ),
        t.gettext(
            "cold courses: {started} started, {completed} completed, {early} ended early",
            started=colds.started,
            completed=colds.completed,
            early=colds.ended_early,
        ),
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


# id, name, then plan, sent, on time, late, skip, miss, adherence, streak
_WIDTHS = (4, 20, 5, 5, 7, 5, 5, 5, 5, 7)


def _numbers(c: Counts, language: str) -> tuple[str, ...]:
    counts = (c.planned, c.sent, c.on_time, c.late, c.skipped, c.missed)
    return (*(str(n) for n in counts), percent(c.adherence, language))


def _supplement_lines(supplements: dict[str, Counts], t: Translator) -> list[str]:
    """Per supplement, by the names a reader knows them by."""
    heads = (
        t.gettext("supplement"),
        t.gettext("plan"),
        t.gettext("taken"),
        t.gettext("late"),
        t.gettext("skip"),
        t.gettext("miss"),
        t.gettext("adh"),
    )
    least = (20, 6, 6, 5, 5, 5, 5)
    widths = [max(width, len(head)) for width, head in zip(least, heads, strict=True)]
    name_width, *number_widths = widths

    def line(name: str, *cells: str) -> str:
        padded = (cell.rjust(width) for cell, width in zip(cells, number_widths, strict=True))
        return " ".join([name.ljust(name_width), *padded])

    lines = [line(*heads)]
    for key, name in supplement_names(supplements, t.language).items():
        c = supplements[key]
        counts = (c.planned, c.taken, c.late, c.skipped, c.missed)
        share = percent(c.adherence, t.language)
        lines.append(line(_clip(name, name_width), *(str(n) for n in counts), share))
    return lines


def _reminders_line(totals: Counts, t: Translator) -> str:
    return t.ngettext(
        "{n} reminder planned, {taken} taken: {share} of those due",
        "{n} reminders planned, {taken} taken: {share} of those due",
        totals.planned,
        taken=totals.taken,
        share=percent(totals.adherence, t.language),
    )


def summary(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> str:
    """The report's people and reminders in a paragraph, and who was opted out on whole days."""
    t = translator(language)
    people = t.ngettext("{n} person", "{n} people", len(report.people))
    lines = [
        f'<p class="summary">{escape(people)} · {escape(_reminders_line(report.totals, t))}</p>'
    ]
    note = opted_out_note(report, t)
    if note:
        lines.append(f'<p class="opted-out">{escape(note)}</p>')
    return "".join(lines)


def opted_out_note(report: AdherenceReport, t: Translator) -> str:
    """Who was opted out (STOP) on whole days of the window: those days count nowhere in the
    figures, which the figures alone do not show. Empty when nobody was."""
    stopped = [person for person in report.by_attention() if person.opted_out_days]
    if not stopped:
        return ""
    days = [
        t.ngettext(
            "{name} {n} day",
            "{name} {n} days",
            person.opted_out_days,
            name=_clip(person.name, 20),
        )
        for person in stopped
    ]
    return t.gettext("opted out, not counted: {people}", people=", ".join(days))


def _row(widths: tuple[int, ...], *cells: str) -> str:
    """The id right-aligned, the name left-aligned, the numbers right-aligned."""
    identifier, name, *numbers = cells
    id_width, name_width, *number_widths = widths
    return " ".join(
        [
            identifier.rjust(id_width),
            name.ljust(name_width),
            *(n.rjust(w) for n, w in zip(numbers, number_widths, strict=True)),
        ]
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- CSV and JSON --------------------------------------------------------------------------

CSV_COLUMNS = (
    "person_id",
    "name",
    "phone",
    "supplement",
    "planned",
    "sent",
    "on_time",
    "late",
    "taken",
    "skipped",
    "missed",
    "expired",
    "open",
    "adherence",
    "streak_current",
    "streak_longest",
    "iron_taken",
    "iron_gap_kept",
    "cold_courses_started",
    "cold_courses_completed",
    "delivered",
    "failed",
    "email_fallback",
    "opted_out_days",
    "supplement_name",
)


def render_csv(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> str:
    """One row per person (supplement empty), then one per person and supplement; the
    supplement is its canonical key, `supplement_name` its display name in `language`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for person in report.by_attention():
        writer.writerow(_csv_row(person, "", "", person.counts, whole=True))
        for key, name in supplement_names(person.supplements, language).items():
            writer.writerow(_csv_row(person, key, name, person.supplements[key], whole=False))
    return out.getvalue()


def _csv_row(
    person: PersonLine, supplement: str, shown: str, c: Counts, *, whole: bool
) -> list[str]:
    adherence = "" if c.adherence is None else f"{c.adherence:.4f}"
    cells = [
        str(person.id),
        _inert(person.name),
        _inert(person.phone),
        _inert(supplement),
        *(str(n) for n in (c.planned, c.sent, c.on_time, c.late, c.taken)),
        *(str(n) for n in (c.skipped, c.missed, c.expired, c.open)),
        adherence,
    ]
    extra = (
        person.streaks.current,
        person.streaks.longest,
        person.iron_timing.taken,
        person.iron_timing.gap_kept,
        person.cold_courses.started,
        person.cold_courses.completed,
        person.deliveries.delivered,
        person.deliveries.failed,
        person.deliveries.email_fallback,
        person.opted_out_days,
    )
    return cells + [str(n) if whole else "" for n in extra] + [_inert(shown)]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def _inert(text: str) -> str:
    """Text a spreadsheet would run as a formula (a name such as '=HYPERLINK(...)') made
    plain with a leading apostrophe, as OWASP advises for CSV; a plain number or an E.164
    phone number ('+4520123456') is left as it is."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def report_json(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """The report's values with canonical keys, and `supplement_names`: each key the report
    holds with its display name in `language`."""
    keys = set(report.supplements)
    for person in report.people:
        keys.update(person.supplements)
    for dose in report.doses:
        keys.update(dose.supplements)
    return {**report.as_dict(), "supplement_names": supplement_names(keys, language)}


def render_json(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> str:
    return json.dumps(report_json(report, language), ensure_ascii=False, indent=2) + "\n"


# -- SVG charts ----------------------------------------------------------------------------


def svg_trend(
    days: list[DayLine], language: str = DEFAULT_LANGUAGE, width: int = 640, height: int = 200
) -> str:
    """Daily adherence (taken / planned) as a line, 0 to 100 %."""
    t = translator(language)
    left, right, top, bottom = 40, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [(d.day, d.counts.adherence) for d in days if d.counts.adherence is not None]
    parts = [_svg_open(width, height, t.gettext("adherence per day"))]
    for level in (0, 50, 100):
        y = top + plot_h * (1 - level / 100)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
            f'text-anchor="end">{escape(percent(level / 100, language))}</text>'
        )
    if points:
        first, last = points[0][0], points[-1][0]
        span = max((last - first).days, 1)
        coords = [
            (left + plot_w * (day - first).days / span, top + plot_h * (1 - value))
            for day, value in points
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>')
        for (x, y), (day, value) in zip(coords, points, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1565c0">'
                f"<title>{day.isoformat()}: {escape(percent(value, language))}</title></circle>"
            )
        parts.append(
            f'<text x="{left}" y="{height - 8}" font-size="10">{first.isoformat()}</text>'
            f'<text x="{width - right}" y="{height - 8}" font-size="10" '
            f'text-anchor="end">{last.isoformat()}</text>'
        )
    else:
        parts.append(_svg_note(left + 10, top + 20, t.gettext("no doses")))
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(
    people: list[PersonLine], language: str = DEFAULT_LANGUAGE, limit: int = 40, width: int = 640
) -> str:
    """Adherence per person, those who need attention first."""
    t = translator(language)
    shown = [p for p in people if p.counts.adherence is not None][:limit]
    row, label_w = 18, 180
    height = max(row * len(shown) + 20, 40)
    parts = [_svg_open(width, height, t.gettext("adherence per person"))]
    for index, person in enumerate(shown):
        y = 10 + index * row
        value = person.counts.adherence or 0.0
        bar = (width - label_w - 50) * value
        colour = "#c62828" if value < 0.5 else "#ffb300" if value < 0.8 else "#2e7d32"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
            f"{escape(_clip(person.name, 26))}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{bar:.1f}" height="{row - 5}" '
            f'fill="{colour}"/><text x="{label_w + bar + 4:.1f}" y="{y + 12}" '
            f'font-size="11">{escape(percent(value, language))}</text>'
        )
    if not shown:
        parts.append(_svg_note(10, 24, t.gettext("no doses")))
    parts.append("</svg>")
    return "".join(parts)


OPTED_OUT_FILL = "#d7ccc8"
# the legend's text is sized by a sans-serif letter's mean width at font-size 10
_LEGEND_LETTER = 6.0
_LEGEND_ROW = 16


def svg_calendar(
    doses: list[DoseLine],
    start: date,
    end: date,
    opted_out: Collection[date] = (),
    language: str = DEFAULT_LANGUAGE,
) -> str:
    """A month-style calendar: a week per row, a day per cell, a square per dose coloured by
    what became of it; days the person was opted out are shaded and labelled (they are left
    out of adherence). Its legend wraps to as many rows as the language's words need."""
    t = translator(language)
    words = outcome_words(t)
    opted_out_word = t.gettext("opted out")
    by_day: dict[date, list[DoseLine]] = defaultdict(list)
    for dose in doses:
        by_day[dose.day].append(dose)
    first = start - timedelta(days=start.weekday())
    weeks = (end - first).days // 7 + 1
    cell, gap, head = 64, 4, 18
    width = 7 * (cell + gap) + gap
    legend = [(words[outcome], colour) for outcome, colour in OUTCOME_COLOURS.items()]
    placed = _legend_places([*legend, (opted_out_word, OPTED_OUT_FILL)], width - gap, gap)
    legend_rows = 1 + max(row for row, _x, _words, _colour in placed)
    calendar_bottom = head + weeks * (cell + gap) + gap
    height = calendar_bottom + legend_rows * _LEGEND_ROW + 8
    parts = [_svg_open(width, height, t.gettext("doses by day"))]
    day_names = get_day_names("abbreviated", locale=language)
    for index in range(7):
        parts.append(
            f'<text x="{gap + index * (cell + gap) + cell / 2}" y="13" font-size="11" '
            f'text-anchor="middle">{escape(day_names[index])}</text>'
        )
    day = first
    while day <= end:
        offset = (day - first).days
        x = gap + (offset % 7) * (cell + gap)
        y = head + (offset // 7) * (cell + gap)
        inside = day >= start
        if day in opted_out:
            title = t.gettext("{day}: opted out, left out of adherence", day=day.isoformat())
            parts.append(
                f'<g class="day opted-out"><title>{escape(title)}</title>'
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" '
                f'fill="{OPTED_OUT_FILL}" stroke="#a1887f"/>'
                f'<text x="{x + 4}" y="{y + 12}" font-size="10" fill="#555">{day.day}</text>'
                f'<text x="{x + cell / 2}" y="{y + cell - 8}" font-size="9" fill="#5d4037" '
                f'text-anchor="middle">{escape(opted_out_word)}</text></g>'
            )
        else:
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" '
                f'fill="{"#fafafa" if inside else "#eeeeee"}" stroke="#ccc"/>'
                f'<text x="{x + 4}" y="{y + 12}" font-size="10" fill="#555">{day.day}</text>'
            )
        for index, dose in enumerate(by_day.get(day, [])):
            sx = x + 4 + (index % 4) * 15
            sy = y + 18 + (index // 4) * 15
            names = " + ".join(display_name(key, language) for key in dose.supplements)
            what = f"{dose.due_at:%H:%M} {names}: {words[dose.outcome]}"
            parts.append(
                f'<rect class="dose {dose.outcome}" x="{sx}" y="{sy}" width="12" height="12" '
                f'fill="{OUTCOME_COLOURS[dose.outcome]}"><title>{escape(what)}</title></rect>'
            )
        day += timedelta(days=1)
    for row, lx, text, colour in placed:
        ly = calendar_bottom + 12 + row * _LEGEND_ROW
        parts.append(
            f'<rect x="{lx:.0f}" y="{ly - 10}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14:.0f}" y="{ly}" font-size="10">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend_places(
    items: list[tuple[str, str]], right: float, left: float
) -> list[tuple[int, float, str, str]]:
    """(row, x, words, colour) of each legend item: side by side, a new row when the next
    one would pass `right`; every item's words whole."""
    placed: list[tuple[int, float, str, str]] = []
    row, x = 0, left
    for text, colour in items:
        span = 14 + len(text) * _LEGEND_LETTER + 10
        if x > left and x + span > right:
            row, x = row + 1, left
        placed.append((row, x, text, colour))
        x += span
    return placed


def svg_iron(timing: IronTiming, language: str = DEFAULT_LANGUAGE, width: int = 320) -> str:
    """Iron doses taken: gap kept against gap broken, as one stacked bar `width` wide, its
    caption below it; the chart widens when the language's caption is longer than the bar."""
    t = translator(language)
    if timing.taken == 0:
        label = t.gettext("no iron doses taken")
    else:
        label = t.gettext(
            "{kept} of {taken} kept {hours} h from dairy, calcium and medicines ({share})",
            kept=timing.gap_kept,
            taken=timing.taken,
            hours=format_decimal(timing.min_hours, locale=language),
            share=percent(timing.ratio, language),
        )
    # a sans-serif letter at font-size 11 is about 6.2 px wide on average
    outer = max(width, math.ceil(len(label) * 6.2) + 8)
    parts = [_svg_open(outer, 46, t.gettext("iron timing"))]
    if timing.taken == 0:
        parts.append(_svg_note(4, 24, label))
    else:
        kept = (width - 8) * timing.gap_kept / timing.taken
        parts.append(
            f'<rect x="4" y="4" width="{kept:.1f}" height="20" fill="#2e7d32"/>'
            f'<rect x="{4 + kept:.1f}" y="4" width="{width - 8 - kept:.1f}" height="20" '
            f'fill="#c62828"/><text x="4" y="40" font-size="11">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'font-family="sans-serif">'
    )


# -- HTML ----------------------------------------------------------------------------------


def heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def empty(text: str) -> str:
    """What a page says where a list or table has nothing to show."""
    return f'<p class="empty">{escape(text)}</p>'


def _svg_note(x: int, y: int, text: str) -> str:
    return f'<text x="{x}" y="{y}" font-size="12">{escape(text)}</text>'


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e0e0e0;text-align:right}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
th a{color:inherit}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.4rem}
.low{background:#ffebee}
"""


def cards(
    report: AdherenceReport,
    people: list[PersonLine] | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> str:
    t = translator(language)
    chosen = report.people if people is None else people
    totals = sum((p.counts for p in chosen), Counts())
    iron = sum((p.iron_timing for p in chosen), IronTiming())
    items = [
        (t.gettext("adherence"), percent(totals.adherence, language), "adherence"),
        (t.gettext("planned"), str(totals.planned), "planned"),
        (t.gettext("taken on time"), str(totals.on_time), "on_time"),
        (t.gettext("taken late"), str(totals.late), "late"),
        (t.gettext("skipped"), str(totals.skipped), "skipped"),
        (t.gettext("missed"), str(totals.missed), "missed"),
        (t.gettext("iron timing"), percent(iron.ratio, language), "iron_timing"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card" data-measure="{key}"><b>{escape(value)}</b>{escape(label)}</div>'
            for label, value, key in items
        )
        + "</div>"
    )


def render_html(report: AdherenceReport, language: str = DEFAULT_LANGUAGE) -> str:
    """One self-contained page: no scripts, styles or images from elsewhere."""
    t = translator(language)
    title = t.gettext(
        "dosewise adherence {start} to {end}",
        start=report.start.isoformat(),
        end=report.end.isoformat(),
    )
    people = report.by_attention()
    body = [
        f"<h1>{escape(title)}</h1>",
        summary(report, language),
        cards(report, language=language),
    ]
    body.append(heading(t.gettext("Adherence per day")) + svg_trend(report.days, language))
    body.append(
        heading(t.gettext("People, those who need attention first")) + svg_bars(people, language)
    )
    body.append(people_table(people, link=None, language=language))
    if report.doses:
        body.append(
            heading(t.gettext("Doses"))
            + svg_calendar(report.doses, report.start, report.end, report.opted_out, language)
        )
    body.append(heading(t.gettext("Iron timing")) + svg_iron(report.iron_timing, language))
    body.append(supplements_table(report.supplements, language))
    return page(title, "".join(body), language)


def page(title: str, body: str, language: str = DEFAULT_LANGUAGE) -> str:
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _people_heads(t: Translator) -> list[tuple[str, str]]:
    """(sort key, heading) of the overview table's columns after the phone."""
    return [
        ("name", t.gettext("name")),
        ("planned", t.gettext("planned")),
        ("taken", t.gettext("taken")),
        ("late", t.gettext("late")),
        ("skipped", t.gettext("skipped")),
        ("missed", t.gettext("missed")),
        ("adherence", t.gettext("adherence")),
        ("streak", t.gettext("streak")),
        ("iron", t.gettext("iron timing")),
    ]


def people_table(
    people: list[PersonLine],
    link: str | None,
    sort_link: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> str:
    """The overview table; `link` formats a person's page address from `{id}`, `sort_link`
    a column's sort address from `{key}`. Nobody in it: a line that says so."""
    t = translator(language)
    if not people:
        return empty(t.gettext("Nobody is enrolled yet."))

    def head(key: str, label: str) -> str:
        if sort_link is None:
            return f"<th>{escape(label)}</th>"
        return f'<th><a href="{escape(sort_link.format(key=key))}">{escape(label)}</a></th>'

    heads = [head(key, label) for key, label in _people_heads(t)]
    phone = t.gettext("phone")
    heads.insert(1, f"<th>{escape(phone)}</th>")
    rows = []
    for person in people:
        c = person.counts
        name = escape(person.name)
        if link:
            name = f'<a href="{escape(link.format(id=person.id))}">{name}</a>'
        low = c.adherence is not None and c.adherence < 0.8
        rows.append(
            f'<tr data-person="{person.id}"{" class=low" if low else ""}>'
            f"<td>{name}</td><td>{escape(person.phone)}</td>"
            f'<td data-measure="planned">{c.planned}</td>'
            f'<td data-measure="taken">{c.taken}</td>'
            f'<td data-measure="late">{c.late}</td>'
            f'<td data-measure="skipped">{c.skipped}</td>'
            f'<td data-measure="missed">{c.missed}</td>'
            f'<td data-measure="adherence">{escape(percent(c.adherence, language))}</td>'
            f"<td>{person.streaks.current}/{person.streaks.longest}</td>"
            f'<td data-measure="iron">{escape(percent(person.iron_timing.ratio, language))}</td>'
            "</tr>"
        )
    return (
        f'<table class="people"><thead><tr>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def supplements_table(supplements: dict[str, Counts], language: str = DEFAULT_LANGUAGE) -> str:
    """Per supplement by its display name; `data-supplement` keeps the canonical key."""
    t = translator(language)
    title = heading(t.gettext("Supplements"))
    if not supplements:
        return title + empty(t.gettext("No doses were planned."))
    rows = "".join(
        f'<tr data-supplement="{escape(key)}"><td>{escape(name)}</td><td></td>'
        f"<td>{c.planned}</td><td>{c.sent}</td><td>{c.on_time}</td><td>{c.late}</td>"
        f"<td>{c.skipped}</td><td>{c.missed}</td><td>{escape(percent(c.adherence, language))}"
        "</td></tr>"
        for key, name in supplement_names(supplements, language).items()
        for c in (supplements[key],)
    )
    heads = (
        t.gettext("supplement"),
        "",
        t.gettext("planned"),
        t.gettext("sent"),
        t.gettext("on time"),
        t.gettext("late"),
        t.gettext("skipped"),
        t.gettext("missed"),
        t.gettext("adherence"),
    )
    cells = "".join(f"<th>{escape(head)}</th>" for head in heads)
    return f"{title}<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"
