"""The adherence report as text: an 80-column table, CSV, JSON and one self-contained HTML file.

Charts are SVG drawn here, inline: nothing is fetched from anywhere (many clinics are offline).
The dashboard reuses the SVG and page pieces.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections import defaultdict
from collections.abc import Collection
from datetime import date, timedelta
from html import escape

from reports.adherence import AdherenceReport, Counts, DayLine, DoseLine, IronTiming, PersonLine

OUTCOME_COLOURS = {
    "on_time": "#2e7d32",
    "late": "#9ccc65",
    "skipped": "#ffb300",
    "missed": "#c62828",
    "expired": "#6d4c41",
    "open": "#b0bec5",
}
OUTCOME_WORDS = {
    "on_time": "taken on time",
    "late": "taken late",
    "skipped": "skipped",
    "missed": "missed",
    "expired": "expired",
    "open": "open",
}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


# -- table ---------------------------------------------------------------------------------


def render_table(report: AdherenceReport) -> str:
    """Fits an 80-column terminal."""
    totals = report.totals
    lines = [
        f"Adherence {report.start.isoformat()} to {report.end.isoformat()}: "
        f"{len(report.people)} people",
        f"{totals.planned} reminders planned, {totals.taken} taken: "
        f"{percent(totals.adherence)} of those due",
        "",
        _row("id", "name", "plan", "sent", "ontime", "late", "skip", "miss", "adh", "streak"),
        _row("----", "-" * 20, "----", "----", "------", "----", "----", "----", "----", "-----"),
    ]
    for person in report.by_attention():
        c = person.counts
        lines.append(
            _row(
                str(person.id),
                _clip(person.name, 20),
                str(c.planned),
                str(c.sent),
                str(c.on_time),
                str(c.late),
                str(c.skipped),
                str(c.missed),
                percent(c.adherence),
                f"{person.streaks.current}/{person.streaks.longest}",
            )
        )
    lines += [
        _row(
            "",
            "all",
            str(totals.planned),
            str(totals.sent),
            str(totals.on_time),
            str(totals.late),
            str(totals.skipped),
            str(totals.missed),
            percent(totals.adherence),
            "",
        ),
        "",
        "streak: current/longest days with every dose taken",
        *_opted_out_note(report),
        "",
        f"{'supplement':<20} {'plan':>6} {'taken':>6} {'late':>5} {'skip':>5} {'miss':>5} "
        f"{'adh':>5}",
    ]
    for name, counts in sorted(report.supplements.items()):
        lines.append(
            f"{_clip(name, 20):<20} {counts.planned:>6} {counts.taken:>6} {counts.late:>5} "
            f"{counts.skipped:>5} {counts.missed:>5} {percent(counts.adherence):>5}"
        )
    iron, deliveries, colds = report.iron_timing, report.deliveries, report.cold_courses
    lines += [
        "",
        f"iron timing: {iron.gap_kept} of {iron.taken} taken kept {iron.min_hours:g} h from "
        f"dairy, calcium, medicines ({percent(iron.ratio)})",
        f"deliveries: {deliveries.delivered} delivered, {deliveries.failed} failed, "
        f"{deliveries.email_fallback} fell back to e-mail",
        f"cold courses: {colds.started} started, {colds.completed} completed, "
        f"{colds.ended_early} ended early",
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _opted_out_note(report: AdherenceReport) -> list[str]:
    """Who was opted out (STOP) on whole days of the window: those days count nowhere above,
    which the figures alone do not show."""
    stopped = [person for person in report.by_attention() if person.opted_out_days]
    if not stopped:
        return []
    days = [
        f"{_clip(person.name, 20)} {person.opted_out_days} "
        + ("day" if person.opted_out_days == 1 else "days")
        for person in stopped
    ]
    return textwrap.wrap("opted out, not counted: " + ", ".join(days), 80)


def _row(*cells: str) -> str:
    identifier, name, *numbers = cells
    widths = (5, 5, 7, 5, 5, 5, 5, 7)
    return " ".join(
        [
            identifier.rjust(4),
            name.ljust(20),
            *(n.rjust(w) for n, w in zip(numbers, widths, strict=True)),
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
)


def render_csv(report: AdherenceReport) -> str:
    """One row per person (supplement empty), then one per person and supplement."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for person in report.by_attention():
        writer.writerow(_csv_row(person, "", person.counts, whole=True))
        for name, counts in sorted(person.supplements.items()):
            writer.writerow(_csv_row(person, name, counts, whole=False))
    return out.getvalue()


def _csv_row(person: PersonLine, supplement: str, c: Counts, *, whole: bool) -> list[str]:
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
    return cells + [str(n) if whole else "" for n in extra]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def _inert(text: str) -> str:
    """Text a spreadsheet would run as a formula (a name such as '=HYPERLINK(...)') made
    plain with a leading apostrophe, as OWASP advises for CSV; a plain number or an E.164
    phone number ('+4520123456') is left as it is."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def render_json(report: AdherenceReport) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n"


# -- SVG charts ----------------------------------------------------------------------------


def svg_trend(days: list[DayLine], width: int = 640, height: int = 200) -> str:
    """Daily adherence (taken / planned) as a line, 0 to 100 %."""
    left, right, top, bottom = 40, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [(d.day, d.counts.adherence) for d in days if d.counts.adherence is not None]
    parts = [_svg_open(width, height, "adherence per day")]
    for level in (0, 50, 100):
        y = top + plot_h * (1 - level / 100)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
            f'text-anchor="end">{level}%</text>'
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
                f"<title>{day.isoformat()}: {percent(value)}</title></circle>"
            )
        parts.append(
            f'<text x="{left}" y="{height - 8}" font-size="10">{first.isoformat()}</text>'
            f'<text x="{width - right}" y="{height - 8}" font-size="10" '
            f'text-anchor="end">{last.isoformat()}</text>'
        )
    else:
        parts.append(f'<text x="{left + 10}" y="{top + 20}" font-size="12">no doses</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(people: list[PersonLine], limit: int = 40, width: int = 640) -> str:
    """Adherence per person, those who need attention first."""
    shown = [p for p in people if p.counts.adherence is not None][:limit]
    row, label_w = 18, 180
    height = max(row * len(shown) + 20, 40)
    parts = [_svg_open(width, height, "adherence per person")]
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
            f'font-size="11">{percent(value)}</text>'
        )
    if not shown:
        parts.append('<text x="10" y="24" font-size="12">no doses</text>')
    parts.append("</svg>")
    return "".join(parts)


OPTED_OUT_FILL = "#d7ccc8"


def svg_calendar(
    doses: list[DoseLine], start: date, end: date, opted_out: Collection[date] = ()
) -> str:
    """A month-style calendar: a week per row, a day per cell, a square per dose coloured by
    what became of it; days the person was opted out are shaded and labelled (they are left
    out of adherence)."""
    by_day: dict[date, list[DoseLine]] = defaultdict(list)
    for dose in doses:
        by_day[dose.day].append(dose)
    first = start - timedelta(days=start.weekday())
    weeks = (end - first).days // 7 + 1
    cell, gap, head = 64, 4, 18
    width = 7 * (cell + gap) + gap
    height = head + weeks * (cell + gap) + gap + 24
    parts = [_svg_open(width, height, "doses by day")]
    for index, name in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")):
        parts.append(
            f'<text x="{gap + index * (cell + gap) + cell / 2}" y="13" font-size="11" '
            f'text-anchor="middle">{name}</text>'
        )
    day = first
    while day <= end:
        offset = (day - first).days
        x = gap + (offset % 7) * (cell + gap)
        y = head + (offset // 7) * (cell + gap)
        inside = day >= start
        if day in opted_out:
            parts.append(
                f'<g class="day opted-out"><title>{day.isoformat()}: opted out, left out of '
                f'adherence</title><rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" '
                f'fill="{OPTED_OUT_FILL}" stroke="#a1887f"/>'
                f'<text x="{x + 4}" y="{y + 12}" font-size="10" fill="#555">{day.day}</text>'
                f'<text x="{x + cell / 2}" y="{y + cell - 8}" font-size="9" fill="#5d4037" '
                f'text-anchor="middle">opted out</text></g>'
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
            what = f"{dose.due_at:%H:%M} {' + '.join(dose.supplements)}"
            parts.append(
                f'<rect class="dose {dose.outcome}" x="{sx}" y="{sy}" width="12" height="12" '
                f'fill="{OUTCOME_COLOURS[dose.outcome]}"><title>{escape(what)}: '
                f"{OUTCOME_WORDS[dose.outcome]}</title></rect>"
            )
        day += timedelta(days=1)
    legend_y = height - 8
    legend = [(OUTCOME_WORDS[outcome], colour) for outcome, colour in OUTCOME_COLOURS.items()]
    for index, (words, colour) in enumerate([*legend, ("opted out", OPTED_OUT_FILL)]):
        lx = gap + index * 68
        parts.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{legend_y}" font-size="10">{words}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_iron(timing: IronTiming, width: int = 320) -> str:
    """Iron doses taken: gap kept against gap broken, as one stacked bar."""
    parts = [_svg_open(width, 46, "iron timing")]
    if timing.taken == 0:
        parts.append('<text x="4" y="24" font-size="12">no iron doses taken</text>')
    else:
        kept = (width - 8) * timing.gap_kept / timing.taken
        parts.append(
            f'<rect x="4" y="4" width="{kept:.1f}" height="20" fill="#2e7d32"/>'
            f'<rect x="{4 + kept:.1f}" y="4" width="{width - 8 - kept:.1f}" height="20" '
            f'fill="#c62828"/><text x="4" y="40" font-size="11">{timing.gap_kept} of '
            f"{timing.taken} kept {timing.min_hours:g} h from dairy, calcium and medicines "
            f"({percent(timing.ratio)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
        f'font-family="sans-serif">'
    )


# -- HTML ----------------------------------------------------------------------------------

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


def cards(report: AdherenceReport, people: list[PersonLine] | None = None) -> str:
    chosen = report.people if people is None else people
    totals = sum((p.counts for p in chosen), Counts())
    iron = sum((p.iron_timing for p in chosen), IronTiming())
    items = [
        ("adherence", percent(totals.adherence), "adherence"),
        ("planned", str(totals.planned), "planned"),
        ("taken on time", str(totals.on_time), "on_time"),
        ("taken late", str(totals.late), "late"),
        ("skipped", str(totals.skipped), "skipped"),
        ("missed", str(totals.missed), "missed"),
        ("iron timing", percent(iron.ratio), "iron_timing"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card" data-measure="{key}"><b>{value}</b>{label}</div>'
            for label, value, key in items
        )
        + "</div>"
    )


def render_html(report: AdherenceReport) -> str:
    """One self-contained page: no scripts, styles or images from elsewhere."""
    title = f"dosewise adherence {report.start.isoformat()} to {report.end.isoformat()}"
    body = [f"<h1>{escape(title)}</h1>", cards(report)]
    body.append("<h2>Adherence per day</h2>" + svg_trend(report.days))
    body.append("<h2>People, those who need attention first</h2>" + svg_bars(report.by_attention()))
    body.append(people_table(report.by_attention(), link=None))
    if report.doses:
        body.append(
            "<h2>Doses</h2>"
            + svg_calendar(report.doses, report.start, report.end, report.opted_out)
        )
    body.append("<h2>Iron timing</h2>" + svg_iron(report.iron_timing))
    body.append(supplements_table(report.supplements))
    return page(title, "".join(body))


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


PEOPLE_COLUMNS = (
    ("name", "name"),
    ("planned", "planned"),
    ("taken", "taken"),
    ("late", "late"),
    ("skipped", "skipped"),
    ("missed", "missed"),
    ("adherence", "adherence"),
    ("streak", "streak"),
    ("iron", "iron timing"),
)


def people_table(people: list[PersonLine], link: str | None, sort_link: str | None = None) -> str:
    """The overview table; `link` formats a person's page address from `{id}`, `sort_link`
    a column's sort address from `{key}`."""

    def head(key: str, label: str) -> str:
        if sort_link is None:
            return f"<th>{label}</th>"
        return f'<th><a href="{escape(sort_link.format(key=key))}">{label}</a></th>'

    heads = [head(key, label) for key, label in PEOPLE_COLUMNS]
    heads.insert(1, "<th>phone</th>")
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
            f'<td data-measure="adherence">{percent(c.adherence)}</td>'
            f"<td>{person.streaks.current}/{person.streaks.longest}</td>"
            f'<td data-measure="iron">{percent(person.iron_timing.ratio)}</td></tr>'
        )
    return (
        f'<table class="people"><thead><tr>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def supplements_table(supplements: dict[str, Counts]) -> str:
    rows = "".join(
        f'<tr data-supplement="{escape(name)}"><td>{escape(name)}</td><td></td>'
        f"<td>{c.planned}</td><td>{c.sent}</td><td>{c.on_time}</td><td>{c.late}</td>"
        f"<td>{c.skipped}</td><td>{c.missed}</td><td>{percent(c.adherence)}</td></tr>"
        for name, c in sorted(supplements.items())
    )
    return (
        "<h2>Supplements</h2><table><thead><tr><th>supplement</th><th></th><th>planned</th>"
        "<th>sent</th><th>on time</th><th>late</th><th>skipped</th><th>missed</th>"
        f"<th>adherence</th></tr></thead><tbody>{rows}</tbody></table>"
    )
