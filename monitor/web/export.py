"""A topic's stories of a period as CSV, JSON and an Atom 1.0 feed. Text
comes in cleaned by the digest's model (one safe line, http(s) links only);
CSV cells that a spreadsheet would run as a formula are quoted out."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from monitor.digest.model import Story, TopicSection
from monitor.query import segments

ATOM = "http://www.w3.org/2005/Atom"
COLUMNS = ("title", "url", "published_at", "sources", "feeds", "languages", "terms",
           "snippet", "verdict", "starred", "story_key")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def plain(snippet: str) -> str:
    return "".join(text for text, _ in segments(snippet))


def rows(stories: Sequence[Story], languages: dict[str, tuple[str, ...]],
         verdicts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in stories:
        v = verdicts.get(s.key, {})
        out.append({"title": s.title, "url": s.url, "published_at": s.published_at.isoformat(),
                    "sources": s.sources, "feeds": list(s.feeds),
                    "languages": list(languages.get(s.key, ())), "terms": list(s.terms),
                    "snippet": plain(s.snippet), "verdict": v.get("verdict"),
                    "starred": bool(v.get("starred")), "story_key": s.key})
    return out


def _cell(value: Any) -> str:
    text = "; ".join(value) if isinstance(value, list) else "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(data: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for r in data:
        writer.writerow([_cell(r[c]) for c in COLUMNS])
    return buf.getvalue()


def to_json(topic_id: str, since: datetime, until: datetime,
            data: list[dict[str, Any]]) -> str:
    return json.dumps({"topic": topic_id, "since": since.isoformat(), "until": until.isoformat(),
                       "stories": data}, ensure_ascii=False, indent=2)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def story_id(key: str) -> str:
    return "urn:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def to_atom(section: TopicSection, *, self_url: str, page_url: str,
            updated: datetime) -> bytes:
    """An Atom 1.0 feed of the section's stories, newest first as ranked."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", "urn:monitor:topic:" + section.id)
    _sub(feed, "title", f"monitor: {section.name}")
    _sub(feed, "updated", updated.isoformat())
    _sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=page_url, type="text/html")
    author = _sub(feed, "author")
    _sub(author, "name", "monitor")
    for s in section.stories:
        entry = _sub(feed, "entry")
        _sub(entry, "id", story_id(s.key))
        _sub(entry, "title", s.title)
        _sub(entry, "updated", s.published_at.isoformat())
        if s.url:
            _sub(entry, "link", rel="alternate", href=s.url)
        summary = plain(s.snippet)
        if s.links:
            summary += (" — " if summary else "") + ", ".join(link.name for link in s.links)
        _sub(entry, "summary", summary)
        for term in s.terms:
            _sub(entry, "category", term=term)
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body
