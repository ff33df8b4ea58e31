"""OPML subscription lists: reading one into plain (url, title, tags) records
and writing the configured feeds as OPML 2.0.

Reading goes through listparser, which is lenient on purpose: most OPML
lists in the wild are not well-formed XML (raw ``&``, unescaped quotes in
attributes), and a strict parser would refuse them outright. Folders
(nested outlines) and ``category`` attributes both become tags, slugged so
that they compare equal however the list spelled them. Writing goes through
lxml, so every attribute is escaped by the XML library; characters XML 1.0
cannot carry at all are dropped first. This module decides nothing about
feeds.yaml: which entries are new, their ids and the write belong to ``app``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import listparser
from lxml import etree

from monitor.clean import clean_short
from monitor.errors import ConfigError
from monitor.types import FeedConfig

_TITLE_MAX = 200
_TAG_MAX = 64
# Not allowed anywhere in an XML 1.0 document, escaped or not.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline: its URL as written, a one-line title, slugged tags."""

    url: str
    title: str | None
    tags: tuple[str, ...]


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """The feed outlines of an OPML document, in document order; a ConfigError
    naming ``source`` when it has none (not OPML, or OPML without feeds)."""
    result = listparser.parse(data)
    feeds = [_feed(f) for f in result.feeds if (f.get("url") or "").strip()]
    if not feeds:
        why = f" ({result.bozo_exception})" if result.get("bozo_exception") else ""
        raise ConfigError(f"no feed outlines (outline elements with an xmlUrl) in the file{why}",
                          file=source)
    return feeds


def _feed(entry: dict[str, object]) -> OpmlFeed:
    names: list[str] = []
    for path in entry.get("categories") or []:  # type: ignore[attr-defined]
        names.extend(path)
    names.extend(entry.get("tags") or [])  # type: ignore[arg-type]
    title = clean_short(str(entry.get("title") or ""), _TITLE_MAX) or None
    return OpmlFeed(url=str(entry["url"]).strip(), title=title, tags=slug_tags(names))


def slug_tag(name: str) -> str:
    """A tag as feeds.yaml's own tags are written: lower case, words joined
    by "-", letters of any script kept ("Central Asia" → "central-asia")."""
    text = unicodedata.normalize("NFKC", clean_short(name, 10 * _TAG_MAX)).casefold()
    slug = re.sub(r"[\W_]+", "-", text).strip("-")
    return slug[:_TAG_MAX].strip("-")


def slug_tags(names: Iterable[str]) -> tuple[str, ...]:
    """The slugs of ``names``, empty ones dropped, each once, first spelling first."""
    out: dict[str, None] = {}
    for name in names:
        slug = slug_tag(name)
        if slug:
            out.setdefault(slug, None)
    return tuple(out)


def write_opml(feeds: Sequence[FeedConfig], title: str,
               now: datetime | None = None) -> bytes:
    """OPML 2.0 listing ``feeds``: one flat outline per feed, its tags in
    ``category`` (comma-separated, the form ``read_opml`` reads back as tags)."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = _xml_text(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    body = etree.SubElement(root, "body")
    for feed in feeds:
        name = _xml_text(feed.name or feed.id)
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": _xml_text(feed.url)}
        tags = [t for t in (_xml_text(t).replace(",", " ").strip() for t in feed.tags) if t]
        if tags:
            attrs["category"] = ",".join(tags)
        etree.SubElement(body, "outline", attrs)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)
