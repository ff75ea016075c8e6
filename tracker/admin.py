"""Admin: the adherence report as JSON and CSV (bearer token) and the dashboard (session).

- `GET /admin/api/adherence?from=D&to=D[&person=P]` and `/admin/api/adherence.csv` need
  `Authorization: Bearer $DOSEWISE_ADMIN_TOKEN`.
- `GET /admin/` signs in with the same token (a form) and then shows everyone, sortable, those
  who need attention first; `GET /admin/people/{id}` one person: a calendar of doses coloured
  by outcome, the adherence trend and the iron timing. Charts are SVG drawn on the server.

Signing in makes a server-side session (services.admin_sessions): the cookie holds its random
id, HttpOnly, SameSite=Strict, and ends with sign-out, expiry or a changed admin token.
Sign-in attempts are limited per client address (429 with Retry-After). Every POST under
/admin must come from this site (Origin, else Referer) and, from a session, carry its CSRF
token (form field `csrf` or header X-CSRF-Token); a bearer request needs neither. Every admin
action is written to the audit log. Without a configured token everything here is refused.
The pages are in the admin's language (DOSEWISE_LANGUAGE); the API's JSON and CSV keep
canonical keys and add display names.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
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
from services.admin_sessions import (
    SESSION_LIMIT,
    AdminStore,
    Refused,
    current_session,
    record_action,
    sign_in,
    sign_out,
)
from tracker.auth import is_admin_token, presented_bearer, require_admin, same_origin

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


CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Admin:
    """Who is asking: "bearer" for the token itself, else a session's audit name and the
    CSRF token its forms carry."""

    def __init__(self, who: str, csrf: str = "") -> None:
        self.who, self.csrf = who, csrf


async def _admin(
    request: Request, token: str | None, store: AdminStore, clock: Clock
) -> Admin | None:
    """The bearer token (scripts, the contract's header) or a valid session cookie; None
    for neither."""
    if not token:
        return None
    bearer = presented_bearer(request)
    if bearer is not None and is_admin_token(bearer, token):
        return Admin("bearer")
    session_id = request.cookies.get(COOKIE, "")
    if not session_id:
        return None
    session = await run_in_threadpool(current_session, store, session_id, token, clock())
    return None if session is None else Admin(session.who, session.csrf)


def _from_this_site(
    settings: Settings, store: AdminStore, clock: Clock
) -> Callable[[Request], Awaitable[None]]:
    """The router's guard of state-changing requests (a FastAPI dependency)."""
    token = settings.admin_token

    async def from_this_site(request: Request) -> None:
        """403 for a state-changing request another site's page sent, or a session's without
        its CSRF token."""
        if request.method in SAFE_METHODS:
            return
        bearer_token = presented_bearer(request)
        if token and bearer_token is not None and is_admin_token(bearer_token, token):
            return
        if not same_origin(request, settings.public_url):
            raise HTTPException(403, "cross-site request refused")
        if request.url.path == "/admin/login":
            return  # no session yet: the origin is what is checked
        admin = await _admin(request, token, store, clock)
        if admin is None:
            return  # nothing signed in to act for: the route refuses or does nothing
        presented = request.headers.get(CSRF_HEADER)
        if presented is None:
            form = await request.form()
            field = form.get(CSRF_FIELD)
            presented = field if isinstance(field, str) else ""
        if not hmac.compare_digest(presented.encode(), admin.csrf.encode()):
            raise HTTPException(403, "the form's CSRF token is missing or wrong")

    return from_this_site


def given_once(request: Request) -> None:
    """400 for a query parameter given twice (`?person=1&person=2`): which one was meant
    would be a guess, and a report for the wrong one looks like the right one."""
    given = [key for key, _value in request.query_params.multi_items()]
    repeated = sorted({key for key in given if given.count(key) > 1})
    if repeated:
        raise HTTPException(400, f"give each query parameter once: {', '.join(repeated)}")


def admin_router(
    settings: Settings, clock: Clock, queries: AdherenceQueries, store: AdminStore
) -> APIRouter:
    """The admin routes, reading the report through `queries`; sessions, sign-in limits and
    the audit log in `store`."""
    token = settings.admin_token
    language = settings.language
    t = translator(language)

    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(given_once), Depends(_from_this_site(settings, store, clock))],
    )
    bearer = Depends(require_admin(token))

    async def audit(who: str, action: str, person_id: int | None) -> None:
        await run_in_threadpool(record_action, store, who, action, person_id, clock())

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

    _add_api_routes(router, build, audit, bearer, language)

    async def signed_in(request: Request) -> Admin | None:
        return await _admin(request, token, store, clock)

    @router.get("/", response_class=HTMLResponse)
    async def overview(
        request: Request,
        start: From = None,
        end: To = None,
        sort: str = "attention",
    ) -> Response:
        admin = await signed_in(request)
        if admin is None:
            return _sign_in_page(t, configured=bool(token))
        report = await build(start, end, None)
        await audit(admin.who, "view overview", None)
        order = SORTS.get(sort, SORTS["attention"])
        people = sorted(report.people, key=order)
        dates = {"from": report.start.isoformat(), "to": report.end.isoformat()}
        sort_link = "?" + urlencode(dates) + "&sort={key}"
        body = [
            _header(report, escape(t.gettext("Everyone")), t, admin.csrf),
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
        admin = await signed_in(request)
        if admin is None:
            return RedirectResponse("/admin/", status_code=303)
        report = await build(start, end, str(person_id))
        if not report.people:
            raise HTTPException(404, "no such person")
        await audit(admin.who, "view person", report.people[0].id)
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
        body = [
            _header(report, escape(person.name), t, admin.csrf),
            f"<p>{' · '.join(about)}</p>",
            cards(report, language=language),
            heading(t.gettext("Doses")),
            svg_calendar(report.doses, report.start, report.end, report.opted_out, language),
            heading(t.gettext("Adherence per day")),
            svg_trend(report.days, language),
            heading(t.gettext("Iron timing")),
            svg_iron(person.iron_timing, language),
            supplements_table(person.supplements, language),
            f"<p>{escape(_deliveries_and_colds(person, t))}</p>",
        ]
        title = t.gettext("dosewise admin: {name}", name=person.name)
        return HTMLResponse(page(title, "".join(body), language))

    _add_session_routes(router, token, t, store, clock)
    return router


def _add_api_routes(
    router: APIRouter,
    build: Callable[[str | None, str | None, str | None], Awaitable[AdherenceReport]],
    audit: Callable[[str, str, int | None], Awaitable[None]],
    bearer: Any,
    language: str,
) -> None:
    @router.get("/api/adherence", dependencies=[bearer])
    async def adherence_json(
        start: From = None, end: To = None, person: str | None = None
    ) -> JSONResponse:
        report = await build(start, end, person)
        await audit("bearer", "read adherence JSON", _person_id(report, person))
        return JSONResponse(report_json(report, language))

    @router.get("/api/adherence.csv", dependencies=[bearer])
    async def adherence_csv(
        start: From = None, end: To = None, person: str | None = None
    ) -> Response:
        report = await build(start, end, person)
        await audit("bearer", "read adherence CSV", _person_id(report, person))
        name = f"adherence-{report.start.isoformat()}-{report.end.isoformat()}.csv"
        return Response(
            render_csv(report, language),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _deliveries_and_colds(person: PersonLine, t: Translator) -> str:
    """The person page's line on deliveries and cold courses."""
    deliveries, colds = person.deliveries, person.cold_courses
    return " ".join(
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


def _person_id(report: AdherenceReport, person: str | None) -> int | None:
    return report.people[0].id if person is not None and report.people else None


def _add_session_routes(
    router: APIRouter, token: str | None, t: Translator, store: AdminStore, clock: Clock
) -> None:
    @router.post("/login")
    async def login(request: Request, token_field: Annotated[str, Form(alias="token")]) -> Response:
        client = request.client.host if request.client else "unknown"
        result = await run_in_threadpool(sign_in, store, token_field, token, client, clock())
        if isinstance(result, Refused):
            if result.retry_after is None:
                return _sign_in_page(t, configured=bool(token), failed=True)
            seconds = math.ceil(result.retry_after.total_seconds())
            return _sign_in_page(
                t, configured=True, wait_minutes=math.ceil(seconds / 60), retry_after=seconds
            )
        response = RedirectResponse("/admin/", status_code=303)
        response.set_cookie(
            COOKIE,
            result.session_id,
            max_age=int(SESSION_LIMIT.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/admin",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session_id = request.cookies.get(COOKIE, "")
        if session_id:
            await run_in_threadpool(sign_out, store, session_id, clock())
        response = RedirectResponse("/admin/", status_code=303)
        response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
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


def _header(report: AdherenceReport, title: str, t: Translator, csrf: str) -> str:
    """The bar (overview, sign out with the session's CSRF token), the page's title (HTML,
    escaped by the caller) and the dates form."""
    overview, sign_out, show = t.gettext("overview"), t.gettext("sign out"), t.gettext("show")
    first, last = t.gettext("from"), t.gettext("to")
    return (
        # a <form> may not sit inside a <p>: the bar is a <nav>
        f'<nav><a href="/admin/">{escape(overview)}</a> · <form method="post" '
        'action="/admin/logout">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'
        f"<button>{escape(sign_out)}</button></form></nav>"
        f"<h1>{title}</h1>"
        f'<form method="get"><label>{escape(first)} <input type="date" name="from" '
        f'value="{report.start.isoformat()}"></label> <label>{escape(last)} <input type="date" '
        f'name="to" value="{report.end.isoformat()}"></label> <button>{escape(show)}</button>'
        "</form>"
    )


def _sign_in_page(
    t: Translator,
    *,
    configured: bool,
    failed: bool = False,
    wait_minutes: int = 0,
    retry_after: int | None = None,
) -> HTMLResponse:
    """The sign-in form: 401, or 429 with Retry-After (seconds) past the attempts' limit."""
    if not configured:
        off = t.gettext("Admin is off: DOSEWISE_ADMIN_TOKEN is not set.")
        note = f"<p>{escape(off)}</p>"
    elif retry_after is not None:
        wait = t.ngettext(
            "Too many wrong tokens from here. Try again in {n} minute.",
            "Too many wrong tokens from here. Try again in {n} minutes.",
            wait_minutes,
        )
        note = f'<p class="error">{escape(wait)}</p>'
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
        page(title, f"<h1>{escape(name)}</h1>{note}{form}", t.language),
        status_code=401 if retry_after is None else 429,
        headers=None if retry_after is None else {"Retry-After": str(retry_after)},
    )
