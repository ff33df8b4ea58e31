"""The parser registry: which parser reads a document, chosen by its media
type and by sniffing its first bytes, tried in order until one accepts.

Every entry returns feedparser's shape of result (a dict with "feed",
"entries", "version", "bozo"...) or None to decline; the next entry is then
tried. The entries, in order:

1. ``jsonfeed``: ``application/feed+json`` / ``application/json``, or a body
   starting with ``{``: monitor.parse.jsonfeed reads JSON Feed 1.0 and 1.1,
   declines a body that does not start like JSON (RSS served as
   application/json), and raises ParseError for broken JSON ("parse") or
   JSON that is not a JSON Feed ("not-a-feed").
2. ``lxml``: the fast path (monitor.parse.fast) for any media type, only
   when the encoding is certain and nothing was changed or noted on the way
   (``Document.certain``) and the caller allows it (``Document.fast``);
   declines anything it does not model.
3. ``feedparser``: everything; never declines.

Owns the choice only. Must not decode, guard, or turn records into Entries
(monitor.parse.document, .entities, .entries), and never fetches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.parse import fast as fastparse
from monitor.parse.feedparser import _run_feedparser
from monitor.parse.jsonfeed import json_text, parse_json_feed

__all__ = ["REGISTRY", "Document", "ParserEntry", "Registry"]


@dataclass(frozen=True, slots=True)
class Document:
    """What a parser is given: the body as UTF-8, past the entity guard and
    the entries cut."""

    data: bytes
    media_type: str  # Content-Type without parameters, lower case; "" if none
    language: str | None  # the Content-Language to apply, if any
    certain: bool  # encoding certain, nothing removed or noted
    fast: bool  # the caller allows the lxml fast path


Parse = Callable[[Document], Any]  # a feedparser-shaped result, or None: declined


@dataclass(frozen=True, slots=True)
class ParserEntry:
    """One parser: it is asked when the document's media type is one of
    ``media_types`` or ``sniff`` recognises its body; with neither given, it
    is asked about every document."""

    name: str
    parse: Parse
    media_types: frozenset[str] = frozenset()
    sniff: Callable[[bytes], bool] | None = None

    def wants(self, doc: Document) -> bool:
        if not self.media_types and self.sniff is None:
            return True
        if doc.media_type in self.media_types:
            return True
        return self.sniff is not None and self.sniff(doc.data)


class Registry:
    """Parsers in the order they are asked; the first result wins."""

    def __init__(self) -> None:
        self._entries: list[ParserEntry] = []

    def register(self, entry: ParserEntry) -> None:
        self._entries.append(entry)

    @property
    def entries(self) -> tuple[ParserEntry, ...]:
        return tuple(self._entries)

    def parse(self, doc: Document) -> Any:
        """The first accepting parser's result; None if every one declined."""
        for entry in self._entries:
            if entry.wants(doc):
                result = entry.parse(doc)
                if result is not None:
                    return result
        return None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# ------------------------------------------------------------------ entries

JSON_FEED_TYPES = frozenset({"application/feed+json", "application/json"})
def _sniff_json(data: bytes) -> bool:
    return json_text(data[:4096]).startswith("{")


def _parse_json_feed(doc: Document) -> Any:
    return parse_json_feed(doc.data)


def _run_fast(data: bytes, language: str | None) -> Any:
    """monitor.parse.fast's result, or None to run feedparser instead."""
    try:
        return fastparse.extract(data, language)
    except Exception:  # a bug or an odd document in the fast path: feedparser decides
        return None


def _parse_fast(doc: Document) -> Any:
    # Any doubt (charset guessed or overridden, entities dropped) is feedparser's.
    return _run_fast(doc.data, doc.language) if doc.fast and doc.certain else None


def _parse_feedparser(doc: Document) -> Any:
    return _run_feedparser(doc.data, doc.language)


REGISTRY = Registry()
REGISTRY.register(ParserEntry("jsonfeed", _parse_json_feed, JSON_FEED_TYPES, _sniff_json))
REGISTRY.register(ParserEntry("lxml", _parse_fast))
REGISTRY.register(ParserEntry("feedparser", _parse_feedparser))
