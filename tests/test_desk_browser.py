"""The desk in a real browser: Debian's chromium driven by Playwright, against
a real uvicorn on 127.0.0.1 over a real polled archive. Checks what only a
browser can: the reader's flow from the overview to a verdict and its exports,
the keyboard shortcuts of static/desk.js under the strict CSP, the hostile
feed's script never running, and no sideways scrolling at phone width. A
screenshot of each page goes to $MONITOR_TEST_ARTIFACTS (default: tmp_path).
One browser serves the whole module. Skipped (with the reason)
where chromium or Playwright is absent: `make test` as root installs chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from test_desk import TOPIC, _archive, running_desk

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium, or `make test` as root)",
                allow_module_level=True)


PHONE = 400


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A desk of the module's own over a polled archive; its base URL."""
    config, db = _archive(tmp_path_factory.mktemp("browser"))
    with running_desk(config, db) as base:
        yield base


@pytest.fixture(scope="module")
def keyboard_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _archive(tmp_path_factory.mktemp("keyboard"))


@pytest.fixture(scope="module")
def browser(desk: str, keyboard_archive: tuple[Path, Path]) -> Iterator[Any]:
    # Playwright's sync API holds an event loop on this thread, where a poll's
    # asyncio.run cannot start: the archives are built before the browser.
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MONITOR_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def test_overview_topic_story_verdict_precision_and_exports(
        browser: Any, desk: str, artifacts: Path) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{desk}/")
        row = page.locator("tr", has=page.locator(f'a[href="/topic/{TOPIC}"]'))
        assert row.locator("td.precision").inner_text() == "none reviewed"
        _shot(page, artifacts, "overview")
        with page.expect_navigation():
            page.locator(f'a[href="/topic/{TOPIC}"]').click()
        assert page.locator("li.story").count() >= 2
        _shot(page, artifacts, "topic")
        gas = page.locator("li.story", has_text="doubled gas prices")
        with page.expect_navigation():
            gas.locator("a.open").click()
        assert "/story?key=" in page.url
        assert "doubled gas prices" in page.locator("h1").inner_text()
        _shot(page, artifacts, "story")
        with page.expect_navigation():
            page.locator("form.triage", has=page.locator(f'input[name="topic"][value="{TOPIC}"]')
                         ).locator('button[value="not_relevant"]').click()
        assert "/propose?" in page.url  # the not-relevant verdict offers a no_match example
        _shot(page, artifacts, "propose")
        page.goto(f"{desk}/")
        assert row.locator("td.precision").inner_text() == "0 of 1 reviewed relevant"

        page.goto(f"{desk}/topic/{TOPIC}")
        csv_href = page.locator('a[href*="export.csv"]').get_attribute("href")
        with page.expect_download() as download:
            page.evaluate("href => { const a = document.createElement('a'); a.href = href; "
                          "a.download = ''; document.body.appendChild(a); a.click(); }",
                          csv_href)
        body = Path(download.value.path()).read_text(encoding="utf-8")
        header, *rows = body.splitlines()
        assert "title" in header
        gas_row = next(r for r in rows if "doubled gas prices" in r)
        assert "not_relevant" in gas_row

        atom_href = page.locator('a[href*="atom.xml"]').get_attribute("href")
        response = page.request.get(desk + str(atom_href))
        assert response.status == 200
        assert response.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(response.body())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.version == "atom10"
        assert any("doubled gas prices" in e.title for e in parsed.entries)
    finally:
        page.close()


def test_no_sideways_scrolling_at_phone_width(browser: Any, desk: str,
                                              artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": PHONE, "height": 800})
    try:
        page.goto(f"{desk}/topic/{TOPIC}")
        story = page.locator("a.open").first.get_attribute("href")
        wide = {}
        for name, url in (("overview", "/"), ("topic", f"/topic/{TOPIC}"), ("story", story),
                          ("search", "/search?q=Kazakhstan"), ("sources", "/sources")):
            page.goto(desk + str(url))
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE:
                wide[name] = width
            _shot(page, artifacts, f"phone-{name}")
        assert wide == {}, f"pages wider than {PHONE} px: {wide}"
    finally:
        page.close()


def test_keyboard_triage_under_the_csp_and_hostile_script_inert(
        keyboard_archive: tuple[Path, Path], browser: Any) -> None:
    config, db = keyboard_archive
    dialogs: list[str] = []
    problems: list[str] = []
    with running_desk(config, db) as base:
        page = browser.new_page()
        try:

            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda msg: problems.append(msg.text)
                    if msg.type == "error" else None)
            page.goto(f"{base}/topic/{TOPIC}?period=24h")
            assert page.locator("li.story").count() >= 2
            page.keyboard.press("j")
            assert page.locator("li.story.current").count() == 1
            page.keyboard.press("j")
            page.keyboard.press("k")
            first = page.locator("li.story").first
            assert "current" in (first.get_attribute("class") or "")
            with page.expect_navigation():
                page.keyboard.press("r")
            page.goto(f"{base}/")
            precision = page.locator("td.precision").all_inner_texts()
            assert "1 of 1 reviewed relevant" in precision
            for url in ("/", f"/topic/{TOPIC}?period=24h", "/search?q=Miners", "/sources"):
                page.goto(base + url)
            assert page.evaluate("typeof window.alert") == "function"
        finally:
            page.close()
    assert dialogs == []  # alert(...) of the feed's markup never ran
    assert not [p for p in problems if re.search(r"Content Security Policy|Refused", p)], problems
