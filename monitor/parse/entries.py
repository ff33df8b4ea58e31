"""A feed's raw records (feedparser's shape, from either parser) -> Entries:
stable keys, UTC dates with a fetch-time fallback, plain-text fields,
absolute http(s) links, languages.

Owns the rules that make an Entry. Must not parse documents, fetch, or store.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from monitor.clean import clean_url
from monitor.normalize import norm_document
from monitor.parse.cut import AUTHOR_MAX, KEY_MAX, SUMMARY_MAX, TITLE_MAX, URL_MAX
from monitor.parse.html_text import _plain, _str
from monitor.types import Entry

_FUTURE_SLACK = timedelta(days=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# For keys (GUIDs, links) only: text we show goes through monitor.clean, but a
# key must stay what it was when earlier polls stored it, or items come twice.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff\ufeff\ufffe\uffff]")
# Browsers drop tabs and newlines anywhere in a URL (so "java\tscript:" is
# javascript:) and trim spaces and controls around it.
_URL_DROP = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _get(record: Any, key: str) -> Any:
    """A plain lookup: FeedParserDict.get maps keys (updated_parsed falls back
    to published_parsed, with a DeprecationWarning), which we do not want."""
    return dict.get(record, key) if isinstance(record, dict) else None


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def _entries(
    raw_entries: Sequence[Any], base: str, now: datetime, feed_language: str | None, max_items: int
) -> tuple[Entry, ...]:
    shared = _shared_links(raw_entries)
    out: list[Entry] = []
    seen: set[str] = set()
    for raw in raw_entries:
        if len(out) >= max_items:
            break
        entry = _entry(raw, base, now, feed_language, shared)
        if entry.key in seen:
            continue  # duplicate key: the first one in document order wins
        seen.add(entry.key)
        out.append(entry)
    return tuple(out)


def _shared_links(raw_entries: Sequence[Any]) -> frozenset[str]:
    """Links that more than one GUID-less entry of this document uses.

    Some feeds point every item at one page (a live blog, a programme page):
    keyed by link alone they would collapse into one story, so those entries
    are keyed by link and content instead (true copies still collapse)."""
    counts: dict[str, int] = {}
    for raw in raw_entries:
        if not _id(raw) and (link := _link(raw)):
            counts[link] = counts.get(link, 0) + 1
    return frozenset(link for link, count in counts.items() if count > 1)


def _entry(
    raw: Any, base: str, now: datetime, feed_language: str | None, shared: frozenset[str]
) -> Entry:
    title = _plain(_get(raw, "title"), _detail_type(raw, "title"), TITLE_MAX)
    summary = _summary(raw)
    url = _http_url(_get(raw, "link"), base)
    published = _first_date(raw, ("published_parsed", "updated_parsed", "created_parsed"), now)
    author = _plain(_get(raw, "author"), "text/plain", AUTHOR_MAX) or None
    return Entry(
        key=_key(raw, title, summary, shared),
        title=title,
        summary=summary,
        url=url,
        published_at=published or now,
        author=author,
        updated_at=_first_date(raw, ("updated_parsed",), now),
        language=_entry_language(raw) or feed_language,
        content_hash=_sha256(f"{title}\n{summary}\n{url or ''}"),
        norm=norm_document(title, summary),
    )


def _summary(raw: Any) -> str:
    contents = _get(raw, "content") or ()
    # feedparser copies a lone <content> into "summary" without a detail
    # record: the content's type then tells whether it is HTML.
    content_type = _detail_type(raw, "summary") or next(
        (_get(c, "type") for c in contents), "text/plain"
    )
    summary = _plain(_get(raw, "summary"), content_type, SUMMARY_MAX)
    if summary:
        return summary
    for content in contents:
        text = _plain(_get(content, "value"), _get(content, "type"), SUMMARY_MAX)
        if text:
            return text
    return ""


def _id(raw: Any) -> str:
    return _clean(_str(_get(raw, "id"))).strip()


def _link(raw: Any) -> str:
    return _clean(_str(_get(raw, "link"))).strip()


def _key(raw: Any, title: str, summary: str, shared: frozenset[str]) -> str:
    """GUID, else link, else a hash of the text; over-long keys are hashed."""
    key = _id(raw) or _link(raw)
    if key in shared:
        return "sha256:" + _sha256(f"{key}\n{title}\n{summary}")
    if not key:
        return "sha256:" + _sha256(f"{title}\n{summary}")
    return "sha256:" + _sha256(key) if len(key) > KEY_MAX else key


def _first_date(raw: Any, fields: Sequence[str], now: datetime) -> datetime | None:
    for field in fields:
        when = _utc(_get(raw, field))
        if when is not None and _EPOCH <= when <= now + _FUTURE_SLACK:
            return when
    return None


def _as_utc(when: datetime) -> datetime:
    """fetched_at as aware UTC; a naive value is taken to be UTC already."""
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).astimezone(UTC)


def _utc(value: Any) -> datetime | None:
    """feedparser's *_parsed struct_time (already UTC) -> aware datetime."""
    try:
        seconds = calendar.timegm((*tuple(value)[:6], 0, 0, 0))
        return _EPOCH + timedelta(seconds=seconds)
    except Exception:  # None, short tuples, out-of-range years: no date
        return None


def _detail_type(record: Any, field: str) -> str | None:
    detail = _get(record, f"{field}_detail")
    return _get(detail, "type") if isinstance(detail, Mapping) else None


def _entry_language(raw: Any) -> str | None:
    for field in ("title_detail", "summary_detail"):
        detail = _get(raw, field)
        if isinstance(detail, Mapping) and (lang := _language(_get(detail, "language"))):
            return lang
    for content in _get(raw, "content") or ():
        if lang := _language(_get(content, "language")):
            return lang
    return _language(_get(raw, "language"))


_LANGUAGE = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")


def _language(value: Any) -> str | None:
    text = _str(value).strip().replace("_", "-").lower()
    return text if _LANGUAGE.fullmatch(text) else None


def _ttl(value: Any) -> float | None:
    text = _str(value).strip()
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) == 0:
        return None
    return float(int(text) * 60)


def _http_url(value: Any, base: str) -> str | None:
    """An absolute http(s) URL resolved against base, or None."""
    link = _URL_DROP.sub("", _str(value)).strip(" ")
    if not link:
        return None
    try:
        absolute = urljoin(base, link)
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    # "HTTP://x" -> "http://x"; no user or password (see monitor.clean.clean_url).
    shown = clean_url(parts.scheme + absolute[len(parts.scheme) :])
    return shown if shown is not None and len(shown) <= URL_MAX else None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
