"""Nothing a server or a feed sends reaches an output raw (issue 19: terminal
and log escape injection, bidi controls in `hits` and `search`).

Real servers on 127.0.0.1 (tests/faultserver.py: raw status lines, raw
bodies), the real CLI (`python -m monitor poll` for its log line, click's
CliRunner for the rest), the daemon as a subprocess for the text and JSON
logs, and a property test of the one cleaner, monitor.clean.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultserver import Exchange, FaultServer, static
from helpers import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_daemon import child_env, daemon, wait_for

from monitor.clean import clean_lines, clean_short, clean_text, clean_url

# What must never reach an output: C0 controls but LF, DEL, C1 controls, bidi
# embeddings/overrides/isolates.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# Reason phrases of non-standard status lines (h11 takes any byte but CR/LF).
REASONS = {
    "osc8": "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\x1b[2J",
    "sgr": "\x1b[31;1mOK\x1b[0m\x07 fine",
    "title": "\x1b]0;pwned\x07 Not Found",
    "backspace": "Not Found\x08\x08\x08\x08\x08\x08\x08\x08\x08Found",
    "c1": "\x9b2J\x9d moved",
}

KAZAKH = "Қазақстанда кеншілер ереуілге шықты"
RUSSIAN = "Казахстан: шахтёры объявили забастовку"
ESC_LINK = "\x1b]8;;http://evil\x1b\\жми\x1b]8;;\x1b\\\x1b[2J"
HOSTILE_FEED = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Лента \x1b[5m\u202eдеф\u202c\x9b</title>
<link>https://example.org/</link><description>d</description>
<item><title>{RUSSIAN} {ESC_LINK} \u202eтекст\u202c \x9b31m</title>
<link>https://example.org/a\u202egnp.exe</link><guid>one</guid>
<author>\x1b[31mАвтор\x1b[0m \u2066злой\u2069 \x9d</author>
<description>{KAZAKH} \u2067 забастовка \x1b[2J \x9b</description></item>
<item><title>{KAZAKH} \u202dзабастовка\u202c</title>
<link>http://user:secret@example.org/b</link><guid>two</guid>
<description>Обычный текст</description></item>
</channel></rss>""".encode()

CONFIG = """\
settings: {{allow_private: true, timeout: 5s, connect_timeout: 2s, article_text: never}}
feeds:
{feeds}
topics:
  - id: strikes
    name: Strikes
    query: 'забастов* OR ереуіл*'
"""


def assert_clean(text: str, what: str) -> None:
    bad = UNSAFE.search(text)
    assert bad is None, f"{what}: {bad.group(0)!r} in {text[max(bad.start() - 40, 0):][:120]!r}"


def assert_clean_values(data: object, what: str) -> None:
    """Every string inside decoded JSON (where "\\u001b" reads back as ESC)."""
    if isinstance(data, str):
        assert_clean(data, what)
    elif isinstance(data, dict):
        for key, value in data.items():
            assert_clean_values(value, f"{what}.{key}")
    elif isinstance(data, list):
        for value in data:
            assert_clean_values(value, what)


def write(path: Path, feeds: dict[str, str]) -> Path:
    lines = "\n".join(f"  - {{id: {i}, name: {i}, url: '{u}'}}" for i, u in feeds.items())
    path.write_text(CONFIG.format(feeds=lines), encoding="utf-8")
    return path


def status_line(reason: str) -> Callable[[Exchange], None]:
    def handle(ex: Exchange) -> None:
        ex.send(f"HTTP/1.1 599 {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .encode("latin-1"))
    return handle


@pytest.fixture
def evil_statuses(tmp_path: Path) -> Iterator[Path]:
    with FaultServer() as server:
        feeds = {f"evil-{name}": server.route(f"/{name}", status_line(reason))
                 for name, reason in REASONS.items()}
        yield write(tmp_path / "feeds.yaml", feeds)


def test_hostile_status_lines_reach_poll_feeds_and_the_log_clean(tmp_path, evil_statuses):
    db = tmp_path / "m.db"
    # -v: without it `monitor poll` leaves failures to its table, and the log
    # lines are what is under test here.
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "-v", "--config", str(evil_statuses), "--db", str(db),
         "poll"], capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("WARNING monitor.poll: feed evil-") == len(REASONS), proc.stderr
    assert_clean(proc.stderr, "poll's log")
    assert_clean(proc.stdout, "poll's table")
    assert "HTTP 599" in proc.stdout and "http-status" in proc.stdout

    polled = run_cli("poll", "--force", "--json", config=evil_statuses, db=db)
    data = json.loads(polled.output)
    assert_clean_values(data, "poll --json")
    reasons = sorted(f["error"]["reason"] for f in data["feeds"])
    # The text around the controls is kept, as text.
    assert "HTTP 599 ]8;;http://evil\\click]8;;\\[2J" in reasons
    assert "HTTP 599 Not FoundFound" in reasons

    table = run_cli("feeds", config=evil_statuses, db=db)
    assert table.exit_code == 0 and "599" in table.output
    assert_clean(table.output, "monitor feeds")
    listing = run_cli("feeds", "--json", config=evil_statuses, db=db)
    assert_clean_values(json.loads(listing.output), "monitor feeds --json")


@pytest.mark.parametrize("log_json", [False, True], ids=["text-log", "json-log"])
def test_hostile_status_lines_reach_the_daemon_log_clean(tmp_path, evil_statuses, log_json):
    args = ("--log-json",) if log_json else ()
    with daemon(tmp_path, evil_statuses, tmp_path / "m.db", *args) as d:
        wait_for(lambda: d.log().count("http-status") >= len(REASONS), 20,
                 "a failure line per feed")
        assert d.stop() == 0
        log = d.log()
    assert_clean(log, "daemon log")  # in JSON too: U+009B and bidi are not escaped there
    if log_json:
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        failures = [x for x in lines if "http-status" in x["message"]]
        assert len(failures) >= len(REASONS)
        for line in lines:
            assert_clean_values(line, "JSON log line")
    else:
        assert "HTTP 599 ]8;;http://evil\\click]8;;\\[2J (http-status)" in log


def test_hostile_feed_text_reaches_hits_search_and_feeds_clean(tmp_path):
    db = tmp_path / "m.db"
    with FaultServer() as server:
        server.route("/feed", static(HOSTILE_FEED))
        config = write(tmp_path / "feeds.yaml", {"hostile": server.url("/feed")})
        polled = run_cli("poll", config=config, db=db)
    assert polled.exit_code == 0, polled.output
    outputs = {args: run_cli(*args, config=config, db=db)
               for args in [("hits",), ("hits", "--json"), ("search", "забастовку"),
                            ("search", "--json", "забастовку"), ("feeds",), ("feeds", "--json")]}
    for args, result in outputs.items():
        assert result.exit_code == 0, (args, result.output)
        assert_clean(result.output, " ".join(args))
        if "--json" in args:
            assert_clean_values(json.loads(result.output), " ".join(args))
    # Ordinary Cyrillic and Kazakh text is untouched.
    hits = outputs[("hits",)].output
    assert f"{RUSSIAN} ]8;;http://evil\\жми]8;;" in hits and "[2J текст ›31m" in hits
    assert f"{KAZAKH} забастовка" in hits
    # Links: the user and password are gone, the bidi override percent-encoded.
    found = json.loads(outputs[("hits", "--json")].output)
    assert {h["url"] for h in found} == {"https://example.org/a%E2%80%AEgnp.exe",
                                         "http://example.org/b"}
    feeds = json.loads(outputs[("feeds", "--json")].output)["feeds"]
    assert feeds[0]["title"].startswith("Лента")
    # What is stored is clean too (the author is shown by no command yet).
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT title, summary, author, url FROM items").fetchall()
    for row in stored:
        for value in row:
            assert_clean(value or "", "stored item")
    assert "[31mАвтор[0m злой" in [r[2] for r in stored]
    assert any(KAZAKH in r[1] for r in stored)


def test_rows_stored_before_the_cleaner_are_shown_clean(tmp_path):
    """An archive written by an older version keeps bidi controls in titles,
    snippets and links: hits and search clean them on the way out."""
    db = tmp_path / "m.db"
    with FaultServer() as server:
        server.route("/feed", static(HOSTILE_FEED))
        config = write(tmp_path / "feeds.yaml", {"hostile": server.url("/feed")})
        assert run_cli("poll", config=config, db=db).exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET title = ?, url = ? WHERE key = 'one'",
                     ["Старый \u202eзаголовок\u202c забастовка", "https://example.org/\u2066x"])
        conn.execute("UPDATE hits SET snippet = ?", ["старый [[забастовка]] \u202eabc"])
    for args in [("hits",), ("hits", "--json"), ("search", "заголовок"),
                 ("search", "--json", "заголовок")]:
        result = run_cli(*args, config=config, db=db)
        assert result.exit_code == 0, result.output
        assert_clean(result.output, " ".join(args))
        if "--json" in args:
            assert_clean_values(json.loads(result.output), " ".join(args))
        assert "Старый заголовок забастовка" in result.output


# --- the cleaner itself --------------------------------------------------------------------

BAD = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
# Printable text: letters of every script, marks, digits, punctuation,
# symbols (emoji), ZWJ/ZWNJ, LRM/RLM; no control, no whitespace (words are
# joined with single spaces below).
PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                          blacklist_characters="\ufeff\ufff9\ufffa\ufffb\ufffe\uffff"
                          + "".join(map(chr, range(0x202a, 0x202f)))
                          + "".join(map(chr, range(0x2066, 0x206a))))
WORDS = st.lists(st.text(PRINTABLE, min_size=1, max_size=12), max_size=8)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), limit=st.integers(1, 80))
def test_cleaned_text_has_no_control_or_bidi_and_cleaning_is_idempotent(text, limit):
    flat = clean_text(text)
    assert not BAD.search(flat) and not any(c.isspace() and c != " " for c in flat)
    assert "  " not in flat and flat == flat.strip()
    assert clean_text(flat) == flat
    short = clean_short(text, limit)
    assert len(short) <= limit and clean_short(short, limit) == short
    assert not BAD.search(short)
    lines = clean_lines(text)
    assert not BAD.search(lines) and not any(
        c.isspace() and c not in " \t\n" and unicodedata.category(c) != "Zs" for c in lines)
    assert clean_lines(lines) == lines
    url = clean_url(text)
    assert url is not None and not BAD.search(url) and not any(c.isspace() for c in url)
    assert clean_url(url) == url


@settings(max_examples=300, deadline=None)
@given(words=WORDS)
def test_printable_text_without_controls_is_unchanged(words):
    text = " ".join(words)
    assert clean_text(text) == text
    assert clean_short(text, len(text) + 1) == text
    assert clean_lines(text) == text
    assert clean_lines(f"{text}\n{text}\t!") == f"{text}\n{text}\t!"


@pytest.mark.parametrize("text", [
    KAZAKH, RUSSIAN, "Ақмола — Нұр-Сұлтан — Астана (2019)", "مرحبا\u200fبالعالم",
    "👩\u200d👩\u200d👧 family, 🇰🇿 flag", "naïve café, „quotes“ «ёлки» ‹›", "a\u200cb",
])
def test_ordinary_text_of_every_script_is_kept(text):
    assert clean_text(text) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("HTTP 599 \x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\x1b[2J",
     "HTTP 599 ]8;;http://evil\\click]8;;\\[2J"),
    ("a\x9bb\x85c\u202ed\u2066e\u2069\r\nf\x00", "ab cde f"),
    ("ok\rFAKE", "ok FAKE"),
])
def test_clean_text_examples(text, expected):
    assert clean_text(text) == expected


def test_clean_lines_keeps_line_breaks_and_tabs_only():
    assert clean_lines("one\r\ntwo\rthree\x85four\u2028five\tsix\x1b[2J\x0bseven\x1f\n") == \
        "one\ntwo\nthree\nfour\nfive\tsix[2J\nseven\n"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://user:pw@example.org/a?b=c#d", "http://example.org/a?b=c#d"),
    ("https://token@example.org:8443/", "https://example.org:8443/"),
    ("http://www.bank.example@evil.example/login", "http://evil.example/login"),
    ("https://example.org/a@b?c=d@e", "https://example.org/a@b?c=d@e"),
    ("https://example.org/\u202egnp.exe", "https://example.org/%E2%80%AEgnp.exe"),
    ("https://пример.рф/статья", "https://пример.рф/статья"),
    ("/relative/path", "/relative/path"),
])
def test_clean_url(url, expected):
    assert clean_url(url) == expected
