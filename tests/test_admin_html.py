"""The dashboard's pages and the report's HTML file are valid HTML, and a person's calendar
marks the days they were opted out.

The checker is the standard library's tokenizer plus the content rules our pages could break:
every element closed in order, nothing that closes a <p> inside one (a <form> in a <p> is
split by browsers into an empty <p> and a stray </p>), no nested forms or links, no repeated
attribute or id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from reports.render import render_html
from store.reports import SqlAdherenceQueries
from tests.report_seed import ANA, END, NOW, START, seed
from tests.test_admin import TOKEN, WINDOW, _client

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
# elements whose start tag ends an open <p> (HTML's "close a p element" list, the ones we use)
CLOSES_P = {
    "address", "article", "aside", "blockquote", "div", "dl", "fieldset", "figure", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre",
    "section", "table", "ul",
}  # fmt: skip
NOT_NESTED = {"form", "a", "button"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: set[str] = set()
        self.errors: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)
        if tag in CLOSES_P and "p" in self.stack:
            self.errors.append(f"<{tag}> inside <p> ({' > '.join(self.stack)})")
        if tag in NOT_NESTED and tag in self.stack:
            self.errors.append(f"<{tag}> inside <{tag}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)  # <line .../> in SVG, <input .../>: nothing stays open

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"</{tag}> of a void element")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> while {' > '.join(self.stack) or 'nothing'} is open")
        else:
            self.stack.pop()

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        if len(names) != len(set(names)):
            self.errors.append(f"<{tag}> repeats an attribute: {names}")
        for name, value in attrs:
            if name == "id" and value is not None:
                if value in self.ids:
                    self.errors.append(f"id {value!r} twice")
                self.ids.add(value)


def html_errors(html: str) -> list[str]:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    errors = list(checker.errors)
    if not checker.doctype:
        errors.append("no <!doctype html>")
    if checker.stack:
        errors.append(f"left open: {' > '.join(checker.stack)}")
    return errors


def test_the_checker_finds_the_form_in_a_paragraph() -> None:
    assert html_errors("<!doctype html><p>a <form></form></p>") == ["<form> inside <p> (p)"]
    assert html_errors("<!doctype html><div><span></div></span>") != []
    assert html_errors('<!doctype html><p id="a"><b id="a">x</b></p>') == ["id 'a' twice"]
    assert html_errors("<!doctype html><nav><form><button>x</button></form></nav>") == []


@pytest.fixture
def signed_in(engine: Engine, database_url: str) -> Iterator[TestClient]:
    seed(engine)
    with _client(engine, database_url, TOKEN) as client:
        client.post("/admin/login", data={"token": TOKEN})
        yield client


def test_dashboard_pages_are_valid_html(signed_in: TestClient) -> None:
    pages = {
        "overview": signed_in.get("/admin/", params=WINDOW),
        "by name": signed_in.get("/admin/", params={**WINDOW, "sort": "name"}),
        "person": signed_in.get(f"/admin/people/{ANA}", params=WINDOW),
    }
    csrf = re.search(r'name="csrf" value="([^"]+)"', pages["overview"].text)
    assert csrf is not None
    signed_in.post("/admin/logout", data={"csrf": csrf.group(1)})
    pages["sign in"] = signed_in.get("/admin/")
    assert pages["sign in"].status_code == 401
    for name, page in pages.items():
        assert page.headers["content-type"].startswith("text/html"), name
        assert html_errors(page.text) == [], name


def test_report_file_is_valid_html(engine: Engine) -> None:
    seed(engine)
    queries = SqlAdherenceQueries(engine)
    for person in (None, ANA):
        assert html_errors(render_html(queries.report(START, END, NOW, person))) == []


def test_calendar_marks_the_opted_out_days(signed_in: TestClient, engine: Engine) -> None:
    report = SqlAdherenceQueries(engine).report(START, END, NOW, ANA)
    assert [day.isoformat() for day in report.opted_out] == ["2026-11-07"]
    assert report.as_dict()["opted_out_dates"] == ["2026-11-07"]
    page = signed_in.get(f"/admin/people/{ANA}", params=WINDOW).text
    assert page.count('class="day opted-out"') == 1
    assert "2026-11-07: opted out, left out of adherence" in page
    # the calendar holds no dose on that day: it is not part of adherence
    assert page.count('class="dose ') == 18
    assert "opted out" in render_html(report)
