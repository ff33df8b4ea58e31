"""HTTP details of a feed request and its response: the request headers we
send (Accept, the conditional validators byte for byte), Retry-After,
Cache-Control max-age and Expires, HTTP dates, redirects' Location, status
reasons, "is this an HTML page", and URL parsing.

Owns reading and writing headers. Must not send anything (monitor.fetch.client).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx

from monitor.fetch.failure import _Failed, _short
from monitor.fetch.inflate import BROTLI
from monitor.types import FeedState

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5"
)


def accept_encoding(brotli: bool) -> str:
    """The codings we can inflate under the body cap: zlib's (bounded by
    max_length), and ``br`` only when the optional brotli package can bound
    its output too (monitor.fetch.inflate.BROTLI)."""
    return "gzip, deflate, br" if brotli else "gzip, deflate"


ACCEPT_ENCODING = accept_encoding(BROTLI)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_STATUSES = frozenset({301, 308})
RATE_LIMIT_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = timedelta(hours=24)

_UTF8_BOM = b"\xef\xbb\xbf"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_UNSAFE_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as seconds or an HTTP-date -> a time within [now, now + 24 h];
    None when absent or not understood ('soon', '-5')."""
    if value is None:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        seconds = min(int(text[:9]), int(MAX_RETRY_AFTER.total_seconds()))
        return now + timedelta(seconds=seconds)
    when = _parse_http_date(text)
    if when is None:
        return None
    return min(max(when, now), now + MAX_RETRY_AFTER)


def parse_max_age(headers: httpx.Headers, now: datetime) -> float | None:
    """How long the server says the response stays fresh, in seconds:
    Cache-Control max-age, else Expires minus Date; None if it does not say."""
    directives = _cache_control(headers.get("cache-control", ""))
    if "no-cache" in directives or "no-store" in directives:
        return None
    max_age = directives.get("max-age")
    if max_age is not None and _DIGITS.fullmatch(max_age):
        return float(int(max_age[:9]))
    expires = _parse_http_date(headers.get("expires", ""))
    if expires is None:
        return None
    date = _parse_http_date(headers.get("date", "")) or now
    return max(0.0, (expires - date).total_seconds())


def _cache_control(value: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.partition("=")
        if name.strip():
            directives[name.strip().lower()] = arg.strip().strip('"')
    return directives


def _parse_http_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _conditional(feed: FeedState) -> dict[bytes, bytes]:
    """If-None-Match / If-Modified-Since, byte-identical to what the server sent
    (validators are kept as latin-1 text, which maps bytes one to one)."""
    headers: dict[bytes, bytes] = {}
    for name, value in ((b"If-None-Match", feed.etag), (b"If-Modified-Since", feed.last_modified)):
        if value and not _UNSAFE_HEADER_VALUE.search(value):
            try:
                headers[name] = value.encode("latin-1")
            except UnicodeEncodeError:
                continue  # not something a server sent us; skip rather than fail
    return headers


def _raw_header(resp: httpx.Response, name: bytes) -> str | None:
    for key, value in resp.headers.raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _header_pairs(resp: httpx.Response) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)


def _redirect_target(resp: httpx.Response) -> httpx.URL | None:
    location = resp.headers.get("location")
    if resp.status_code not in REDIRECT_STATUSES or not location:
        return None
    try:
        return resp.url.join(location.strip())
    except (httpx.InvalidURL, ValueError):
        raise _Failed("redirect", _short(f"invalid redirect Location {location!r}")) from None


def _status_reason(resp: httpx.Response) -> str:
    try:
        phrase = HTTPStatus(resp.status_code).phrase
    except ValueError:
        phrase = resp.reason_phrase
    return _short(f"HTTP {resp.status_code} {phrase}".strip())


def _is_html_page(content_type: str, body: bytes) -> bool:
    if "text/html" not in content_type.lower():
        return False
    head = body[:1024].removeprefix(_UTF8_BOM).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


@functools.lru_cache(maxsize=4096)
def _url(url: str) -> httpx.URL | None:
    """httpx's parse of a feed URL (immutable, so shared): the same URLs come
    back every cycle, and each fetch needs its host and its URL."""
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return None


def _parse_url(url: str) -> httpx.URL:
    parsed = _url(url)
    if parsed is None or not parsed.scheme or (parsed.scheme in ("http", "https") and not parsed.host):
        raise _Failed("refused", _short(f"invalid URL {url!r}"))
    return parsed


def _host_of(url: str) -> str:
    parsed = _url(url)
    return parsed.host.lower() if parsed is not None else ""
