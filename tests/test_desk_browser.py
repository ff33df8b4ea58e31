"""The desk in a real browser: Debian's chromium driven by Playwright, against
a real uvicorn on 127.0.0.1 over a real polled archive. Checks what only a
browser can: the keyboard shortcuts of static/desk.js work under the strict
CSP, and the hostile feed's script never runs. Skipped (with the reason)
where chromium or Playwright is absent: `make test` as root installs chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


def test_keyboard_triage_under_the_csp_and_hostile_script_inert(tmp_path: Path) -> None:
    config, db = _archive(tmp_path)
    dialogs: list[str] = []
    problems: list[str] = []
    with running_desk(config, db) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()

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
            browser.close()
    assert dialogs == []  # alert(...) of the feed's markup never ran
    assert not [p for p in problems if re.search(r"Content Security Policy|Refused", p)], problems
