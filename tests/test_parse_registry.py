"""monitor.parse.registry: parsers chosen by media type and by sniffing, asked
in order until one accepts; JSON Feed first, declining what is not JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.parse import parse_feed
from monitor.parse.registry import REGISTRY, Document, ParserEntry, Registry, media_type

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JSON_FEED = b'{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": []}'
RSS = b"<rss version='2.0'><channel><title>T</title><item><title>A</title></item></channel></rss>"


def doc(data: bytes, content_type: str = "", *, certain: bool = True) -> Document:
    return Document(data, media_type(content_type), None, certain, True)


def test_the_default_order_is_json_feed_then_lxml_then_feedparser() -> None:
    assert [e.name for e in REGISTRY.entries] == ["jsonfeed", "lxml", "feedparser"]


@pytest.mark.parametrize("content_type", ["application/feed+json", "application/json; charset=utf-8",
                                          "text/plain"])
def test_json_feed_is_asked_by_media_type_or_by_its_brace(content_type: str) -> None:
    jsonfeed = REGISTRY.entries[0]
    assert jsonfeed.wants(doc(JSON_FEED, content_type))
    assert not jsonfeed.wants(doc(RSS, "application/rss+xml"))


def test_json_feed_is_read_by_its_own_parser() -> None:
    parsed = parse_feed(JSON_FEED, url="https://x.example/feed.json",
                        headers={"Content-Type": "application/feed+json"}, fetched_at=NOW)
    assert parsed.title == "T" and parsed.entries == ()
    assert REGISTRY.entries[0].parse(doc(JSON_FEED))["version"] == "json11"


def test_json_feed_declines_a_body_that_is_not_json() -> None:
    assert REGISTRY.entries[0].parse(doc(RSS, "application/json")) is None
    assert REGISTRY.parse(doc(RSS, "application/json"))["version"] == "rss20"


def test_the_fast_path_declines_a_document_whose_encoding_is_not_certain() -> None:
    fast = REGISTRY.entries[1]
    assert fast.parse(doc(RSS)) is not None
    assert fast.parse(doc(RSS, certain=False)) is None
    assert REGISTRY.parse(doc(RSS, certain=False))["version"] == "rss20"


def test_a_declining_parser_hands_the_document_to_the_next_one() -> None:
    asked: list[str] = []

    def answer(name: str, result: Any) -> ParserEntry:
        def parse(d: Document) -> Any:
            asked.append(name)
            return result
        return ParserEntry(name, parse, frozenset({"application/x-test"}) if name == "typed"
                           else frozenset(), (lambda b: b.startswith(b"!")) if name == "sniffed"
                           else None)

    registry = Registry()
    for entry in (answer("typed", None), answer("sniffed", {"by": "sniffed"}),
                  answer("any", {"by": "any"})):
        registry.register(entry)
    assert registry.parse(doc(b"!x", "application/x-test")) == {"by": "sniffed"}
    assert asked == ["typed", "sniffed"]
    asked.clear()
    assert registry.parse(doc(b"x", "text/xml")) == {"by": "any"}
    assert asked == ["any"]
