"""JSON Feed 1.0 and 1.1 through the parser registry: real feeds against golden
files, the poll of a JSON feed through the real CLI (stored, matched), broken
JSON and JSON that is no feed as failures, and no exception but ParseError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from feedserver import FeedServer
from helpers import DATA, run_cli, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parse import assert_golden, check_invariants

from monitor.errors import ParseError
from monitor.fetch.http import ACCEPT
from monitor.parse import parse_feed
from monitor.types import ParsedFeed

JSON_DATA = DATA / "jsonfeed"
GOLDEN = DATA / "golden" / "jsonfeed"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
URL = "https://feeds.example.org/feed.json"
JSON_TYPE = {"Content-Type": "application/feed+json"}
FEEDS = sorted(JSON_DATA.glob("*.json"))


def parse(body: bytes, headers: Any = JSON_TYPE, **kwargs: Any) -> ParsedFeed:
    return parse_feed(body, url=URL, headers=headers, fetched_at=NOW, **kwargs)


def feed(**fields: Any) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T",
                       **fields}).encode()


# ------------------------------------------------------------- golden files

def test_the_json_feeds_are_there() -> None:
    assert len(FEEDS) == 5


@pytest.mark.parametrize("path", FEEDS, ids=[p.stem for p in FEEDS])
def test_golden(path: Path) -> None:
    assert_golden(path, GOLDEN / path.name, parse)


def test_a_json_feed_reads_like_an_rss_feed() -> None:
    parsed = parse((JSON_DATA / "feedparser-example.json").read_bytes())
    assert (parsed.title, parsed.link) == ("My Example Feed", "https://example.org/")
    second, first = parsed.entries
    assert (second.key, second.title, second.summary, second.url, second.author) == (
        "2", "post 2", "This is a second item.", "https://example.org/second-item", "me")
    # content_html through html_text: the script's text is dropped, the author is the item's
    assert (first.summary, first.author, first.title) == ("Hello, world!", "you", "")


def test_json_feed_fields_in_order_of_preference() -> None:
    parsed = parse(feed(language="kk", authors=[{"name": "Desk"}], items=[
        {"id": 7, "external_url": "https://example.org/ext", "summary": "Short",
         "content_text": "Longer", "content_html": "<p>Longest</p>",
         "date_published": "2025-12-31T10:00:00+06:00", "date_modified": "2025-12-31T05:00:00Z",
         "authors": [{"name": "A"}, {"url": "https://x"}, {"name": "B"}]},
        {"id": "x", "url": "/rel", "external_url": "https://example.org/ext2",
         "content_html": "<b>Bold</b> &amp; text", "date_published": "3000-01-01T00:00:00Z",
         "language": "ru"},
        "not an item",
    ]))
    one, two = parsed.entries
    assert (one.key, one.url, one.summary, one.author, one.language) == (
        "7", "https://example.org/ext", "Short", "A, B", "kk")
    assert one.published_at == datetime(2025, 12, 31, 4, 0, tzinfo=UTC)
    assert one.updated_at == datetime(2025, 12, 31, 5, 0, tzinfo=UTC)
    assert (two.url, two.summary, two.author, two.language) == (
        "https://feeds.example.org/rel", "Bold & text", "Desk", "ru")
    assert two.published_at == NOW  # a date in the future: the fetch time, as for RSS


def test_max_items_is_kept() -> None:
    items = [{"id": str(n), "title": f"item {n}"} for n in range(50)]
    assert [e.key for e in parse(feed(items=items), max_items=3).entries] == ["0", "1", "2"]


def test_item_tags_inside_content_html_do_not_cut_the_json() -> None:
    # The byte-level entries cut counts `<item` tags: inside a JSON string
    # they are text, and cutting there would break the document.
    html = "<item>x</item>" * 100
    items = [{"id": str(n), "title": f"item {n}", "content_html": html} for n in range(5)]
    parsed = parse(feed(items=items), max_items=3)
    assert [e.key for e in parsed.entries] == ["0", "1", "2"]


def test_an_xml_feed_served_as_json_is_still_read() -> None:
    rss = (DATA / "feeds" / "kz-news.xml").read_bytes()
    assert len(parse(rss, {"Content-Type": "application/json"}).entries) == 12


@pytest.mark.parametrize(("body", "kind", "reason"), [
    (b'{"version": "https://jsonfeed.org/version/1", "items": [}', "parse",
     "not valid JSON (Expecting value at line 1 column 57)"),
    (b"[" * 100_000, "parse", "not readable JSON (nested too deeply)"),
    (b'{"version": "https://jsonfeed.org/version/1", "x": ' + b"9" * 5000 + b"}", "parse",
     "not readable JSON"),
    (b'{"title": "API", "items": []}', "not-a-feed", "JSON document, not a JSON Feed"),
    (b'[{"version": "https://jsonfeed.org/version/1"}]', "not-a-feed",
     "JSON document, not a JSON Feed"),
    (b'{"version": "https://jsonfeed.org/version/1", "items": {}}', "parse",
     '"items" is not a list'),
])
def test_json_that_is_broken_or_no_feed_is_a_parse_error(body: bytes, kind: str,
                                                         reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(body)
    assert info.value.kind == kind
    assert reason in info.value.message
    assert info.value.context["url"] == URL


def test_the_fetcher_asks_for_json_feed_after_the_xml_types() -> None:
    assert "application/feed+json" in ACCEPT
    assert ACCEPT.index("text/xml") < ACCEPT.index("application/feed+json") < ACCEPT.index("*/*")


# ------------------------------------------------------------- through the CLI

def cli_json(*args: str, config: Path, db: Path) -> Any:
    result = run_cli(*args, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_json_feed_is_polled_stored_and_matched(tmp_path: Path, server: FeedServer) -> None:
    server.put("/feed.json", (JSON_DATA / "feed-rs-elastic-1.1.json").read_bytes(),
               "application/feed+json")
    server.put("/broken.json", b'{"version": "https://jsonfeed.org/version/1", "items": [',
               "application/json")
    server.put("/api.json", b'{"status": "ok", "items": []}', "application/json")
    config = tmp_path / "feeds.yaml"
    config.write_text(yaml.safe_dump({
        "settings": {"allow_private": True, "timeout": "5s", "connect_timeout": "2s",
                     "article_text": "never"},
        "feeds": [{"id": "influx", "url": server.url("/feed.json")},
                  {"id": "broken", "url": server.url("/broken.json")},
                  {"id": "api", "url": server.url("/api.json")}],
        "topics": [{"id": "graphite", "name": "Graphite", "query": "graphite"}]}))
    db = tmp_path / "monitor.db"

    polled = {f["id"]: f for f in cli_json("poll", config=config, db=db)["feeds"]}
    assert polled["influx"]["new_items"] == 3 and polled["influx"]["hits"] >= 1
    assert "application/feed+json" in server.headers_for("/feed.json")[0]["accept"]
    hits = cli_json("hits", "--topic", "graphite", config=config, db=db)
    assert any("Graphite" in h["title"] for h in hits)

    feeds = {f["id"]: f for f in cli_json("feeds", config=config, db=db)["feeds"]}
    assert feeds["influx"]["state"] == "ok" and feeds["influx"]["items"] == 3
    assert feeds["broken"]["last_error_kind"] == "parse"
    assert feeds["api"]["last_error_kind"] == "not-a-feed"
    assert "not valid JSON (" in feeds["broken"]["last_error"]
    assert "not a JSON Feed" in feeds["api"]["last_error"]


def test_feeds_add_finds_and_adds_a_json_feed(tmp_path: Path, server: FeedServer) -> None:
    server.put("/feed.json", (JSON_DATA / "feed-extractor-adactio.json").read_bytes(),
               "application/feed+json")
    server.put("/", b'<html><head><link rel="alternate" type="application/feed+json" '
               b'href="/feed.json"></head><body>hi</body></html>', "text/html")
    config = write_config(tmp_path / "feeds.yaml", [], topics=False)
    result = run_cli("feeds", "add", server.url("/"), config=config)
    assert result.exit_code == 0, result.output
    assert "title: Adactio: Journal" in result.output and "items: 10" in result.output
    assert server.url("/feed.json") in config.read_text()


# ------------------------------------------------------------- never anything else

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["version", "title", "items", "id", "url", "external_url", "summary",
                         "content_text", "content_html", "date_published", "date_modified",
                         "author", "authors", "name", "language", "home_page_url"]) | st.text(),
        inner, max_size=6),
    max_leaves=30)


def _only_parse_errors(body: bytes, headers: Any = JSON_TYPE) -> None:
    try:
        check_invariants(parse(body, headers))
    except ParseError as exc:
        assert exc.kind in ("parse", "not-a-feed")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json, st.booleans())
def test_any_json_value_gives_a_feed_or_a_parse_error(value: Any, versioned: bool) -> None:
    if versioned and isinstance(value, dict):
        value = {**value, "version": "https://jsonfeed.org/version/1.1"}
    _only_parse_errors(json.dumps(value).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["application/json", "text/plain", ""]))
def test_any_bytes_give_a_feed_or_a_parse_error(body: bytes, content_type: str) -> None:
    _only_parse_errors(b"{" + body, {"Content-Type": content_type} if content_type else {})
