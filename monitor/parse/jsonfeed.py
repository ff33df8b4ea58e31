"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) -> the raw records
the other parsers give (feedparser's shape), so monitor.parse.entries makes
the same Entry from a JSON item as from an RSS item.

What is a JSON Feed: a JSON object whose ``version`` starts with
``https://jsonfeed.org/version/1`` (``http://`` too). The version is required:
an object with ``title`` and ``items`` but no version is any JSON API, and
reading it as a feed would hide a wrong URL behind an "ok" feed.

Fields read, per item: ``id`` (the key, as RSS's guid), ``url`` then
``external_url`` (the link), ``title``, the summary from ``summary``, else
``content_text``, else ``content_html`` (HTML, reduced to text by
monitor.parse.html_text like an RSS description), ``date_published`` /
``date_modified`` (RFC 3339, read by feedparser's date parser like every other
date), 1.1 ``authors`` or 1.0 ``author`` (names joined; the feed's authors
when the item has none, as the spec says), 1.1 ``language``. Per feed:
``title``, ``home_page_url`` (the link), 1.1 ``language``. Tags, attachments
and the rest are ignored (an Entry has no place for them).

Owns the JSON reading and the "is this a JSON Feed" check. Must not turn
records into Entries (monitor.parse.entries) nor fetch. Anything wrong leaves
as ParseError: ``parse`` for a body that is not valid JSON, ``not-a-feed``
for valid JSON that is not a JSON Feed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from feedparser.datetimes import _parse_date

from monitor.errors import ParseError

__all__ = ["json_text", "parse_json_feed"]

# The declaration feedparser's decoder (monitor.parse.document._to_utf8) puts
# before any body it decodes: a JSON body never has one of its own.
_ADDED_PROLOG = b"<?xml version='1.0' encoding='utf-8'?>\n"

_VERSION = re.compile(r"https?://jsonfeed\.org/version/1(?:\.\d+)?/?")
# A date longer than this is no RFC 3339 date: not worth the date parser's time.
_DATE_MAX = 100
_AUTHORS_MAX = 20


def parse_json_feed(data: bytes) -> dict[str, Any] | None:
    """A feedparser-shaped result; None (declined) for a body that does not
    start like JSON, so an XML feed served as application/json is still read."""
    text = json_text(data)
    if not text.startswith(("{", "[")):
        return None
    root = _load(text)
    version = root.get("version") if isinstance(root, dict) else None
    if not isinstance(root, dict) or not isinstance(version, str) or not _VERSION.fullmatch(
            version.strip()):
        raise ParseError('JSON document, not a JSON Feed (no "version": '
                         '"https://jsonfeed.org/version/1...")', kind="not-a-feed")
    items = root.get("items", [])
    if not isinstance(items, list):
        raise ParseError('JSON Feed whose "items" is not a list: no item could be read',
                         kind="parse")
    feed_authors = _authors(root)
    return {
        "feed": _feed(root),
        "entries": [_item(item, feed_authors) for item in items if isinstance(item, dict)],
        "version": "json11" if version.strip().startswith(("https://jsonfeed.org/version/1.1",
                                                           "http://jsonfeed.org/version/1.1"))
        else "json1",
        "bozo": False,
    }


def json_text(data: bytes) -> str:
    """The body as the JSON text it was before decoding."""
    return data.removeprefix(_ADDED_PROLOG).decode("utf-8", "replace").lstrip("\ufeff \t\r\n")


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                         "no item could be read", kind="parse") from exc
    except RecursionError as exc:
        raise ParseError("not readable JSON (nested too deeply): no item could be read",
                         kind="parse") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ParseError(f"not readable JSON ({str(exc)[:100]}): no item could be read",
                         kind="parse") from exc


def _feed(root: dict[str, Any]) -> dict[str, Any]:
    feed: dict[str, Any] = {"title_detail": {"type": "text/plain"}}
    for field, value in (("title", root.get("title")), ("link", root.get("home_page_url")),
                         ("language", root.get("language"))):
        if isinstance(value, str):
            feed[field] = value
    return feed


def _item(item: dict[str, Any], feed_authors: str | None) -> dict[str, Any]:
    raw: dict[str, Any] = {"title_detail": {"type": "text/plain"}}
    if isinstance(title := item.get("title"), str):
        raw["title"] = title
    if (key := _id(item.get("id"))) is not None:
        raw["id"] = key
    if (link := _first_str(item, ("url", "external_url"))) is not None:
        raw["link"] = link
    if (summary := _first_str(item, ("summary", "content_text"))) is not None:
        raw["summary"] = summary
        raw["summary_detail"] = {"type": "text/plain"}
    if isinstance(html := item.get("content_html"), str) and html.strip():
        # Read only when summary and content_text are empty (entries._summary).
        raw["content"] = [{"type": "text/html", "value": html}]
    for field, target in (("date_published", "published_parsed"),
                          ("date_modified", "updated_parsed")):
        if (when := _date(item.get(field))) is not None:
            raw[target] = when
    if author := _authors(item) or feed_authors:
        raw["author"] = author
    if isinstance(language := item.get("language"), str):
        raw["language"] = language
    return raw


def _id(value: Any) -> str | None:
    # The spec says string; 1.0 feeds in the wild also use numbers.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        return str(value)
    return None


def _first_str(record: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    for field in fields:
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _date(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > _DATE_MAX:
        return None
    try:
        return _parse_date(value)
    except Exception:  # feedparser's date handlers: no date rather than no feed
        return None


def _authors(record: dict[str, Any]) -> str | None:
    """1.1's ``authors`` list, else 1.0's ``author`` object: the names, joined."""
    people = record.get("authors")
    if not isinstance(people, list):
        people = [record.get("author")]
    names = [p["name"].strip() for p in people[:_AUTHORS_MAX]
             if isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"].strip()]
    return ", ".join(names) or None
