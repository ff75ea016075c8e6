"""Admin: the adherence report as JSON and CSV (bearer token) and the dashboard (cookie).

- `GET /admin/api/adherence?from=D&to=D[&person=P]` and `/admin/api/adherence.csv` need
  `Authorization: Bearer $DOSEWISE_ADMIN_TOKEN`.
- `GET /admin/` signs in with the same token (a form) and then shows everyone, sortable, those
  who need attention first; `GET /admin/people/{id}` one person: a calendar of doses coloured
  by outcome, the adherence trend and the iron timing. Charts are SVG drawn on the server.

The session cookie holds an HMAC of the token (never the token), HttpOnly, SameSite=Strict.
Without a configured token everything here is refused. The pages are in the admin's language
(DOSEWISE_LANGUAGE); the API's JSON and CSV keep canonical keys and add display names.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, datetime, timedelta
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dosewise.settings import Settings
from i18n import Translator, translator
from reports.adherence import AdherenceReport, PersonLine, check_window_length
from reports.lookup import UnknownPerson, adherence_for
from reports.ports import AdherenceQueries
from reports.render import (
    cards,
    empty,
    heading,
    page,
    people_table,
    percent,
    render_csv,
    report_json,
    summary,
    supplements_table,
    svg_bars,
    svg_calendar,
    svg_iron,
    svg_trend,
)
from schemas.dates import checked_date
from tracker.auth import is_admin_token, presented_bearer, require_admin

Clock = Callable[[], datetime]
COOKIE = "dosewise_admin"
From = Annotated[str | None, Query(alias="from", description="first local date YYYY-MM-DD")]
To = Annotated[str | None, Query(alias="to", description="last local date YYYY-MM-DD")]
DEFAULT_DAYS = 30
SORTS: dict[str, Callable[[PersonLine], Any]] = {
    "attention": PersonLine.attention_key,
    "name": lambda p: (p.name.lower(), p.id),
    "planned": lambda p: (-p.counts.planned, p.id),
    "taken": lambda p: (-p.counts.taken, p.id),
    "late": lambda p: (-p.counts.late, p.id),
    "skipped": lambda p: (-p.counts.skipped, p.id),
    "missed": lambda p: (-p.counts.missed, p.id),
    "adherence": PersonLine.attention_key,
    "streak": lambda p: (p.streaks.current, p.streaks.longest, p.id),
    "iron": lambda p: (2.0 if p.iron_timing.ratio is None else p.iron_timing.ratio, p.id),
}


def session_value(admin_token: str) -> str:
    """What the cookie holds: proof of the token, useless as a bearer token."""
    return hmac.new(admin_token.encode(), b"dosewise admin session", hashlib.sha256).hexdigest()


def _signed_in(request: Request, token: str | None) -> bool:
    """The session cookie, or the bearer token itself (scripts, the contract's header)."""
    if not token:
        return False
    bearer = presented_bearer(request)
    if bearer is not None and is_admin_token(bearer, token):
        return True
    presented = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(presented.encode(), session_value(token).encode())


def given_once(request: Request) -> None:
    """400 for a query parameter given twice (`?person=1&person=2`): which one was meant
    would be a guess, and a report for the wrong one looks like the right one."""
    given = [key for key, _value in request.query_params.multi_items()]
    repeated = sorted({key for key in given if given.count(key) > 1})
    if repeated:
        raise HTTPException(400, f"give each query parameter once: {', '.join(repeated)}")


def admin_router(settings: Settings, clock: Clock, queries: AdherenceQueries) -> APIRouter:
    """The admin routes, reading the report through `queries`."""
    token = settings.admin_token
    language = settings.language
    t = translator(language)
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(given_once)])
    bearer = Depends(require_admin(token))

    def window(start: str | None, end: str | None) -> tuple[date, date]:
        try:
            last = checked_date(end) if end else clock().astimezone().date()
            first = checked_date(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        if last < first:
            raise HTTPException(400, f"to ({last}) is before from ({first})")
        try:
            check_window_length(first, last)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        return first, last

    async def build(start: str | None, end: str | None, person: str | None) -> AdherenceReport:
        first, last = window(start, end)

        try:
            return await run_in_threadpool(adherence_for, queries, first, last, clock(), person)
        except UnknownPerson as unknown:
            raise HTTPException(404, str(unknown)) from None

    @router.get("/api/adherence", dependencies=[bearer])
    async def adherence_json(
        start: From = None, end: To = None, person: str | None = None
    ) -> JSONResponse:
        report = await build(start, end, person)
        return JSONResponse(report_json(report, language))

    @router.get("/api/adherence.csv", dependencies=[bearer])
    async def adherence_csv(
        start: From = None, end: To = None, person: str | None = None
    ) -> Response:
        report = await build(start, end, person)
        name = f"adherence-{report.start.isoformat()}-{report.end.isoformat()}.csv"
        return Response(
            render_csv(report, language),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def signed_in(request: Request) -> bool:
        return _signed_in(request, token)

    @router.get("/", response_class=HTMLResponse)
    async def overview(
        request: Request,
        start: From = None,
        end: To = None,
        sort: str = "attention",
    ) -> Response:
        if not signed_in(request):
            return _sign_in_page(t, configured=bool(token))
        report = await build(start, end, None)
        order = SORTS.get(sort, SORTS["attention"])
        people = sorted(report.people, key=order)
        dates = {"from": report.start.isoformat(), "to": report.end.isoformat()}
        sort_link = "?" + urlencode(dates) + "&sort={key}"
        body = [
            _header(report, escape(t.gettext("Everyone")), t),
            summary(report, language),
            cards(report, language=language),
            heading(t.gettext("Needs attention")),
            _needs_attention(report, urlencode(dates), t),
            heading(t.gettext("Adherence per day")),
            svg_trend(report.days, language),
            heading(t.gettext("People")),
            people_table(
                people,
                link="people/{id}?" + urlencode(dates),
                sort_link=sort_link,
                language=language,
            ),
            heading(t.gettext("Adherence per person")),
            svg_bars(report.by_attention(), language),
            supplements_table(report.supplements, language),
        ]
        return HTMLResponse(page(t.gettext("dosewise admin"), "".join(body), language))

    @router.get("/people/{person_id}", response_class=HTMLResponse)
    async def person_page(
        request: Request, person_id: int, start: From = None, end: To = None
    ) -> Response:
        if not signed_in(request):
            return RedirectResponse("/admin/", status_code=303)
        report = await build(start, end, str(person_id))
        if not report.people:
            raise HTTPException(404, "no such person")
        person = report.people[0]
        streak = (
            f'<span data-measure="streak">{person.streaks.current}/{person.streaks.longest}</span>'
        )
        about = [
            escape(person.phone),
            escape(person.timezone),
            escape(
                t.ngettext(
                    "streak {streak} day (current/longest)",
                    "streak {streak} days (current/longest)",
                    person.streaks.longest,
                    streak="{streak}",  # the number's element is put in after escaping
                )
            ).replace("{streak}", streak),
            escape(t.ngettext("opted out {n} day", "opted out {n} days", person.opted_out_days)),
        ]
        deliveries, colds = person.deliveries, person.cold_courses
        summary = " ".join(
            (
                t.gettext(
                    "Deliveries: {delivered} delivered, {failed} failed, {fallback} fell back "
                    "to e-mail.",
                    delivered=deliveries.delivered,
                    failed=deliveries.failed,
                    fallback=deliveries.email_fallback,
                ),
                t.gettext(
                    "Cold courses: {started} started, {completed} completed, {early} ended early.",
                    started=colds.started,
                    completed=colds.completed,
                    early=colds.ended_early,
                ),
            )
        )
        body = [
            _header(report, escape(person.name), t),
            f"<p>{' · '.join(about)}</p>",
            cards(report, language=language),
            heading(t.gettext("Doses")),
            svg_calendar(report.doses, report.start, report.end, report.opted_out, language),
            heading(t.gettext("Adherence per day")),
            svg_trend(report.days, language),
            heading(t.gettext("Iron timing")),
            svg_iron(person.iron_timing, language),
            supplements_table(person.supplements, language),
            f"<p>{escape(summary)}</p>",
        ]
        title = t.gettext("dosewise admin: {name}", name=person.name)
        return HTMLResponse(page(title, "".join(body), language))

    _add_session_routes(router, token, t)
    return router


def _add_session_routes(router: APIRouter, token: str | None, t: Translator) -> None:
    @router.post("/login")
    async def login(request: Request, token_field: Annotated[str, Form(alias="token")]) -> Response:
        if not token or not hmac.compare_digest(token_field.encode(), token.encode()):
            return _sign_in_page(t, configured=bool(token), failed=True)
        response = RedirectResponse("/admin/", status_code=303)
        response.set_cookie(
            COOKIE,
            session_value(token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/admin",
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/admin/", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response


def _needs_attention(report: AdherenceReport, dates: str, t: Translator) -> str:
    """The five people with the lowest adherence of the doses come due, or a line saying
    that none have come due."""
    needs = [p for p in report.by_attention() if p.counts.adherence is not None][:5]
    if not needs:
        return empty(t.gettext("No dose came due between these dates."))
    items = "".join(
        f'<li data-person="{p.id}"><a href="people/{p.id}?{dates}">{escape(p.name)}</a>: '
        + escape(
            t.gettext(
                "{share} taken, {missed} missed",
                share=percent(p.counts.adherence, t.language),
                missed=p.counts.missed,
            )
        )
        + "</li>"
        for p in needs
    )
    return f"<ol class=attention>{items}</ol>"


def _header(report: AdherenceReport, title: str, t: Translator) -> str:
    """The bar (overview, sign out), the page's title (HTML, escaped by the caller) and the
    dates form."""
    overview, sign_out, show = t.gettext("overview"), t.gettext("sign out"), t.gettext("show")
    first, last = t.gettext("from"), t.gettext("to")
    return (
        # a <form> may not sit inside a <p>: the bar is a <nav>
        f'<nav><a href="/admin/">{escape(overview)}</a> · <form method="post" '
        'action="/admin/logout" style="display:inline">'
        f"<button>{escape(sign_out)}</button></form></nav>"
        f"<h1>{title}</h1>"
        f'<form method="get"><label>{escape(first)} <input type="date" name="from" '
        f'value="{report.start.isoformat()}"></label> <label>{escape(last)} <input type="date" '
        f'name="to" value="{report.end.isoformat()}"></label> <button>{escape(show)}</button>'
        "</form>"
    )


def _sign_in_page(t: Translator, *, configured: bool, failed: bool = False) -> HTMLResponse:
    if not configured:
        off = t.gettext("Admin is off: DOSEWISE_ADMIN_TOKEN is not set.")
        note = f"<p>{escape(off)}</p>"
    elif failed:
        wrong = t.gettext("That is not the admin token.")
        note = f'<p class="error">{escape(wrong)}</p>'
    else:
        note = ""
    label, sign_in = t.gettext("Admin token"), t.gettext("Sign in")
    form = (
        f'<form method="post" action="/admin/login"><label>{escape(label)} '
        '<input type="password" name="token" autocomplete="current-password" autofocus>'
        f"</label> <button>{escape(sign_in)}</button></form>"
    )
    title, name = t.gettext("dosewise admin: sign in"), t.gettext("dosewise admin")
    return HTMLResponse(
        page(title, f"<h1>{escape(name)}</h1>{note}{form}", t.language), status_code=401
    )
