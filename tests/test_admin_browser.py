"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright signs in,
opens the overview and one person, and checks the numbers against the JSON API."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.engine import Engine

from dosewise.cmd_tracker import tracker_app
from dosewise.settings import Settings
from dosewise.wiring import database_on
from tests.conftest import free_port
from tests.report_seed import ANA, END, EXPECTED, NOW, START, seed

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-admin-token-0123456789"
QUERY = f"from={START.isoformat()}&to={END.isoformat()}"

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def served(engine: Engine, database_url: str) -> Iterator[str]:
    seed(engine)
    settings = Settings(database_url=database_url, admin_token=TOKEN)
    app = tracker_app(settings, database_on(engine), lambda: NOW)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _api(base: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{base}/admin/api/adherence?{QUERY}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, object] = json.load(answer)
    return result


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_sign_in_overview_and_person(served: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    api = _api(served)
    people = {person["id"]: person for person in api["people"]}  # type: ignore[attr-defined]
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{served}/admin/?{QUERY}")
            page.fill("input[name=token]", TOKEN)
            page.click("button:has-text('Sign in')")
            page.wait_for_selector("table.people")
            page.goto(f"{served}/admin/?{QUERY}")
            rows = page.locator("table.people tbody tr")
            ids = [int(rows.nth(i).get_attribute("data-person") or 0) for i in range(rows.count())]
            assert ids == EXPECTED["order"]
            for person_id in ids:
                row = page.locator(f'tr[data-person="{person_id}"]')
                for key in ("planned", "taken", "missed"):
                    shown = row.locator(f'td[data-measure="{key}"]').inner_text()
                    assert int(shown) == people[person_id][key]
            attention = page.locator("ol.attention li").first.get_attribute("data-person")
            assert attention == str(EXPECTED["order"][0])
            page.screenshot(path=str(artifacts / "overview.png"), full_page=True)

            page.click(f'tr[data-person="{ANA}"] a')
            page.wait_for_selector("svg[aria-label='doses by day']")
            assert page.locator("rect.dose.on_time").count() == people[ANA]["on_time"]
            assert page.locator("rect.dose.missed").count() == people[ANA]["missed"]
            streak = page.locator('[data-measure="streak"]').inner_text()
            assert streak == "{current}/{longest}".format(**people[ANA]["streak"])
            assert "7 of 8 kept" in page.content()
            opted_out = page.locator("g.day.opted-out")
            assert opted_out.count() == people[ANA]["opted_out_days"]
            assert "opted out" in (opted_out.first.text_content() or "")
            page.screenshot(path=str(artifacts / "person.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts / "overview.png").stat().st_size > 10_000
    assert (artifacts / "person.png").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_a_cross_site_sign_out_is_refused_and_the_own_sign_out_ends_the_session(
    served: str,
) -> None:
    other_site = served.replace("127.0.0.1", "localhost")  # another origin and site
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{served}/admin/?{QUERY}")
            page.fill("input[name=token]", TOKEN)
            page.click("button:has-text('Sign in')")
            page.wait_for_selector("table.people")
            forged = browser.new_page()
            forged.goto(f"{other_site}/nowhere")
            with forged.expect_navigation():
                forged.evaluate(
                    """action => { const f = document.createElement('form');
                    f.method = 'post'; f.action = action; document.body.append(f);
                    f.submit(); }""",
                    f"{served}/admin/logout",
                )
            assert "cross-site request refused" in forged.content()
            page.goto(f"{served}/admin/?{QUERY}")
            assert page.locator("table.people").count() == 1  # still signed in
            page.click("button:has-text('sign out')")
            page.wait_for_selector("input[name=token]")
            page.goto(f"{served}/admin/?{QUERY}")
            assert page.locator("input[name=token]").count() == 1
        finally:
            browser.close()
