"""parse_feed: response bytes + headers -> ParsedFeed of plain-text Entries.

Owns the steps between a fetched body and the records the store keeps:
charset detection (HTTP header, BOM, XML prolog, via feedparser), the entity
guard and the entries cut, the choice of a parser (monitor.parse.registry),
"is this a feed at all", and the feed-level fields. It never does I/O and
never lets feedparser fetch anything. Any failure leaves as ParseError (kind
"not-a-feed" or "parse"), nothing else.
"""

from __future__ import annotations

import xml.sax
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from feedparser.encodings import convert_to_utf8

from monitor.clean import clean_short
from monitor.errors import ParseError
from monitor.parse.cut import _ENTRY_FACTOR, TITLE_MAX, _cut_entries
from monitor.parse.entities import _defuse_charrefs, _guard_entities
from monitor.parse.entries import _as_utc, _detail_type, _entries, _get, _http_url, _language, _ttl
from monitor.parse.html_text import _plain
from monitor.parse.registry import REGISTRY, Document, _run_fast, media_type
from monitor.types import ParsedFeed

_REASON_MAX = 300


def parse_feed(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    fetched_at: datetime,
    max_items: int = 1000,
    fast: bool = True,
    language: str | None = None,
) -> ParsedFeed:
    """Parse one fetched body into a ParsedFeed.

    ``url`` is where the body came from (the final URL after redirects): the
    base for relative links and the context of errors. ``headers`` are the
    response headers; Content-Type's charset (with the BOM and the XML prolog)
    decides the encoding. Dates that are missing, unparseable, before 1970 or
    more than two days after ``fetched_at`` become ``fetched_at``. At most
    ``max_items`` entries are kept, the first ones in document order.

    Raises ParseError(kind="not-a-feed") for an empty body, an HTML page or any
    document without a feed and without entries; ParseError(kind="parse") for
    anything that goes wrong inside, and for a document the XML parser found
    broken that yields no entries (nothing was read: it must not pass for an
    empty feed). A malformed feed that still yields entries is returned with
    ``bozo_reason`` set.

    ``language`` is the feed's language from feeds.yaml: the items' language
    where the document declares none; it replaces the Content-Language header.

    With ``fast`` (the default) a well-formed RSS/RDF/Atom document whose
    encoding is certain goes through monitor.parse.fast (lxml), which gives the
    same result as feedparser or declines; ``fast=False`` always runs feedparser.
    """
    try:
        return _parse(body, url=url, headers=headers, fetched_at=fetched_at,
                      max_items=max_items, fast=fast, language=language)
    except ParseError as exc:
        exc.context.setdefault("url", url)  # a parser (JSON Feed) does not know it
        raise
    except Exception as exc:  # the contract: nothing but ParseError leaves
        raise ParseError(
            f"unexpected {type(exc).__name__} while parsing: {_short(str(exc))}",
            kind="parse",
            url=url,
        ) from exc


def _parse(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    fetched_at: datetime,
    max_items: int,
    fast: bool,
    language: str | None = None,
) -> ParsedFeed:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ParseError(f"body is {type(body).__name__}, not bytes", kind="parse", url=url)
    body = bytes(body)
    if not body.strip():
        raise ParseError("empty body", kind="not-a-feed", url=url)
    now = _as_utc(fetched_at)
    hdrs = _header_dict(headers)

    data, notes, certain, removed = _prepared(body, hdrs, url, max_items)
    if removed:
        notes.append("entity declarations removed")
    # feedparser lets a Content-Language header beat the document's own
    # <language>; the language feeds.yaml gives must not, so with one the
    # header is left out and it only fills in for a document that has none.
    default_language = _language(language)
    language = None if default_language else hdrs.get("content-language")
    doc = Document(data, media_type(hdrs.get("content-type")), language,
                   certain and not notes, fast)
    result = REGISTRY.parse(doc)
    if str(_get(result, "version") or "").startswith("json"):
        # feedparser's decoder says a JSON type is no XML type: true, and no news.
        notes = [n for n in notes if not n.startswith("NonXMLContentType")]
    # The parser's complaint first: it is the one that says "malformed".
    reasons = [r for r in (_describe(_get(result, "bozo_exception")) if _get(result, "bozo")
                           else "", *notes) if r]
    bozo_reason = _short("; ".join(reasons), _REASON_MAX) or None
    notable = [r for r in reasons if not r.startswith(_MINOR_NOTES)]
    bozo_notable = _short("; ".join(notable), _REASON_MAX) or None

    raw_entries = _get(result, "entries") or []
    version = _get(result, "version") or ""
    if not raw_entries and not version:
        raise ParseError(_not_a_feed_reason(body, hdrs, bozo_reason), kind="not-a-feed", url=url)
    if not raw_entries and _broken(result):
        # feedparser names a version from the root element alone (here "rss"),
        # so a document it could not read still looks like a feed with nothing
        # in it: reported, it would show "ok" while no item ever arrives.
        if _looks_like_html(body, hdrs):
            raise ParseError(_not_a_feed_reason(body, hdrs, bozo_reason), kind="not-a-feed",
                             url=url)
        raise ParseError(_broken_reason(_get(result, "bozo_exception")), kind="parse", url=url)

    feed = _get(result, "feed") or {}
    feed_language = _language(_get(feed, "language")) or default_language
    entries = _entries(raw_entries, url, now, feed_language, max(0, max_items))
    return ParsedFeed(
        entries=entries,
        title=_plain(_get(feed, "title"), _detail_type(feed, "title"), TITLE_MAX) or None,
        link=_http_url(_get(feed, "link"), url),
        bozo_reason=bozo_reason,
        bozo_notable=bozo_notable,
        ttl=_ttl(_get(feed, "ttl")),
    )


# ---------------------------------------------------------------- decoding


def _header_dict(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> dict[str, str]:
    pairs: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        key, val = str(name).strip().lower(), str(value).strip()
        out[key] = f"{out[key]}, {val}" if key in out else val
    return out


def _to_utf8(body: bytes, hdrs: Mapping[str, str]) -> tuple[bytes, list[str], bool]:
    """Decode as feedparser would (RFC 3023: header charset, BOM, prolog,
    fallbacks) and return UTF-8 bytes, so the entity guard below sees exactly
    the characters the XML parser will see, whatever the encoding (UTF-16,
    UTF-7 and EBCDIC could otherwise hide a ``<!ENTITY`` from a byte scan).
    Also returns whether feedparser found an encoding at all."""
    content_type = hdrs.get("content-type")
    # No Content-Type at all: treat like a local file (prolog, else UTF-8)
    # rather than feedparser's HTTP default of ISO-8859-1.
    probe_headers = {"content-type": content_type} if content_type else {}
    probe: dict[str, Any] = {}
    data = convert_to_utf8(probe_headers, body, probe)
    notes = []
    if probe.get("bozo"):
        notes.append(_describe(probe.get("bozo_exception")))
    if not probe.get("encoding"):
        return body.decode("utf-8", "replace").encode("utf-8"), notes, False
    return data, notes, True


def _prepared(body: bytes, hdrs: Mapping[str, str], url: str,
              max_items: int) -> tuple[bytes, list[str], bool, bool]:
    """What every parser is given, and what was found on the way: the body
    without the faults that change no reading (_lead_trimmed,
    _without_controls), as UTF-8, past the entity guard, its character
    references defused and its entries cut; with _to_utf8's notes and
    certainty and whether the guard removed declarations."""
    data, notes, certain = _to_utf8(_lead_trimmed(body), hdrs)
    data, removed = _guard_entities(_without_controls(data), url)
    data = _cut_entries(_defuse_charrefs(data), _ENTRY_FACTOR * max(1, max_items))
    return data, notes, certain, removed


_LEADING_SPACE = b" \t\r\n"
# The C0 controls XML 1.0 forbids (tab, LF and CR are allowed); in UTF-8 these
# bytes are those characters and nothing else.
_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13))


def _lead_trimmed(body: bytes) -> bytes:
    """The body without the blank lines a server printed before its XML
    declaration (a common PHP fault): with them the declaration is not at the
    start and no XML parser reads the document as XML, feedparser's loose
    parser being the slowest reader of it (pypy.org's 624 KB feed: 0.56 s
    against 0.05 s), for the same entries."""
    if body[:1] in (b" ", b"\t", b"\r", b"\n"):
        trimmed = body.lstrip(_LEADING_SPACE)
        if trimmed.startswith(b"<?xml"):
            return trimmed
    return body


def _without_controls(data: bytes) -> bytes:
    """UTF-8 ``data`` without the control characters XML forbids: one of them
    made a whole document not well-formed (and its reading feedparser's loose
    parser's), while every reader drops it from the text anyway."""
    # translate() runs at memory speed, a regex search at a tenth of it.
    kept = data.translate(None, _CONTROLS)
    return data if len(kept) == len(data) else kept


def takes_fast_path(
    body: bytes, *, url: str, headers: Mapping[str, str] | Sequence[tuple[str, str]]
) -> bool:
    """Whether parse_feed(body, ...) would use the fast path (for tests and benchmarks)."""
    try:
        body = bytes(body)
        if not body.strip():
            return False
        hdrs = _header_dict(headers)
        data, notes, certain, removed = _prepared(body, hdrs, url, 1000)
    except Exception:
        return False
    if removed or notes or not certain:
        return False
    return _run_fast(data, hdrs.get("content-language")) is not None


# ----------------------------------------------------------- feed checks


# feedparser's notes that change nothing for the reader: the feed was served
# as text/xml, text/html or text/plain, or declared one charset and was read in
# another that worked. A real parse error is anything else.
_MINOR_NOTES = ("NonXMLContentType", "CharacterEncodingOverride")


def _broken(result: Any) -> bool:
    """feedparser flagged the document for a parse error, not for a note."""
    if not _get(result, "bozo"):
        return False
    exc = _get(result, "bozo_exception")
    return exc is not None and type(exc).__name__ not in _MINOR_NOTES


def _broken_reason(exc: object) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        detail = exc.getMessage().removeprefix("not well-formed ").strip("()")
        return _short(f"not well-formed XML ({detail} at line {exc.getLineNumber()}): "
                      "no item could be read", 200)
    return _short(f"{_describe(exc)}: no item could be read", 200)


def _looks_like_html(body: bytes, hdrs: Mapping[str, str]) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    content_type = hdrs.get("content-type", "").lower()
    return b"<html" in head or head.startswith(b"<!doctype html") or "html" in content_type


def _not_a_feed_reason(body: bytes, hdrs: Mapping[str, str], bozo_reason: str | None) -> str:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if _looks_like_html(body, hdrs):
        return "HTML page, not a feed"
    if head.startswith((b"{", b"[")):
        return "JSON document, not a feed"
    reason = "no RSS, Atom or RDF feed found"
    return f"{reason} ({bozo_reason})" if bozo_reason else reason


def _describe(exc: object) -> str:
    if exc is None:
        return ""
    name = type(exc).__name__
    if isinstance(exc, xml.sax.SAXParseException):
        return _short(f"{name}: {exc.getMessage()} at line {exc.getLineNumber()}", 200)
    return _short(f"{name}: {exc}", 200)


def _short(text: str, limit: int = 200) -> str:
    return clean_short(text, limit)
