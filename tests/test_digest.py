"""The digest (issue 6): selection, grouping, ranking, sources health, the four
formats against golden files, hostile feed content rendered inert, atomic
output, the memory of the last digest, and mail through a real SMTP server.

Golden files live in tests/data/golden/digest/; MONITOR_UPDATE_GOLDEN=1
rewrites them from the current output (review the diff before committing)."""

from __future__ import annotations

import email
import json
import os
import re
import socket
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from digest_fixture import (
    CONFIG_YAML,
    ECONOMY,
    LABOUR,
    NOW,
    RIGHTS,
    SINCE,
    TOPICS,
    build_db,
    entry,
    hit,
    poll,
)
from feedserver import FeedServer
from markdown_it import MarkdownIt

from monitor import digest as dg
from monitor.app import run_digest
from monitor.cli import cli
from monitor.config import load_config
from monitor.errors import MailError, MonitorError
from monitor.notify import mail
from monitor.store import Store
from monitor.types import DigestConfig, FetchFailure

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "digest"
UPDATE = os.environ.get("MONITOR_UPDATE_GOLDEN") == "1"
UNTIL = NOW.strftime("%Y-%m-%dT%H:%M:%S")
FROM = SINCE.strftime("%Y-%m-%dT%H:%M:%S")


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("digest") / "monitor.db")


@pytest.fixture
def db(tmp_path: Path, fixed_db: Path) -> Path:
    """A private copy of the fixed database, for tests that write to it."""
    target = tmp_path / "monitor.db"
    src = sqlite3.connect(fixed_db)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(CONFIG_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def digest(fixed_db: Path) -> dg.Digest:
    with Store(fixed_db) as store:
        return dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW, name="morning")


def invoke(*args: str, config: Path, db: Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "--db", str(db), *args],
                              env=env, catch_exceptions=False)


# --- golden files --------------------------------------------------------------------------

def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with MONITOR_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("fmt", dg.FORMATS)
def test_golden(digest: dg.Digest, fmt: str) -> None:
    check_golden(f"digest.{dg.EXTENSIONS[fmt]}", dg.render(digest, fmt))


@pytest.mark.parametrize("fmt", dg.FORMATS)
def test_golden_empty_period(fixed_db: Path, fmt: str) -> None:
    with Store(fixed_db) as store:
        d = dg.build(store, topics=TOPICS, since=NOW, until=NOW + timedelta(hours=24),
                     now=NOW + timedelta(hours=24))
    assert d.empty
    out = dg.render(d, fmt)
    check_golden(f"empty.{dg.EXTENSIONS[fmt]}", out)
    if fmt != "json":
        assert "No new items on these topics since 2026-03-10 07:00 UTC." in out
    assert "Sources" in out or '"sources"' in out


# --- selection, grouping, ranking ----------------------------------------------------------

def section(d: dg.Digest, topic_id: str) -> dg.TopicSection:
    return next(t for t in d.topics if t.id == topic_id)


def test_topics_in_config_order_with_counts_and_volume(digest: dg.Digest) -> None:
    assert [t.id for t in digest.topics] == [LABOUR, RIGHTS, ECONOMY]
    labour, rights, economy = digest.topics
    assert (labour.count, labour.previous_count) == (3, 2)
    assert (rights.count, rights.previous_count) == (2, 0)
    assert (economy.count, economy.previous_count) == (0, 1)
    assert len(labour.volume) == 14
    assert labour.volume[-1] == 3 and labour.volume[-2] == 2 and labour.volume[-4] == 2
    assert economy.volume == (1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0)
    assert digest.story_count == 4


def test_same_story_from_three_feeds_is_one_entry_listing_every_feed(digest: dg.Digest) -> None:
    labour = section(digest, LABOUR)
    karaganda = [s for s in labour.stories if "Karaganda" in s.title]
    assert len(karaganda) == 1
    story = karaganda[0]
    assert story.feeds == ("rferl", "bbc", "azattyq")  # first carrier first
    assert story.sources == 3
    assert story.url == "https://www.rferl.org/a/karaganda-miners-strike/33001.html"
    assert story.terms == ("strike", "miners")  # merged case-insensitively
    text = dg.render(digest, "text")
    assert text.count("Miners strike in Karaganda over unpaid wages") == 1
    assert "3 sources: RFE/RL (English), BBC News — Asia, Азаттык" in text


def test_ranked_by_sources_then_recency(digest: dg.Digest) -> None:
    titles = [s.title for s in section(digest, LABOUR).stories]
    assert titles == ["Miners strike in Karaganda over unpaid wages",
                      "Oil workers in Zhanaozen hold a picket outside the akimat",
                      "Activist detained after protest against the strike ban in Almaty"]


def test_story_in_two_topics_shown_in_full_once_and_referenced(digest: dg.Digest) -> None:
    labour, rights = section(digest, LABOUR), section(digest, RIGHTS)
    full = next(s for s in labour.full if "Activist" in s.title)
    assert full.shown_in is None and full.other_topics == (RIGHTS,)
    ref = next(s for s in rights.stories if "Activist" in s.title)
    assert ref.shown_in == LABOUR and ref in rights.references and ref not in rights.full
    assert ref.terms == ("detained",)  # why it matched *this* topic
    for fmt in ("text", "markdown"):
        out = dg.render(digest, fmt)
        assert out.count("Activist detained after protest against the strike ban in Almaty") == 2
    html = dg.render(digest, "html")
    assert html.count(f'id="{full.anchor}"') == 1 and f'href="#{full.anchor}"' in html
    data = json.loads(dg.render(digest, "json"))
    refs = [s for t in data["topics"] for s in t["stories"] if s["shown_in"]]
    assert [(r["title"][:8], r["shown_in"]) for r in refs] == [("Activist", LABOUR)]


def test_limit_moves_the_full_entry_to_the_next_topic(fixed_db: Path) -> None:
    with Store(fixed_db) as store:
        d = dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW, limit=2)
    labour, rights = section(d, LABOUR), section(d, RIGHTS)
    assert len(labour.stories) == 2 and labour.omitted == 1 and labour.count == 3
    activist = next(s for s in rights.stories if "Activist" in s.title)
    assert activist.shown_in is None and activist.other_topics == (LABOUR,)
    assert "… and 1 more story not shown." in dg.render(d, "text")


def test_topic_filter(fixed_db: Path) -> None:
    with Store(fixed_db) as store:
        d = dg.build(store, topics=[TOPICS[1]], since=SINCE, until=NOW, now=NOW)
    assert [t.id for t in d.topics] == [RIGHTS]
    assert all(s.shown_in is None and s.other_topics == () for s in d.topics[0].stories)


def test_sources_health(digest: dg.Digest) -> None:
    src = digest.sources
    assert src.ok == 4
    [failing] = src.failing
    assert (failing.id, failing.kind, failing.error) == ("broken", "http-status",
                                                        "HTTP 503 Service Unavailable")
    assert failing.failing_since == NOW - timedelta(days=2, hours=4)
    [silent] = src.silent
    assert silent.id == "eurasianet" and silent.usual_gap == 86400
    assert silent.last_item_at == NOW - timedelta(days=11, hours=4)
    [disabled] = src.disabled
    assert disabled.id == "gone" and "410" in disabled.reason


def test_silence_rule(tmp_path: Path) -> None:
    """Quiet for more than 3x the median gap (at least a day) is silent; with
    fewer than 5 items, more than 7 days."""
    with Store(tmp_path / "m.db") as store:
        from digest_fixture import FEEDS
        store.sync_feeds(FEEDS[:3], NOW - timedelta(days=60))
        for n in range(6):  # every 4 h, the newest 13 h ago: 13 h > 12 h but < 1 day floor
            at = NOW - timedelta(hours=13 + 4 * n)
            poll(store, "rferl", at, [entry(f"r{n}", f"rferl item number {n} here", None, at)])
        for n in range(6):  # every 2 days, the newest 7 days ago: > 6 days
            at = NOW - timedelta(days=7 + 2 * n)
            poll(store, "bbc", at, [entry(f"b{n}", f"bbc item number {n} here", None, at)])
        at = NOW - timedelta(days=6)  # two items only, 6 days ago: not yet 7 days
        poll(store, "azattyq", at, [entry("a1", "azattyq item number one", None, at),
                                    entry("a2", "azattyq item number two", None, at)])
        for feed_id in ("rferl", "bbc", "azattyq"):
            poll(store, feed_id, NOW - timedelta(minutes=5))
        d = dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW)
    assert [s.id for s in d.sources.silent] == ["bbc"]


def test_long_health_lists_are_capped_but_json_has_them_all(tmp_path: Path) -> None:
    from monitor.types import FeedConfig

    feeds = [FeedConfig(id=f"f{i:02d}", url=f"https://f{i}.example/rss", name=f"Feed {i}")
             for i in range(dg.MAX_LISTED + 5)]
    with Store(tmp_path / "m.db") as store:
        store.sync_feeds(feeds, NOW - timedelta(days=60))
        for f in feeds:
            poll(store, f.id, NOW - timedelta(hours=1),
                 failure=FetchFailure("timeout", "timed out after 30 s"),
                 failing_since=NOW - timedelta(hours=2))
        d = dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW)
    assert len(d.sources.failing) == dg.MAX_LISTED + 5
    assert "… and 5 more (see `monitor feeds`)" in dg.render(d, "text")
    assert "… and 5 more" in dg.render(d, "markdown")
    assert "… and 5 more" in dg.render(d, "html")
    assert len(json.loads(dg.render(d, "json"))["sources"]["failing"]) == dg.MAX_LISTED + 5


# --- JSON shape ----------------------------------------------------------------------------

ISO = "iso"
STORY = {"title": str, "url": (str, None), "published_at": ISO, "feeds": [str],
         "snippet": str, "terms": [str], "other_topics": [str]}
SHAPE = {
    "generated_at": ISO, "since": ISO, "until": ISO,
    "topics": [{"id": str, "name": str, "count": int, "previous_count": int,
                "stories": [STORY]}],
    "sources": {"ok": int, "failing": [{"id": str, "url": str, "error": str,
                                        "failing_since": (ISO, None)}]},
}


def conforms(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Hand-written check of the DESIGN.md shape: dict keys required (extra keys
    allowed), [shape] a list of such, a tuple alternatives, ISO an ISO date."""
    if isinstance(shape, tuple):
        errors = [conforms(value, s, where) for s in shape]
        return [] if any(not e for e in errors) else errors[0]
    if shape is None:
        return [] if value is None else [f"{where}: expected null"]
    if shape == ISO:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            return [f"{where}: not an ISO date: {value!r}"]
        return [] if value.endswith("Z") else [f"{where}: not UTC: {value!r}"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        return [e for k, s in shape.items()
                for e in (conforms(value[k], s, f"{where}.{k}") if k in value
                          else [f"{where}: missing {k}"])]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [e for i, v in enumerate(value) for e in conforms(v, shape[0], f"{where}[{i}]")]
    if shape is int and isinstance(value, bool):
        return [f"{where}: expected int, got bool"]
    return [] if isinstance(value, shape) else [f"{where}: expected {shape.__name__}"]


def test_json_has_the_documented_shape(digest: dg.Digest) -> None:
    data = json.loads(dg.render(digest, "json"))
    assert conforms(data, SHAPE) == []
    assert conforms({"since": "yesterday"}, {"since": ISO}) != []  # the checker checks
    assert [s["title"][:6] for s in data["topics"][0]["stories"]] == ["Miners", "Oil wo",
                                                                       "Activi"]
    assert data["sources"]["failing"][0]["failing_since"] == "2026-03-08T03:00:00Z"


# --- hostile content -----------------------------------------------------------------------

JS_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "  javascript:alert(1)",
    "java\tscript:alert(1)", "java\nscript:alert(1)", "\x01javascript:alert(1)",
    "javascript&#58;alert(1)", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)", "VBScript:msgbox(1)", "\u200bjavascript:alert(1)",
    "jav\u00adascript:alert(1)", "//evil.example/x", "/relative/path", "ftp://x.example/",
    "file:///etc/passwd", "https:alert(1)", "http://",
]
HOSTILE_TITLES = [
    "<script>alert('title')</script> Kazakhstan strike",
    "<img src=x onerror=alert(1)> strike",
    "<svg onload=alert(1)> strike in Almaty",
    "[x](javascript:alert(1)) strike",
    "![](http://127.0.0.1:9/track.png) strike",
    "Breaking\r\nBcc: victim@example.org\r\nX-Evil: 1 strike",
    "=?UTF-8?Q?=0A?=Bcc: x@y strike",
    "\x1b[31mred\x1b[0m \u202etxet desrever\u202c `code` | pipe | strike",
    "<iframe src=javascript:alert(1)></iframe> strike",
    "# heading\n- list\n1. item strike",
]


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    from digest_fixture import FEEDS

    from monitor.types import FeedConfig

    feeds = (*FEEDS[:2], FeedConfig(id="evil", url="https://evil.example/rss",
                                    name="<b onmouseover=alert(1)>Evil</b> [x](javascript:y)"))
    path = tmp_path / "hostile.db"
    with Store(path) as store:
        store.sync_feeds(feeds, NOW - timedelta(days=3))
        store.sync_topics(TOPICS, NOW - timedelta(days=3))
        at = SINCE + timedelta(hours=1)
        entries, hits = [], []
        for i, title in enumerate(HOSTILE_TITLES):
            url = JS_URLS[i % len(JS_URLS)]
            entries.append(entry(f"t{i}", title, url, at - timedelta(minutes=i)))
            hits.append(hit(LABOUR, f"t{i}", ["<script>", "strike"],
                            f"<script>alert({i})</script> [[strike]] <img src=x onerror=alert(1)>"
                            f" [[<svg onload=alert(2)>]] [x](javascript:alert(3))"))
        for j, url in enumerate(JS_URLS):
            entries.append(entry(f"u{j}", f"Link test number {j} about a strike", url,
                                 at - timedelta(hours=1, minutes=j)))
            hits.append(hit(RIGHTS, f"u{j}", ["strike"], f"Link test [[{j}]]"))
        entries.append(entry("ok", "A plain strike story (with a real link)",
                             "https://example.org/normal?a=1&b=2", at))
        hits.append(hit(LABOUR, "ok", ["strike"], "A plain [[strike]] story"))
        poll(store, "evil", at, entries, hits)
        poll(store, "azattyq", NOW - timedelta(hours=1),
             failure=FetchFailure("parse", "<script>alert('err')</script>\r\nBcc: x@y"),
             failing_since=NOW - timedelta(hours=5))
    return path


@pytest.fixture
def hostile(hostile_db: Path) -> dg.Digest:
    with Store(hostile_db) as store:
        return dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW, limit=0)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parse_html(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert_html(html: str, *, own_svg: bool = True) -> None:
    tags = parse_html(html)
    names = {t for t, _ in tags}
    own = {"style", "meta"} if own_svg else set()  # our <head>; markdown output has none
    assert not names & {"script", "img", "iframe", "object", "embed", "base", "form",
                        "input", "link", "style", "meta"} - own, names
    for tag, attrs in tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            assert name not in ("src", "srcset", "formaction", "background"), (tag, name)
            if name == "href":
                assert value and (value.startswith(("https://", "http://", "#"))), value
            if name == "style":  # markdown-it aligns table cells; nothing else may
                assert re.fullmatch(r"text-align:(left|right|center)", value or ""), value
        if tag == "svg" and own_svg:
            assert dict(attrs).get("class") == "chart"
    assert "<script" not in html.lower()


def test_hostile_html_is_inert(hostile: dg.Digest) -> None:
    html = dg.render(hostile, "html")
    assert_inert_html(html)
    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">') in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html  # shown as text
    assert "<mark>&lt;svg onload=alert(2)&gt;</mark>" in html
    assert "\u202e" not in html and "\x1b" not in html
    linked = [v for _, attrs in parse_html(html) for k, v in attrs if k == "href"]
    assert not any("127.0.0.1" in (v or "") for v in linked)  # no tracker pixel either
    assert 'href="https://example.org/normal?a=1&amp;b=2"' in html


def markdown_to_html(text: str) -> str:
    md = MarkdownIt("commonmark").enable("table")
    md.validateLink = lambda url: True  # judge our output, not markdown-it's own filter
    return md.render(text)


def test_hostile_markdown_is_inert(hostile: dg.Digest) -> None:
    text = dg.render(hostile, "markdown")
    assert not re.search(r"(?<!\\)<(script|img|svg|iframe)", text, re.I)
    assert not re.search(r"(?<!\\)\]\(<?\s*javascript", text, re.I)
    html = markdown_to_html(text)
    assert_inert_html(html, own_svg=False)
    assert "<h1>" in html and html.count("<h1>") == 1  # "# heading" in a title stays text
    hrefs = [v for _, attrs in parse_html(html) for k, v in attrs if k == "href"]
    assert hrefs and all(h and h.startswith(("http://", "https://")) for h in hrefs)
    assert "<strong>strike</strong>" in html


def test_hostile_text_is_inert(hostile: dg.Digest) -> None:
    text = dg.render(hostile, "text")
    assert not any(ord(c) < 32 and c != "\n" for c in text)
    assert "\u202e" not in text and "\x1b" not in text and "\r" not in text
    for line in text.splitlines():
        assert not line.startswith(("Bcc:", "X-Evil:"))
    for url in JS_URLS:
        assert url.strip() not in [line.strip() for line in text.splitlines()]


def test_hostile_json_is_valid_and_links_are_http(hostile: dg.Digest) -> None:
    data = json.loads(dg.render(hostile, "json"))
    assert conforms(data, SHAPE) == []
    urls = [s["url"] for t in data["topics"] for s in t["stories"]]
    urls += [x["url"] for t in data["topics"] for s in t["stories"] for x in s["links"]]
    assert set(urls) == {None, "https://example.org/normal?a=1&b=2"}
    assert data["sources"]["failing"][0]["error"].startswith("<script>")  # data, not markup


@pytest.mark.parametrize("url", JS_URLS)
def test_safe_url_refuses(url: str) -> None:
    assert dg.safe_url(url) is None


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.org/a?b=1&c=2#f", "https://example.org/a?b=1&c=2#f"),
    ("  HTTP://Example.org/x  ", "HTTP://Example.org/x"),
    ("https://example.org/a b(1)<2>", "https://example.org/a%20b%281%29%3C2%3E"),
    ("https://example.org/\"onmouseover=x", "https://example.org/%22onmouseover=x"),
    ("https://пример.рф/статья", "https://пример.рф/статья"),
    ("http://user:pw@example.org/a", "http://example.org/a"),
    ("https://www.bank.example@evil.example/x", "https://evil.example/x"),
])
def test_safe_url_keeps_http(url: str, expected: str) -> None:
    assert dg.safe_url(url) == expected


def test_subject_is_one_line_whatever_the_titles(hostile: dg.Digest) -> None:
    subject = dg.subject(hostile)
    assert "\r" not in subject and "\n" not in subject
    msg = mail.build_message(sender="monitor@example.org", to=["desk@example.org"],
                             subject=subject, text=dg.render(hostile, "text"),
                             html=dg.render(hostile, "html"), now=NOW)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert parsed["To"] == "desk@example.org"
    assert parsed["Subject"] == subject.replace("=?", "= ?")


def test_subject_with_encoded_word_stays_literal() -> None:
    title = "=?UTF-8?Q?=0A?=Bcc: x@y and \r\nBcc: z@w"
    msg = mail.build_message(sender="m@example.org", to=["d@example.org"], subject=title,
                             text="t", html="<p>t</p>")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "= ?UTF-8?Q?=0A?=Bcc: x@y and Bcc: z@w"
    assert parsed["Bcc"] is None
    assert list(parsed.keys()).count("Subject") == 1


# --- CLI: output, memory, options ----------------------------------------------------------

def test_cli_output_is_written_atomically(config: Path, db: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "digest.html"
    target.write_text("old report", encoding="utf-8")
    result = invoke("digest", "--since", FROM, "--until", UNTIL, "--format", "html",
                    "--output", str(target), config=config, db=db)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Miners strike in Karaganda" in html
    assert sorted(p.name for p in out_dir.iterdir()) == ["digest.html"]  # no temp file left
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_write_atomic_failure_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(MonitorError, match="cannot write the digest"):
        dg.write_atomic(blocker / "d.html", "text")
    target = tmp_path / "d.txt"
    target.mkdir()  # os.replace onto a directory fails after the temp file is written
    with pytest.raises(MonitorError):
        dg.write_atomic(target, "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.txt", "not-a-dir"]


def test_cli_prints_text_by_default_and_each_format(config: Path, db: Path) -> None:
    for fmt in ("text", "markdown", "json", "html"):
        result = invoke("digest", "--since", FROM, "--until", UNTIL, "--format", fmt,
                        "--no-record", config=config, db=db)
        assert result.exit_code == 0, result.output
        assert "Karaganda" in result.stdout
    data = json.loads(invoke("digest", "--since", FROM, "--until", UNTIL, "--format", "json",
                             "--topic", RIGHTS, "--no-record", config=config, db=db).stdout)
    assert [t["id"] for t in data["topics"]] == [RIGHTS]


def test_cli_empty_period(config: Path, db: Path) -> None:
    result = invoke("digest", "--since", "2020-01-01", "--until", "2020-01-02", config=config,
                    db=db)
    assert result.exit_code == 0
    assert "No new items on these topics since 2020-01-01 00:00 UTC." in result.stdout


def test_cli_bad_usage_exits_2(config: Path, db: Path) -> None:
    assert invoke("digest", "--topic", "nope", config=config, db=db).exit_code == 2
    assert invoke("digest", "--since", "2026-03-10", "--until", "2026-03-01", config=config,
                  db=db).exit_code == 2
    assert invoke("digest", "--since", "yesterday-ish", config=config, db=db).exit_code == 2
    assert invoke("digest", "--email", "a@b\r\nBcc: c@d", config=config, db=db).exit_code == 2


def test_next_digest_starts_where_the_last_one_ended(config: Path, db: Path) -> None:
    def since_of(*args: str) -> str:
        result = invoke("digest", "--name", "desk", "--format", "json", *args, config=config,
                        db=db)
        assert result.exit_code == 0, result.output
        return str(json.loads(result.stdout)["since"])

    assert since_of("--since", "36h", "--until", UNTIL, "--no-record") == "2026-03-08T19:00:00Z"
    first_until = "2026-03-09T19:00:00"
    assert since_of("--until", first_until, "--no-record") == "2026-03-08T19:00:00Z"  # 24 h
    assert since_of("--until", first_until, "--record") == "2026-03-08T19:00:00Z"  # recorded now
    assert since_of("--until", UNTIL, "--record") == "2026-03-09T19:00:00Z"
    assert since_of("--until", "2026-03-11T07:00:00", "--record") == "2026-03-10T07:00:00Z"
    with Store(db) as store:  # another name has its own memory
        assert dg.last_until(store, "other") is None
        rows = store.query("SELECT name, until, format FROM digests ORDER BY id")
    assert [r["until"] for r in rows] == ["2026-03-09T19:00:00Z", "2026-03-10T07:00:00Z",
                                          "2026-03-11T07:00:00Z"]


def test_indexes_serve_the_digest_queries(fixed_db: Path) -> None:
    conn = sqlite3.connect(fixed_db)
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT published_at FROM items WHERE feed_id = ? AND "
        "published_at <= ? ORDER BY published_at DESC LIMIT 21", ["bbc", "2026"]))
    assert "idx_items_feed_id_published_at" in plan
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT h.topic_id FROM hits h JOIN items i ON i.id = h.item_id "
        "WHERE h.matched_at >= ? AND h.matched_at < ?", ["a", "b"]))
    assert "USING INDEX" in plan and "USING INTEGER PRIMARY KEY" in plan
    conn.close()


# --- mail ----------------------------------------------------------------------------------

class Collect:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued"


class RejectRecipients:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: relay access denied"


class RejectData:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.7.1 Message rejected as spam"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(request: pytest.FixtureRequest) -> Iterator[tuple[Any, int]]:
    handler = getattr(request, "param", Collect)()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_env(port: int) -> dict[str, str]:
    return {"MONITOR_SMTP_HOST": "127.0.0.1", "MONITOR_SMTP_PORT": str(port),
            "MONITOR_SMTP_SECURITY": "none", "MONITOR_SMTP_FROM": "monitor@example.org"}


def parse_mail(envelope: Any) -> EmailMessage:
    msg = email.message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_cli_email_is_received_with_both_parts(config: Path, db: Path,
                                               smtp: tuple[Collect, int]) -> None:
    handler, port = smtp
    result = invoke("digest", "--since", FROM, "--until", UNTIL, "--email", "desk@example.org",
                    "--email", "editor@example.org", config=config, db=db, env=smtp_env(port))
    assert result.exit_code == 0, result.output
    assert "mailed to desk@example.org, editor@example.org" in result.output
    [envelope] = handler.envelopes
    assert envelope.mail_from == "monitor@example.org"
    assert envelope.rcpt_tos == ["desk@example.org", "editor@example.org"]
    msg = parse_mail(envelope)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == ("Monitor: 4 stories in 2 topics — Miners strike in Karaganda "
                              "over unpaid wages")
    assert msg["Auto-Submitted"] == "auto-generated"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "Miners strike in Karaganda" in plain.get_content()
    assert "<mark>miners</mark>" in html.get_content()
    assert "Журналиста приговорили" in plain.get_content()  # UTF-8 survives the trip


def test_hostile_titles_mailed_through_a_real_server(hostile_db: Path, config: Path,
                                                     smtp: tuple[Collect, int]) -> None:
    handler, port = smtp
    with Store(hostile_db) as store:
        d = dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW)
        top = d.top_story
    assert top is not None
    dg.send(d, ["desk@example.org"], mail.SmtpSettings.from_env(smtp_env(port)))
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["desk@example.org"]
    msg = parse_mail(envelope)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    subject = msg["Subject"]
    assert "\n" not in subject and "\r" not in subject
    assert subject == mail.header_text(dg.subject(d))
    html = msg.get_body(("html",))
    assert html is not None
    assert_inert_html(html.get_content())


@pytest.mark.parametrize("smtp", [RejectRecipients], indirect=True)
def test_cli_email_refused_exits_1_with_the_server_answer(config: Path, db: Path,
                                                          smtp: tuple[Any, int]) -> None:
    _, port = smtp
    result = invoke("digest", "--since", FROM, "--until", UNTIL, "--email", "desk@example.org",
                    config=config, db=db, env=smtp_env(port))
    assert result.exit_code == 1
    assert "550 5.1.1 <desk@example.org>: Recipient address rejected" in result.output
    with Store(db) as store:  # a failed digest is not remembered
        assert dg.last_until(store, "default") is None


@pytest.mark.parametrize("smtp", [RejectData], indirect=True)
def test_email_rejected_data_raises_mail_error(digest: dg.Digest,
                                               smtp: tuple[Any, int]) -> None:
    _, port = smtp
    with pytest.raises(MailError, match=r"554 5\.7\.1 Message rejected as spam") as info:
        dg.send(digest, ["desk@example.org"], mail.SmtpSettings.from_env(smtp_env(port)))
    assert info.value.context == {"host": "127.0.0.1", "port": port}


def test_starttls_or_login_refused_by_a_plain_server(digest: dg.Digest,
                                                     smtp: tuple[Collect, int]) -> None:
    handler, port = smtp
    base = smtp_env(port)
    with pytest.raises(MailError, match="STARTTLS extension not supported"):
        dg.send(digest, ["d@example.org"],
                mail.SmtpSettings.from_env({**base, "MONITOR_SMTP_SECURITY": "starttls"}))
    with pytest.raises(MailError, match="AUTH extension not supported"):
        dg.send(digest, ["d@example.org"], mail.SmtpSettings.from_env(
            {**base, "MONITOR_SMTP_USER": "bot", "MONITOR_SMTP_PASSWORD": "secret"}))
    assert handler.envelopes == []


def test_email_without_a_server_exits_1(config: Path, db: Path) -> None:
    result = invoke("digest", "--since", FROM, "--until", UNTIL, "--email", "desk@example.org",
                    config=config, db=db, env=smtp_env(free_port()))
    assert result.exit_code == 1
    assert "cannot connect to the SMTP server" in result.output


def test_email_without_settings_exits_2(config: Path, db: Path) -> None:
    result = invoke("digest", "--email", "desk@example.org", config=config, db=db,
                    env={"MONITOR_SMTP_HOST": ""})
    assert result.exit_code == 2
    assert "MONITOR_SMTP_HOST" in result.output


def test_smtp_settings_from_env() -> None:
    s = mail.SmtpSettings.from_env({"MONITOR_SMTP_HOST": "smtp.example.org",
                                    "MONITOR_SMTP_USER": "bot@example.org",
                                    "MONITOR_SMTP_PASSWORD": "hunter2"})
    assert (s.port, s.security, s.sender) == (587, "starttls", "bot@example.org")
    assert "hunter2" not in repr(s)
    s = mail.SmtpSettings.from_env({"MONITOR_SMTP_HOST": "h", "MONITOR_SMTP_PORT": "465"})
    assert s.security == "ssl"
    with pytest.raises(MonitorError, match="MONITOR_SMTP_SECURITY"):
        mail.SmtpSettings.from_env({"MONITOR_SMTP_HOST": "h", "MONITOR_SMTP_SECURITY": "tls"})
    with pytest.raises(MonitorError, match="MONITOR_SMTP_PORT"):
        mail.SmtpSettings.from_env({"MONITOR_SMTP_HOST": "h", "MONITOR_SMTP_PORT": "99999"})


# --- the daemon's entry point --------------------------------------------------------------

def digest_config(tmp_path: Path, **kwargs: Any) -> DigestConfig:
    return DigestConfig(id=kwargs.pop("id", "morning"), schedule="0 7 * * *",
                        since=24 * 3600, format=kwargs.pop("format", "html"), **kwargs)


def test_run_digest_writes_records_and_continues(config: Path, db: Path,
                                                 tmp_path: Path) -> None:
    cfg = load_config(config)
    out = tmp_path / "digests"
    spec = digest_config(tmp_path, output_dir=str(out))
    with Store(db) as store:
        first = run_digest(cfg, store, spec, now=NOW)
        assert first.path == out / "morning-20260310-0700.html"
        assert first.digest.since == SINCE and first.digest.story_count == 4
        second = run_digest(cfg, store, spec, now=NOW + timedelta(hours=30))
        # the last one ended 30 h ago, longer than the 24 h window: nothing is lost
        assert second.digest.since == NOW
        third = run_digest(cfg, store, spec, now=NOW + timedelta(hours=31))
        # ran an hour after the last one: a 24 h digest still covers 24 h
        assert third.digest.since == NOW + timedelta(hours=7)
        assert dg.last_until(store, "morning") == NOW + timedelta(hours=31)
    assert sorted(p.name for p in out.iterdir()) == [
        "morning-20260310-0700.html", "morning-20260311-1300.html", "morning-20260311-1400.html"]
    assert "No new items on these topics since 2026-03-10 07:00 UTC." in (
        out / "morning-20260311-1300.html").read_text(encoding="utf-8")


def test_run_digest_mails_and_raises_without_recording(config: Path, db: Path, tmp_path: Path,
                                                       smtp: tuple[Collect, int],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    handler, port = smtp
    for k, v in smtp_env(port).items():
        monkeypatch.setenv(k, v)
    cfg = load_config(config)
    spec = digest_config(tmp_path, id="desk", format="markdown", to=("desk@example.org",),
                         topics=(RIGHTS,))
    with Store(db) as store:
        outcome = run_digest(cfg, store, spec, now=NOW)
        assert outcome.sent_to == ("desk@example.org",) and outcome.path is None
        assert [t.id for t in outcome.digest.topics] == [RIGHTS]
        monkeypatch.setenv("MONITOR_SMTP_PORT", str(free_port()))
        with pytest.raises(MailError):
            run_digest(cfg, store, spec, now=NOW + timedelta(days=1))
        assert dg.last_until(store, "desk") == NOW
    assert len(handler.envelopes) == 1


def manual(*args: str, config: Path, db: Path) -> dict[str, Any]:
    result = invoke("digest", "--format", "json", "--until", UNTIL, *args, config=config, db=db)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def stories_of(data: dict[str, Any]) -> list[list[str]]:
    return [[s["title"] for s in t["stories"]] for t in data["topics"]]


def test_two_manual_digests_in_a_row_show_the_same_hits(config: Path, db: Path) -> None:
    first = manual(config=config, db=db)
    second = manual(config=config, db=db)
    assert first["since"] == second["since"] == "2026-03-09T07:00:00Z"  # 24 h
    assert first["stories"] == 4 and stories_of(first) == stories_of(second)
    with Store(db) as store:
        assert store.query("SELECT * FROM digests") == []
    text = invoke("digest", "--until", UNTIL, config=config, db=db).stdout
    assert text.splitlines()[0] == "Monitor digest: 2026-03-09 07:00 UTC to 2026-03-10 07:00 UTC"


def test_manual_digest_with_record_moves_the_start_of_the_next(config: Path, db: Path) -> None:
    first = manual("--until", "2026-03-09T19:00:00", "--record", config=config, db=db)
    assert first["since"] == "2026-03-08T19:00:00Z"
    with Store(db) as store:
        rows = store.query("SELECT name, since, until FROM digests")
    assert rows == [{"name": "default", "since": "2026-03-08T19:00:00Z",
                     "until": "2026-03-09T19:00:00Z"}]
    assert manual(config=config, db=db)["since"] == "2026-03-09T19:00:00Z"


def test_a_scheduled_digest_moves_the_default_start(config: Path, db: Path,
                                                    tmp_path: Path) -> None:
    scheduled_at = SINCE + timedelta(hours=5)
    with Store(db) as store:  # what the daemon runs on the digest's schedule
        run_digest(load_config(config), store, digest_config(tmp_path), now=scheduled_at)
    start = "2026-03-09T12:00:00Z"
    assert manual("--name", "morning", config=config, db=db)["since"] == start
    again = manual("--name", "morning", config=config, db=db)
    assert again["since"] == start and 0 < again["stories"] < 4
    assert manual(config=config, db=db)["since"] == "2026-03-09T07:00:00Z"  # another name
    with Store(db) as store:
        assert [r["until"] for r in store.query("SELECT until FROM digests")] == [start]


def test_output_name_is_a_safe_slug() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=NOW.tzinfo)
    assert dg.output_name("morning", when, "markdown") == "morning-20260102-0304.md"
    assert dg.output_name("../../etc/CON", when, "text") == "etc-con-20260102-0304.txt"
    assert dg.output_name("///", when, "json") == "digest-20260102-0304.json"


# --- end to end: a hostile feed through the real poller ------------------------------------

HOSTILE_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Evil &lt;script&gt;alert(1)&lt;/script&gt;</title>
<link>https://evil.example/</link><description>x</description>
<item><title>Kazakhstan miners strike &lt;script&gt;alert(1)&lt;/script&gt;</title>
<link>javascript:alert(document.cookie)</link>
<description>&lt;img src=x onerror=alert(1)&gt;Kazakhstan: miners strike in Karaganda
&lt;svg onload=alert(2)&gt; [x](javascript:alert(3))</description>
<pubDate>Mon, 09 Mar 2026 08:00:00 GMT</pubDate><guid>evil-1</guid></item>
<item><title>[click](javascript:alert(1)) Kazakhstan oil workers strike</title>
<link> JaVaScRiPt:alert(2)</link><description>Strike in Zhanaozen, Kazakhstan</description>
<pubDate>Mon, 09 Mar 2026 09:00:00 GMT</pubDate><guid>evil-2</guid></item>
<item><title>Kazakhstan strike news&#13;&#10;Bcc: victim@example.org</title>
<link>https://evil.example/ok?a=1&amp;b="onmouseover=alert(1)</link>
<description>Strike in Kazakhstan</description>
<pubDate>Mon, 09 Mar 2026 10:00:00 GMT</pubDate><guid>evil-3</guid></item>
</channel></rss>"""

E2E_CONFIG = """\
settings: {allow_private: true, timeout: 5s, connect_timeout: 2s, article_text: never}
feeds:
  - {id: evil, url: "%s", name: "Evil feed"}
topics:
  - id: kz-labour-protests
    name: "Labour protests in Kazakhstan"
    query: "Kazakhstan AND strike*"
"""


def test_hostile_feed_polled_for_real_renders_inert(tmp_path: Path, server: FeedServer) -> None:
    server.put("/evil", HOSTILE_RSS.encode())
    config = tmp_path / "feeds.yaml"
    config.write_text(E2E_CONFIG % server.url("/evil"), encoding="utf-8")
    db = tmp_path / "e2e.db"
    polled = invoke("poll", "--force", "--json", config=config, db=db)
    assert polled.exit_code == 0, polled.output
    assert json.loads(polled.stdout)["hits"] == 3
    outputs = {}
    for fmt in dg.FORMATS:
        # --until ahead: the hits were stored this very second, and a period ends
        # before its `until` second (the next digest starts at it)
        result = invoke("digest", "--since", "2000-01-01", "--until", "2100-01-01",
                        "--format", fmt, "--no-record", config=config, db=db)
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.stdout
    assert_inert_html(outputs["html"])
    assert_inert_html(markdown_to_html(outputs["markdown"]), own_svg=False)
    data = json.loads(outputs["json"])
    stories = data["topics"][0]["stories"]
    assert len(stories) == 3
    assert sorted(str(s["url"]) for s in stories) == [
        "None", "None", "https://evil.example/ok?a=1&b=%22onmouseover=alert%281%29"]
    assert all("\n" not in s["title"] and "\r" not in s["title"] for s in stories)


CREDENTIAL_URLS = ["http://user:secret@example.org/a", "https://token-abc@example.org/b",
                   "https://www.bank.example@evil.example/login"]


def test_links_carrying_credentials_lose_them_in_every_format(tmp_path: Path) -> None:
    from digest_fixture import FEEDS

    from monitor.types import FeedConfig

    secret_feed = FeedConfig(id="private", url="https://reader:hunter2@feeds.example/rss",
                             name="Private")
    path = tmp_path / "creds.db"
    with Store(path) as store:
        store.sync_feeds((*FEEDS[:1], secret_feed), NOW - timedelta(days=3))
        store.sync_topics(TOPICS, NOW - timedelta(days=3))
        at = SINCE + timedelta(hours=1)
        poll(store, "rferl", at,
             [entry(f"c{i}", f"Credential strike story {i}", url, at - timedelta(minutes=i))
              for i, url in enumerate(CREDENTIAL_URLS)],
             [hit(LABOUR, f"c{i}", ["strike"], f"Credential [[strike]] story {i}")
              for i in range(len(CREDENTIAL_URLS))])
        poll(store, "private", at, failure=FetchFailure("http-status", "HTTP 500"),
             failing_since=at)
        d = dg.build(store, topics=TOPICS, since=SINCE, until=NOW, now=NOW, limit=0)
    rendered = {fmt: dg.render(d, fmt) for fmt in dg.FORMATS}
    for fmt, text in rendered.items():
        for secret in ("user:", "secret", "token-abc", "bank.example", "hunter2", "reader"):
            assert secret not in text, (fmt, secret)
    hrefs = [v for tag, attrs in parse_html(rendered["html"]) if tag == "a"
             for k, v in attrs if k == "href"]
    assert {"http://example.org/a", "https://example.org/b",
            "https://evil.example/login"} <= set(hrefs)
    assert "](<https://evil.example/login>)" in rendered["markdown"]
    assert "    http://example.org/a\n" in rendered["text"]
    data = json.loads(rendered["json"])
    urls = {s["url"] for t in data["topics"] for s in t["stories"]}
    assert urls == {"http://example.org/a", "https://example.org/b", "https://evil.example/login"}
    assert data["sources"]["failing"][0]["url"] == "https://feeds.example/rss"
