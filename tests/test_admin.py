"""Admin API and dashboard on the real tracker app: bearer token, cookie sign-in, and the same
numbers as the read model, the CSV and the seeded history."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from store.reports import SqlAdherenceQueries
from tests.report_seed import ANA, BO, CY, END, EXPECTED, NOW, START, seed
from tracker.admin import COOKIE

TOKEN = "admin-token-for-tests-0123456789"
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


def _client(engine: Engine, database_url: str, token: str | None) -> TestClient:
    settings = Settings(database_url=database_url, admin_token=token)
    app = tracker_app(settings, database_on(engine), lambda: NOW)
    return TestClient(app)


@pytest.fixture
def client(engine: Engine, database_url: str) -> Iterator[TestClient]:
    seed(engine)
    with _client(engine, database_url, TOKEN) as client:
        yield client


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_needs_the_bearer_token(client: TestClient, engine: Engine, database_url: str) -> None:
    for path in ("/admin/api/adherence", "/admin/api/adherence.csv"):
        assert client.get(path, params=WINDOW).status_code == 401
        assert client.get(path, params=WINDOW, headers=_bearer("wrong")).status_code == 401
    with _client(engine, database_url, None) as unset:
        refused = unset.get("/admin/api/adherence", params=WINDOW, headers=_bearer())
        assert refused.status_code == 401


def test_json_and_csv_agree_with_the_history(client: TestClient, engine: Engine) -> None:
    answer = client.get("/admin/api/adherence", params=WINDOW, headers=_bearer())
    assert answer.status_code == 200
    report: dict[str, Any] = answer.json()
    expected = SqlAdherenceQueries(engine).report(START, END, NOW).as_dict()
    # beside the canonical keys, each supplement's display name in the admin's language
    assert report.pop("supplement_names") == {
        "iron": "iron",
        "magnesium": "magnesium",
        "selenium": "selenium",
        "vitamin_c": "vitamin C",
    }
    assert report == expected
    people = {p["id"]: p for p in report["people"]}
    assert people[ANA]["adherence"] == EXPECTED[ANA]["adherence"]
    assert people[BO]["streak"] == EXPECTED[BO]["streak"]

    rows = csv.DictReader(
        io.StringIO(client.get("/admin/api/adherence.csv", params=WINDOW, headers=_bearer()).text)
    )
    whole = {int(r["person_id"]): r for r in rows if r["supplement"] == ""}
    for person_id, person in people.items():
        for key in ("planned", "sent", "on_time", "late", "skipped", "missed", "taken"):
            assert int(whole[person_id][key]) == person[key]

    one = client.get(
        "/admin/api/adherence", params={**WINDOW, "person": str(ANA)}, headers=_bearer()
    ).json()
    assert [p["id"] for p in one["people"]] == [ANA]
    assert len(one["doses"]) == 18
    missing = client.get(
        "/admin/api/adherence", params={**WINDOW, "person": "+1999"}, headers=_bearer()
    )
    assert missing.status_code == 404
    huge = {**WINDOW, "person": "9" * 23}  # past any id a database column holds
    assert client.get("/admin/api/adherence", params=huge, headers=_bearer()).status_code == 404
    bad = client.get("/admin/api/adherence", params={"from": "2026-02-30"}, headers=_bearer())
    assert bad.status_code == 400


def _cells(html: str, person_id: int) -> dict[str, str]:
    row = re.search(rf'<tr data-person="{person_id}"[^>]*>(.*?)</tr>', html)
    assert row is not None
    return dict(re.findall(r'data-measure="(\w+)">([^<]*)<', row.group(1)))


def test_dashboard_sign_in_and_pages(client: TestClient) -> None:
    first = client.get("/admin/", params=WINDOW)
    assert first.status_code == 401
    assert 'name="token"' in first.text
    assert client.get(f"/admin/people/{ANA}", follow_redirects=False).status_code == 303
    wrong = client.post("/admin/login", data={"token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert COOKIE not in client.cookies

    signed = client.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert TOKEN not in cookie

    overview = client.get("/admin/", params=WINDOW)
    assert overview.status_code == 200
    html = overview.text
    order = [int(i) for i in re.findall(r'<tr data-person="(\d+)"', html)]
    assert order == EXPECTED["order"]
    api = client.get("/admin/api/adherence", params=WINDOW, headers=_bearer()).json()
    for person in api["people"]:
        cells = _cells(html, person["id"])
        for key in ("planned", "taken", "late", "skipped", "missed"):
            assert int(cells[key]) == person[key]
    assert _cells(html, ANA)["adherence"] == "82%"  # 14 taken of 17 due
    assert "<svg" in html
    assert "<script src" not in html

    by_name = client.get("/admin/", params={**WINDOW, "sort": "name"}).text
    assert [int(i) for i in re.findall(r'<tr data-person="(\d+)"', by_name)] == [ANA, BO, CY]
    by_missed = client.get("/admin/", params={**WINDOW, "sort": "missed"}).text
    assert [int(i) for i in re.findall(r'<tr data-person="(\d+)"', by_missed)][2] == CY

    person = client.get(f"/admin/people/{ANA}", params=WINDOW).text
    assert person.count('class="dose on_time"') == 12
    assert person.count('class="dose late"') == 2
    assert person.count('class="dose missed"') == 2
    assert "7 of 8 kept 3 h" in person
    assert client.get("/admin/people/999", params=WINDOW).status_code == 404
    assert client.get("/admin/people/" + "9" * 23, params=WINDOW).status_code == 404

    csrf = re.search(r'name="csrf" value="([^"]+)"', overview.text)
    assert csrf is not None
    assert client.post("/admin/logout").status_code == 403  # without the form's CSRF token
    assert client.get("/admin/", params=WINDOW).status_code == 200
    client.post("/admin/logout", data={"csrf": csrf.group(1)})
    assert client.get("/admin/", params=WINDOW).status_code == 401
    # the contract's bearer header opens the pages too, without a sign-in
    assert client.get("/admin/", params=WINDOW, headers=_bearer()).status_code == 200
    assert client.get("/admin/", params=WINDOW, headers=_bearer("wrong")).status_code == 401


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ({"from": "1950-01-01", "to": END.isoformat()}, "at most 3660 days"),
        ({"from": "2020-01-01", "to": "2030-01-08"}, "at most 3660 days"),
        ({"from": "0001-01-01", "to": "0001-01-05"}, "between 1900 and 2200"),
        ({"from": "1900-01-01", "to": "9999-12-31"}, "between 1900 and 2200"),
        ({"from": "2026-13-01"}, "no such day"),
    ],
)
def test_a_window_the_report_cannot_cover_is_a_400_naming_why(
    client: TestClient, window: dict[str, str], words: str
) -> None:
    for path in ("/admin/api/adherence", "/admin/api/adherence.csv"):
        answer = client.get(path, params=window, headers=_bearer())
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/admin/api/adherence", "/admin/api/adherence.csv", "/admin/", "/admin/people/1"]
)
def test_a_query_parameter_given_twice_is_a_400_naming_it(client: TestClient, path: str) -> None:
    query = f"person={ANA}&person={BO}&from=2026-01-01&to=2026-01-05&from=2026-01-02"
    answer = client.get(f"{path}?{query}", headers=_bearer())
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"] == "give each query parameter once: from, person"
    once = client.get(f"{path}?from=2026-01-01&to=2026-01-05", headers=_bearer())
    assert once.status_code != 400, once.text


def test_the_longest_window_is_answered(client: TestClient) -> None:
    window = {"from": "2020-01-01", "to": "2030-01-07"}  # 3660 days
    answer = client.get("/admin/api/adherence", params=window, headers=_bearer())
    assert answer.status_code == 200, answer.text
    assert (answer.json()["from"], answer.json()["to"]) == ("2020-01-01", "2030-01-07")


def test_csv_cells_a_spreadsheet_would_run_are_made_plain(
    client: TestClient, engine: Engine
) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE people SET name = :name WHERE id = :id"), {"name": formula, "id": BO}
        )
    answer = client.get("/admin/api/adherence.csv", params=WINDOW, headers=_bearer())
    rows = {int(r["person_id"]): r for r in csv.DictReader(io.StringIO(answer.text))}
    assert rows[BO]["name"] == "'" + formula
    assert rows[ANA]["name"] == "Ana Jensen"  # ordinary text untouched
    assert rows[ANA]["phone"].startswith("+45")  # a phone number is not a formula
