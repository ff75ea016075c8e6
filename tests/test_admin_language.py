"""The admin's texts in the admin's language (DOSEWISE_LANGUAGE): the report's table and HTML,
the dashboard and `people list`, with plural forms right in English and Danish and supplements
by their display names; CSV and JSON keep the canonical keys beside them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from dosewise.cli import main
from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from reports.adherence import AdherenceReport, Counts, DoseLine, PersonLine
from reports.render import render_html, render_table, svg_calendar
from tests.report_seed import ANA, BO, END, NOW, START, seed
from tests.test_admin_html import html_errors

TOKEN = "admin-token-for-language-tests-0123"
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


class _Text(HTMLParser):
    """The text a reader sees on a page: text nodes and SVG titles, not tags or attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if not self._style:
            self.parts.append(data)


def visible(html: str) -> str:
    reader = _Text()
    reader.feed(html)
    return " ".join(" ".join(reader.parts).split())


def _person(
    person_id: int, name: str, planned: int, opted_out_days: int, supplements: dict[str, Counts]
) -> PersonLine:
    return PersonLine(
        id=person_id,
        name=name,
        phone=f"+452012345{person_id}",
        timezone="Europe/Copenhagen",
        counts=Counts(planned=planned, sent=planned, on_time=planned),
        supplements=supplements,
        opted_out_days=opted_out_days,
    )


def _report(people: int, reminders: int, opted_out_days: int) -> AdherenceReport:
    """`people` people sharing `reminders` dose reminders of vitamin C (all taken on time), the
    first of them opted out on `opted_out_days` whole days."""
    counts = Counts(planned=reminders, sent=reminders, on_time=reminders)
    lines = [
        _person(1, "Ana Jensen", reminders, opted_out_days, {"vitamin_c": counts}),
        *(_person(n, f"Person {n}", 0, 0, {}) for n in range(2, people + 1)),
    ]
    return AdherenceReport(
        start=date(2026, 11, 1),
        end=date(2026, 11, 2),
        generated_at=datetime(2026, 11, 3, 12, tzinfo=UTC),
        people=lines,
        days=[],
        supplements={"vitamin_c": counts},
    )


# (language, count) -> the words the table must say for 1 and 2 of people, reminders, days
COUNTED = {
    ("en", 1): ("2026-11-02: 1 person\n", "1 reminder planned,", "Ana Jensen 1 day\n"),
    ("en", 2): ("2026-11-02: 2 people\n", "2 reminders planned,", "Ana Jensen 2 days\n"),
    ("da", 1): ("2026-11-02: 1 person\n", "1 påmindelse planlagt,", "Ana Jensen 1 dag\n"),
    ("da", 2): ("2026-11-02: 2 personer\n", "2 påmindelser planlagt,", "Ana Jensen 2 dage\n"),
}
WRONG = ("1 people", "1 reminders", "1 days", "1 personer", "1 påmindelser", "1 dage")


@pytest.mark.parametrize(("language", "count"), sorted(COUNTED))
def test_the_table_counts_people_reminders_and_days_in_the_languages_plural_forms(
    language: str, count: int
) -> None:
    table = render_table(_report(count, count, count), language)
    for words in COUNTED[language, count]:
        assert words in table
    for wrong in WRONG:
        assert wrong not in table
    assert max(len(line) for line in table.splitlines()) <= 80


@pytest.mark.parametrize(("language", "count"), sorted(COUNTED))
def test_the_html_report_counts_in_the_languages_plural_forms(language: str, count: int) -> None:
    html = render_html(_report(count, count, count), language)
    text = visible(html)
    people, reminders, days = (words.strip() for words in COUNTED[language, count])
    assert f"{people.split(': ')[1]} · {reminders}" in text
    assert days in text
    for wrong in WRONG:
        assert wrong not in text
    assert f'<html lang="{language}">' in html
    assert html_errors(html) == []


def test_the_table_and_html_name_supplements_by_their_display_names() -> None:
    report = _report(1, 3, 0)
    english, danish = render_table(report, "en"), render_table(report, "da")
    assert re.search(r"^vitamin C +3 ", english, re.MULTILINE)
    assert re.search(r"^C-vitamin +3 ", danish, re.MULTILINE)
    html = render_html(report, "da")
    assert "C-vitamin" in visible(html)
    assert "vitamin_c" not in visible(html) + english + danish
    assert 'data-supplement="vitamin_c"' in html  # the key stays where programs read it


def test_the_calendar_legend_and_tooltips_are_whole_words_in_either_language() -> None:
    dose = DoseLine(
        day=date(2026, 11, 2),
        due_at=datetime(2026, 11, 2, 11, 30),
        supplements=("iron", "vitamin_c", "ashwagandha_root"),
        outcome="on_time",
    )
    english = svg_calendar([dose], date(2026, 11, 2), date(2026, 11, 2), language="en")
    danish = svg_calendar([dose], date(2026, 11, 2), date(2026, 11, 2), language="da")
    assert "11:30 iron + vitamin C + ashwagandha root: taken on time" in english
    assert "11:30 jern + C-vitamin + ashwagandha root: taget til tiden" in danish
    for svg, words in (
        (english, ("taken on time", "taken late", "skipped", "missed", "opted out")),
        (danish, ("taget til tiden", "taget for sent", "sprunget over", "glemt", "afmeldt")),
    ):
        size = re.search(r'<svg [^>]*width="(\d+)"', svg)
        assert size is not None
        width = int(size.group(1))
        legend = re.findall(r'<text x="(\d+)" y="\d+" font-size="10">([^<]+)</text>', svg)
        shown = {text: int(x) for x, text in legend}
        for word in words:
            assert word in shown, f"{word!r} not whole in the legend"
            # the legend's words end inside the chart (6 px a letter at font-size 10)
            assert shown[word] + 6 * len(word) <= width
    assert ">man.</text>" in danish and ">Mon</text>" in english  # weekdays by Babel's locale


# -- through the command line and the real tracker, on SQLite and PostgreSQL ---------------


def _report_cli(database_url: str, language: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOSEWISE_DATABASE_URL": database_url, "DOSEWISE_LANGUAGE": language}
    return subprocess.run(
        [sys.executable, "-m", "dosewise", "report", "adherence", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_report_adherence_speaks_danish_and_keeps_csv_and_json_canonical(
    engine: Engine, database_url: str
) -> None:
    seed(engine)
    window = ("--from", START.isoformat(), "--to", END.isoformat())
    table = _report_cli(database_url, "da", *window)
    assert table.returncode == 0, table.stderr
    assert "Efterlevelse 2026-11-01 til 2026-11-10: 3 personer\n" in table.stdout
    assert "28 påmindelser planlagt, 22 taget: 81\xa0% af dem, der skulle tages" in table.stdout
    assert "afmeldt, ikke talt med: Ana Jensen 1 dag\n" in table.stdout
    assert re.search(r"^C-vitamin +9 ", table.stdout, re.MULTILINE)
    assert "vitamin_c" not in table.stdout
    # Bo's first day: one person, one reminder
    one = _report_cli(
        database_url, "da", "--person", str(BO), "--from", "2026-11-01", "--to", "2026-11-01"
    )
    assert "2026-11-01: 1 person\n" in one.stdout
    assert "1 påmindelse planlagt, 1 taget" in one.stdout

    html = _report_cli(database_url, "da", *window, "--person", str(ANA), "--format", "html")
    assert html.returncode == 0, html.stderr
    assert html.stdout.startswith('<!doctype html><html lang="da">')
    text = visible(html.stdout)
    assert "1 person · 18 påmindelser planlagt" in text
    assert "jern + C-vitamin: taget til tiden" in text  # a dose's tooltip
    assert "vitamin_c" not in text
    assert html_errors(html.stdout) == []

    rows = list(
        csv.DictReader(
            io.StringIO(_report_cli(database_url, "da", *window, "--format", "csv").stdout)
        )
    )
    vitamin_c = next(row for row in rows if row["supplement"] == "vitamin_c")
    assert vitamin_c["supplement_name"] == "C-vitamin"
    assert int(vitamin_c["planned"]) == 9
    document = json.loads(_report_cli(database_url, "da", *window, "--format", "json").stdout)
    assert "vitamin_c" in document["supplements"]
    assert document["supplement_names"]["vitamin_c"] == "C-vitamin"


@pytest.fixture
def danish_admin(engine: Engine, database_url: str) -> Iterator[TestClient]:
    seed(engine)
    settings = Settings(database_url=database_url, admin_token=TOKEN, language="da")
    app = tracker_app(settings, database_on(engine), lambda: NOW)
    with TestClient(app) as client:
        yield client


def test_the_dashboard_is_danish_through_the_real_tracker(danish_admin: TestClient) -> None:
    sign_in = danish_admin.get("/admin/")
    assert sign_in.status_code == 401
    assert '<html lang="da">' in sign_in.text and "Log ind" in sign_in.text
    assert (
        danish_admin.post("/admin/login", data={"token": "forkert"}).text.count(
            "Det er ikke admin-tokenet."
        )
        == 1
    )
    danish_admin.post("/admin/login", data={"token": TOKEN})

    overview = danish_admin.get("/admin/", params=WINDOW).text
    assert overview.startswith('<!doctype html><html lang="da">')
    text = visible(overview)
    for words in (
        "Kræver opmærksomhed",
        "3 personer · 28 påmindelser planlagt",
        "Efterlevelse pr. dag",
        "taget til tiden",
        "sprunget over",
        "Kosttilskud",
        "C-vitamin",
        "jern",
        "selen",
        "oversigt",
        "log ud",
    ):
        assert words in text, words
    first = re.search(r'<ol class=attention><li data-person="(\d+)">(.*?)</li>', overview)
    assert first is not None and int(first.group(1)) == BO
    assert re.sub("<[^>]+>", "", first.group(2)) == "Bo Smith: 80\xa0% taget, 2 glemt"
    assert "vitamin_c" not in text and "Needs attention" not in text
    assert 'data-supplement="vitamin_c"' in overview
    assert html_errors(overview) == []

    ana = danish_admin.get(f"/admin/people/{ANA}", params=WINDOW).text
    text = visible(ana)
    assert "2/4 dage i træk (nu/længst)" in text
    assert "afmeldt 1 dag" in text and "1 dage" not in text
    assert "Levering: 17 leveret, 2 fejlet, 1 sendt som e-mail i stedet." in text
    assert "7 af 8 taget med 3 t afstand til mælkeprodukter" in text
    assert "jern + C-vitamin: taget til tiden" in text
    assert "2026-11-07: afmeldt, ikke talt med i efterlevelsen" in text
    assert "man." in text and "Mon" not in text
    assert html_errors(ana) == []
    bo = visible(danish_admin.get(f"/admin/people/{BO}", params=WINDOW).text)
    assert "afmeldt 0 dage" in bo and "0/8 dage i træk" in bo

    # the API keeps its canonical keys and adds the Danish names
    api = danish_admin.get(
        "/admin/api/adherence", params=WINDOW, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert set(api["supplements"]) == {"iron", "magnesium", "selenium", "vitamin_c"}
    assert api["supplement_names"] == {
        "vitamin_c": "C-vitamin",
        "iron": "jern",
        "magnesium": "magnesium",
        "selenium": "selen",
    }


def test_an_empty_dashboard_says_so_in_the_admins_language(
    engine: Engine, database_url: str
) -> None:
    settings = Settings(database_url=database_url, admin_token=TOKEN, language="da")
    with TestClient(tracker_app(settings, database_on(engine), lambda: NOW)) as client:
        page = client.get("/admin/", params=WINDOW, headers={"Authorization": f"Bearer {TOKEN}"})
    text = visible(page.text)
    assert "0 personer · 0 påmindelser planlagt" in text
    assert "Ingen doser skulle tages mellem disse datoer." in text
    assert "Ingen er tilmeldt endnu." in text
    assert "Ingen doser var planlagt." in text
    assert html_errors(page.text) == []


# -- the setting ----------------------------------------------------------------------------


def test_the_admins_language_is_read_from_dosewise_language() -> None:
    assert Settings.from_environment({}).language == "en"
    assert Settings.from_environment({"DOSEWISE_LANGUAGE": "da"}).language == "da"
    assert Settings.from_environment({"DOSEWISE_LANGUAGE": " DA "}).language == "da"


@pytest.mark.parametrize("value", ["fr", "danish", "da_DK"])
def test_a_language_dosewise_does_not_write_is_one_line_naming_the_variable(
    value: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=f"DOSEWISE_LANGUAGE must be one of en, da, not '{value}'"):
        Settings.from_environment({"DOSEWISE_LANGUAGE": value})
    done = _report_cli(f"sqlite:///{tmp_path / 'none.db'}", value)
    assert done.returncode == 2
    assert done.stderr == f"dosewise: DOSEWISE_LANGUAGE must be one of en, da, not '{value}'\n"
    assert done.stdout == ""


def test_people_list_speaks_the_admins_language(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOSEWISE_DATABASE_URL", database_url)
    monkeypatch.setenv("DOSEWISE_LANGUAGE", "da")
    assert main(["people", "list"]) == 0
    assert capsys.readouterr().out == (
        "ingen er tilmeldt endnu: tilmeld nogen med `dosewise people add FIL`\n"
    )
    monkeypatch.setenv("DOSEWISE_LANGUAGE", "en")
    assert main(["people", "list"]) == 0
    assert "nobody is enrolled yet" in capsys.readouterr().out
