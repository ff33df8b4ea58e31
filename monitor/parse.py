"""The feedparser adapter: response bytes + headers -> ParsedFeed of plain-text Entries.

Owns everything between a fetched body and the records the store keeps: charset
detection (HTTP header, BOM, XML prolog, via feedparser), the XML-entity guard,
"is this a feed at all", stable entry keys, UTC dates with a fetch-time fallback,
plain-text titles and summaries, and the per-feed item cap. It never does I/O
and never lets feedparser fetch anything: feedparser only ever sees a BytesIO.
Any failure leaves as ParseError (kind "not-a-feed" or "parse"), nothing else.
Well-formed RSS/RDF/Atom documents with a certain encoding take a faster road
to the same records (monitor.fastparse, lxml); feedparser parses the rest.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import xml.sax
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from feedparser.encodings import convert_to_utf8
from feedparser.mixin import _FeedParserMixin

from monitor import fastparse
from monitor.clean import clean_short, clean_text, clean_url
from monitor.errors import ParseError
from monitor.types import Entry, ParsedFeed

__all__ = ["parse_feed", "takes_fast_path"]

TITLE_MAX = 1_000
SUMMARY_MAX = 10_000
AUTHOR_MAX = 1_000
KEY_MAX = 512
URL_MAX = 4_096
# Input read per field, as a multiple of the text kept: bounds the work one
# field can cost while leaving far more markup than the kept text needs.
_INPUT_FACTOR = 32
_FUTURE_SLACK = timedelta(days=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REASON_MAX = 300

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_UTF8_DECL = b"<?xml version='1.0' encoding='utf-8'?>\n"


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
    encoding is certain goes through monitor.fastparse (lxml), which gives the
    same result as feedparser or declines; ``fast=False`` always runs feedparser.
    """
    try:
        return _parse(
            body,
            url=url,
            headers=headers,
            fetched_at=fetched_at,
            max_items=max_items,
            fast=fast,
            language=language,
        )
    except ParseError:
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

    data, notes, certain = _to_utf8(body, hdrs)
    data, removed = _guard_entities(data, url)
    data = _defuse_charrefs(data)
    data = _cut_entries(data, _ENTRY_FACTOR * max(1, max_items))
    if removed:
        notes.append("entity declarations removed")
    # feedparser lets a Content-Language header beat the document's own
    # <language>; the language feeds.yaml gives must not, so with one the
    # header is left out and it only fills in for a document that has none.
    default_language = _language(language)
    language = None if default_language else hdrs.get("content-language")
    # Any doubt (charset guessed or overridden, entities dropped) is feedparser's.
    result = _run_fast(data, language) if fast and certain and not notes else None
    if result is None:
        result = _run_feedparser(data, language)
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


def _run_fast(data: bytes, language: str | None) -> Any:
    """monitor.fastparse's result, or None to run feedparser instead."""
    try:
        return fastparse.extract(data, language)
    except Exception:  # a bug or an odd document in the fast path: feedparser decides
        return None


def takes_fast_path(
    body: bytes, *, url: str, headers: Mapping[str, str] | Sequence[tuple[str, str]]
) -> bool:
    """Whether parse_feed(body, ...) would use the fast path (for tests and benchmarks)."""
    try:
        body = bytes(body)
        if not body.strip():
            return False
        hdrs = _header_dict(headers)
        data, notes, certain = _to_utf8(body, hdrs)
        data, removed = _guard_entities(data, url)
        data = _cut_entries(_defuse_charrefs(data), _ENTRY_FACTOR * 1000)
    except Exception:
        return False
    if removed or notes or not certain:
        return False
    return _run_fast(data, hdrs.get("content-language")) is not None


def _run_feedparser(data: bytes, language: str | None) -> Any:
    # The body is UTF-8 by now; saying so makes feedparser's own charset
    # detection a no-op. No Content-Location on purpose: feedparser would resolve
    # permalink GUIDs such as "12345" against it, and keys must not change
    # when the feed moves; links are resolved against the feed URL below.
    response_headers = {"content-type": "application/xml; charset=utf-8"}
    if language:
        response_headers["content-language"] = language
    # sanitize_html/resolve_relative_uris are off: we keep plain text only, and
    # each re-parses every HTML field with sgmllib (feedparser's slowest part).
    return feedparser.parse(
        io.BytesIO(data),
        response_headers=response_headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )


# feedparser's e-mail rule for a plain author text is a regex that is
# quadratic in a run of name characters (a 60,000-letter <author> took 13 s).
# It reads only the first fastparse.AUTHOR_SCAN characters here, as in the fast
# path; the author text itself is kept whole (and cut to AUTHOR_MAX later).
_fp_sync_author_detail = _FeedParserMixin._sync_author_detail


def _capped_sync_author_detail(self: Any, key: str = "author") -> None:
    context = self._get_context()
    detail = context.get(f"{key}s", [{}])[-1]
    author = context.get(key)
    if detail or not isinstance(author, str) or len(author) <= fastparse.AUTHOR_SCAN:
        _fp_sync_author_detail(self, key)
        return
    # This branch of feedparser's reads context[key] and writes only the detail.
    context[key] = author[: fastparse.AUTHOR_SCAN]
    try:
        _fp_sync_author_detail(self, key)
    finally:
        context[key] = author


if str(getattr(feedparser, "__version__", "")).startswith("6.0."):  # the code this wraps
    _FeedParserMixin._sync_author_detail = _capped_sync_author_detail  # type: ignore[method-assign]


# ------------------------------------------------------------ entity guard
#
# feedparser strips the DOCTYPE but re-inserts any "safe" entity whose value is
# plain text of any length, and its regexes only look at declarations at the
# start of a line: one 250-byte entity referenced 200k times expands a 600 KB
# body to 50 MB (catalogue X3), and a DOCTYPE on the same line as the XML
# declaration reaches expat untouched. So before feedparser sees the document
# we rebuild its prolog: only entities whose value is a single character or a
# single character reference survive (no amplification possible), in a
# canonical DOCTYPE on lines of their own; everything else before the root
# element (other declarations, comments, PIs, external DTD ids) is dropped.
# Nothing is ever fetched: there is no external identifier left to fetch.

_MARKUP_START = re.compile(rb"<[?!A-Za-z0-9_]")  # "<" + word char: feedparser's "<\w"
_UNTIL_QUOTE_OR_GT = re.compile(rb"[^\"'>]*")
_UNTIL_DOCTYPE_SYNTAX = re.compile(rb"[^\"'\[>]*")
_SUBSET_JUNK = re.compile(rb"[^\]<%]*")
_WS = re.compile(rb"\s*")
_ENTITY_DECL = re.compile(
    rb"<!ENTITY\s+([A-Za-z_][A-Za-z0-9_]*)\s+(?:\"([^\"]*)\"|'([^']*)')\s*>\Z"
)
_SAFE_VALUE = re.compile(rb"&#[0-9]{1,7};|&#x[0-9A-Fa-f]{1,6};")
_FIRST_ELEMENT = re.compile(rb"<\w")  # feedparser's own notion of where the prolog ends
# Real prologs hold a handful of constructs; thousands are an attack on our time.
_MAX_PROLOG_STEPS = 10_000


def _guard_entities(data: bytes, url: str) -> tuple[bytes, bool]:
    """Return (data with a safe prolog, whether an entity declaration was dropped)."""
    prolog = _PrologScanner(data, url)
    prolog.scan()
    if data.find(b"<!", 0, prolog.root) == -1:
        return data, False
    parts = [_UTF8_DECL]
    if prolog.entities:
        parts.append(b"<!DOCTYPE " + prolog.doctype_name + b" [\n")
        parts.extend(b"<!ENTITY " + k + b' "' + v + b'">\n' for k, v in prolog.entities.items())
        parts.append(b"]>\n")
    out = b"".join(parts) + data[prolog.root :]
    # Belt and braces: the head feedparser cuts off (up to its first "<\w")
    # must hold our declarations and nothing else.
    first = _FIRST_ELEMENT.search(out)
    head = out[: first.start() if first else len(out)]
    if head.count(b"<!ENTITY") != len(prolog.entities):
        raise ParseError("entity declarations refused", kind="parse", url=url)
    return out, prolog.removed


class _PrologScanner:
    """Walks what precedes the root element (the first '<' + word character
    outside comments, PIs and declarations) and collects the safe entities of
    DOCTYPE internal subsets. Linear: regexes skip the runs between markup."""

    def __init__(self, data: bytes, url: str) -> None:
        self.data = data
        self.url = url
        self.root = len(data)  # offset of the root element, len(data) if none
        self.entities: dict[bytes, bytes] = {}  # the safe ones, first wins
        self.doctype_name = b""
        self.removed = False  # an ENTITY declaration was refused
        self._steps = 0

    def scan(self) -> None:
        data, pos = self.data, 0
        while (match := _MARKUP_START.search(data, pos)) is not None:
            self._step()
            start = match.start()
            if data.startswith(b"<?", start):
                pos = self._find_end(b"?>", start + 2, "processing instruction")
            elif data.startswith(b"<!--", start):
                pos = self._find_end(b"-->", start + 4, "comment")
            elif data.startswith(b"<!DOCTYPE", start):
                pos = self._doctype(start)
            elif data.startswith(b"<!", start):
                self.removed |= data.startswith(b"<!ENTITY", start)
                pos = self._decl_end(start + 2)
            else:
                self.root = start
                break
        self.doctype_name = self.doctype_name or b"feed"

    def _step(self) -> None:
        self._steps += 1
        if self._steps > _MAX_PROLOG_STEPS:
            raise self._error("too much markup before the root element")

    def _error(self, reason: str) -> ParseError:
        return ParseError(reason, kind="parse", url=self.url)

    def _find_end(self, terminator: bytes, start: int, what: str) -> int:
        end = self.data.find(terminator, start)
        if end == -1:
            raise self._error(f"unterminated {what} before the root element")
        return end + len(terminator)

    def _skip_quoted(self, pos: int) -> int:
        return self._find_end(self.data[pos : pos + 1], pos + 1, "quoted literal")

    def _decl_end(self, pos: int) -> int:
        """Offset just past the '>' closing a markup declaration."""
        data = self.data
        while True:
            self._step()
            pos = _UNTIL_QUOTE_OR_GT.match(data, pos).end()  # type: ignore[union-attr]
            if pos >= len(data):
                raise self._error("unterminated declaration before the root element")
            if data[pos] == 0x3E:  # '>'
                return pos + 1
            pos = self._skip_quoted(pos)

    def _doctype(self, start: int) -> int:
        """Parse '<!DOCTYPE name ... [subset]>'; return the offset past it."""
        data, pos = self.data, start + 9
        while True:
            self._step()
            pos = _UNTIL_DOCTYPE_SYNTAX.match(data, pos).end()  # type: ignore[union-attr]
            if pos >= len(data):
                raise self._error("unterminated DOCTYPE")
            if data[pos] in b">[":
                break
            pos = self._skip_quoted(pos)
        words = data[start + 9 : pos].split()
        if not self.doctype_name and words and re.fullmatch(rb"\w+", words[0]):
            self.doctype_name = words[0]
        if data[pos] == 0x3E:  # '>': no internal subset
            return pos + 1
        pos = _WS.match(data, self._subset(pos + 1)).end()  # type: ignore[union-attr]
        if not data.startswith(b">", pos):
            raise self._error("malformed DOCTYPE: ']' not followed by '>'")
        return pos + 1

    def _subset(self, pos: int) -> int:
        """Read an internal subset's declarations; return the offset past its ']'."""
        data, n = self.data, len(self.data)
        while pos < n:
            self._step()
            pos = _SUBSET_JUNK.match(data, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                break
            if data[pos] == 0x5D:  # ']'
                return pos + 1
            if data.startswith(b"<!--", pos):
                pos = self._find_end(b"-->", pos + 4, "comment")
            elif data.startswith(b"<?", pos):
                pos = self._find_end(b"?>", pos + 2, "processing instruction")
            elif data.startswith(b"<!", pos):
                end = self._decl_end(pos + 2)
                self.removed |= not _keep_entity(data[pos:end], self.entities)
                pos = end
            else:  # a parameter-entity reference or a stray '<': dropped
                pos += 1
        raise self._error("unterminated DOCTYPE internal subset")


def _keep_entity(decl: bytes, kept: dict[bytes, bytes]) -> bool:
    """Record a safe general entity; False when the declaration was an
    ENTITY we refuse (other declarations are dropped without notice)."""
    if not decl.startswith(b"<!ENTITY"):
        return True
    match = _ENTITY_DECL.match(decl)
    if not match:
        return False
    value = match.group(2) if match.group(2) is not None else match.group(3)
    if not (_SAFE_VALUE.fullmatch(value) or _is_one_plain_char(value)):
        return False
    kept.setdefault(match.group(1), value)
    return True


def _is_one_plain_char(value: bytes) -> bool:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(text) == 1 and text not in "&%<\"'"


# A character reference to a surrogate or past U+10FFFF makes feedparser's
# lenient parser raise (chr() or UTF-8 encoding fails), so one "&#xD800;"
# would cost the whole feed: such references become U+FFFD first.
# The references that can be out of range: past leading zeros, 4 hex digits
# from D000 or more, or 5 decimal digits or more. The others (most of them:
# "&#8217;", "&#x2019;") need no look, so only these go through Python.
_LARGE_CHARREF = re.compile(
    rb"&#(?:[xX](0*+(?:[dD][0-9a-fA-F]{3}|[0-9a-fA-F]{5,}+))|(0*+[0-9]{5,}+));"
)
_REPLACEMENT_REF = b"&#xFFFD;"


def _defuse_charrefs(data: bytes) -> bytes:
    return _LARGE_CHARREF.sub(_checked_charref, data) if b"&#" in data else data


def _checked_charref(match: re.Match[bytes]) -> bytes:
    hex_digits, digits = match.groups()
    significant = (hex_digits if hex_digits is not None else digits).lstrip(b"0")
    if len(significant) > 8:  # out of range, and int() of 100k digits is slow
        return _REPLACEMENT_REF
    code = int(significant or b"0", 16 if hex_digits is not None else 10)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return _REPLACEMENT_REF
    return match.group(0)


# ------------------------------------------------------------- entry cap
#
# Both parsers read a whole document before any entry is dropped: 1.4 million
# empty <item/> (9.8 MB) took 17 s and 320 MB to keep 1,000. So a document with
# more entry start tags than _ENTRY_FACTOR times the cap loses the ones past
# that, from the first extra start tag to the end of the last entry, before
# any parser sees it: what follows the entries (the closing tags) stays, so the
# document stays well-formed. Twice the cap, so that duplicates among the
# first entries still leave max_items distinct ones.
_ENTRY_FACTOR = 2
_ENTRY_TAG = re.compile(
    rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)"
    rb"|<(/?)((?:[A-Za-z_][-\w.]*:)?(?:item|entry))(?=[\s/>])[^<>]*+>",
    re.DOTALL,
)


def _cut_entries(data: bytes, keep: int) -> bytes:
    """data without the entries after the first ``keep`` (see above)."""
    # A fast upper bound of the start tags: most documents stop here.
    if sum(data.count(tag) for tag in (b"<item", b"<entry", b":item", b":entry")) <= keep:
        return data
    cut, starts = -1, 0
    for match in _ENTRY_TAG.finditer(data):
        if match.group(2) is not None and not match.group(1):
            starts += 1
            if starts > keep:
                cut = match.start()
                break
    if cut == -1:
        return data
    end = _last_entry_end(data, cut)
    return data[:cut] + data[end:] if end > cut else data


def _last_entry_end(data: bytes, start: int) -> int:
    """Where the last entry after ``start`` ends: looked for in ever larger
    tails, since only the closing tags of the document usually follow it."""
    size = 1 << 16
    while True:
        begin = max(start, len(data) - size)
        end = -1
        for match in _ENTRY_TAG.finditer(data, begin):
            if match.group(2) is not None and (match.group(1) or match.group(0).endswith(b"/>")):
                end = match.end()
        if end != -1 or begin == start:
            return end
        size *= 4


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
        return "JSON document, not an RSS/Atom feed (JSON Feed is not supported)"
    reason = "no RSS, Atom or RDF feed found"
    return f"{reason} ({bozo_reason})" if bozo_reason else reason


def _describe(exc: object) -> str:
    if exc is None:
        return ""
    name = type(exc).__name__
    if isinstance(exc, xml.sax.SAXParseException):
        return _short(f"{name}: {exc.getMessage()} at line {exc.getLineNumber()}", 200)
    return _short(f"{name}: {exc}", 200)


# --------------------------------------------------------------- entries


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


# ------------------------------------------------------------ plain text

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


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def _plain(value: Any, content_type: str | None, limit: int) -> str:
    """Markup-free, single-line, control-character-free text of at most limit chars."""
    text = _str(value)
    if not text:
        return ""
    text = text[: limit * _INPUT_FACTOR]
    if (content_type or "").lower() in _HTML_TYPES and ("<" in text or "&" in text):
        if "&#" in text:
            text = _HUGE_DECIMAL_REF.sub(_small_charref, text)
        if "\0" in text or _PLAIN_DOC.fullmatch(text) is None:
            return _fit(_html_to_text(text), limit, _same, tags=False)
        return _fit(_skip_blocks(text), limit, _markup_to_text, tags=True)
    return _fit(text, limit, _same, tags=False)


def _same(text: str) -> str:
    return text


# Where _fit first cuts, in characters of input per character kept: real
# article bodies give about one character of text for three of HTML.
_FIRST_PREFIX = 4


def _fit(text: str, limit: int, convert: Callable[[str], str], *, tags: bool) -> str:
    """_one_line(convert(text)) cut to limit characters ("…" marks the cut).

    The words of a prefix's text are the first words of the whole text (the
    last one perhaps cut short), and convert reads the text between two tags
    on its own, so once a prefix ending before a tag (``tags``) or anywhere
    yields more than limit characters, the rest cannot change the result:
    long bodies stop there instead of being converted to the end."""
    size = _FIRST_PREFIX * limit
    while size < len(text):
        end = text.find("<", size) if tags else size
        if end == -1:
            break
        line = _one_line(convert(text[:end]))
        if len(line) > limit:
            return line[: limit - 1].rstrip() + "…"
        # Aim past the cap by the ratio seen so far; at least double.
        size = max(2 * end + 1, end * (limit + 1) // max(len(line), 1) * 5 // 4)
    line = _one_line(convert(text))
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# int() refuses more digits than sys.get_int_max_str_digits() (640 at least),
# so html.unescape raised on such a reference and one item lost its feed.
# _plain rewrites them first, to what unescape gives for their value.
_HUGE_DECIMAL_REF = re.compile("&#([0-9]{640,})")


def _small_charref(match: re.Match[str]) -> str:
    significant = match.group(1).lstrip("0") or "0"
    return "&#65533" if len(significant) > 7 else "&#" + significant


def _one_line(text: str) -> str:
    return clean_text(text)


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "template"})
    # fmt: off
    _BREAKS = frozenset({
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "td", "th", "tr", "ul",
    })
    # fmt: on

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


# Markup for the crude reading; "[^<>]" keeps it linear on "<<<<".
_TAG = re.compile(r"<[a-zA-Z/!?][^<>]*>")
# A tag in the plain shapes html.parser reads the same way every time: a name,
# attributes with quoted or bare values, an optional "/" before ">".
_WS_CLASS = "[ \t\n\r\f]"
_SIMPLE_TAG = re.compile(
    rf"<(/?)([a-zA-Z][-.a-zA-Z0-9:_]*)"
    rf"((?:{_WS_CLASS}+[^\s\"'<>/=`]+"
    rf"(?:{_WS_CLASS}*={_WS_CLASS}*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>=`]+))?)*)"
    rf"{_WS_CLASS}*(/?)>"
)
# A comment every html.parser version ends at its first "-->".
_SIMPLE_COMMENT = re.compile(r"<!--(?![->])(?:(?!--)[^<>])*-->")
# Elements whose content this Python's html.parser reads as raw text, and the
# ones _TextExtractor skips: only script and style, when they are html.parser's
# raw-text elements and hold no "</", are taken here.
_RAW_TEXT = (
    frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)
    | frozenset(getattr(HTMLParser, "RCDATA_CONTENT_ELEMENTS", ()))
    | frozenset({"template", "textarea", "title", "plaintext", "xmp"})
)
_SKIPPED_RAW = frozenset({"script", "style"}) & frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)


def _caseless(word: str) -> str:
    """A pattern for word in any ASCII case (re.IGNORECASE would also let
    "\u017f" match "s" and the Kelvin sign match "k")."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _names(words: Iterable[str]) -> str:
    """A pattern for a whole tag name that is one of words, in any ASCII case."""
    return rf"(?:{_trie(sorted({w.lower() for w in words}))})(?![-.a-zA-Z0-9:_])"


def _trie(words: Sequence[str]) -> str:
    """An alternation of words that reads each character once (a flat one
    tries every word in turn at every "<")."""
    tails: dict[str, list[str]] = {}
    for word in words:
        tails.setdefault(word[:1], []).append(word[1:])
    branches = [_caseless(first) + _trie(rest) for first, rest in tails.items() if first]
    if "" in tails:
        branches.append("")
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


_NAME = "[a-zA-Z][-.a-zA-Z0-9:_]*"
_TAG_REST = _SIMPLE_TAG.pattern[len(rf"<(/?)({_NAME})") :]
_START_TAG_REST = _TAG_REST.removesuffix("(/?)>") + ">"  # not self-closing
# Script and style blocks the loop skips: a start tag that is not
# self-closing, text without "</", and the end tag right after that "</".
_SKIPPED_BLOCK = re.compile(
    "<(?:"
    + "|".join(
        rf"(?>{_names([name])}{_START_TAG_REST})(?:[^<]++|<(?!/))*+</{_caseless(name)}>"
        for name in sorted(_SKIPPED_RAW)
    )
    + ")"
    if _SKIPPED_RAW
    else "(?!)"
)
# A document _looped_html_to_text reads token by token without declining:
# text, skipped blocks, simple tags (no raw-text names), simple comments, and
# a lone "<" before an ASCII character that cannot start markup. A tag or a
# comment ends at its first ">" and contains no other "<", so the tokens are
# the ones the loop finds, and possessive and atomic groups keep this linear.
_PLAIN_DOC = re.compile(
    rf"(?:[^<]++"
    rf"|(?></(?!{_names(_RAW_TEXT)}){_NAME}{_WS_CLASS}*>)"
    rf"|(?><(?!{_names(_RAW_TEXT)}){_NAME}{_TAG_REST})"
    rf"|{_SKIPPED_BLOCK.pattern}"
    rf"|(?>{_SIMPLE_COMMENT.pattern})"
    r"|<(?=[\x01-\x20\"#$%&'()*+,\-.0-9:;<=>@\[\\\]^_`{|}~\x7f]))*+"
)
# In such a document, once its blocks are marked, a "<" followed by a letter
# or "/" starts a tag and "<!" a comment, each ending at its first ">".
_BREAK_TAG = re.compile(rf"</?{_names(_TextExtractor._BREAKS)}[^>]*>")
_OTHER_MARKUP = re.compile(r"<[a-zA-Z/!][^>]*>")
# What removed markup leaves until the text is unescaped: html.unescape never
# reads across a "<", so the text between two tags is unescaped as one piece,
# as html.parser does; "\0" (refused in the input) marks the "<" as ours.
_MARK = "<\0"


def _html_to_text(html: str) -> str:
    fast = _simple_html_to_text(html)
    return fast if fast is not None else _parsed_html_to_text(html)


def _simple_html_to_text(html: str) -> str | None:
    """What _TextExtractor gives, for HTML made only of simple tags, simple
    comments, script/style blocks and text (None for anything else: other
    declarations, raw-text elements, a stray "<"). html.parser unescapes the
    text between two tags as one piece, and so does this;
    tests/test_fastparse.py checks the two agree. The common shapes take three
    passes in C (check, break tags to spaces, other markup to a mark); the
    rest is read token by token."""
    if "\0" in html or _PLAIN_DOC.fullmatch(html) is None:
        return _looped_html_to_text(html)
    return _markup_to_text(_skip_blocks(html))


def _skip_blocks(html: str) -> str:
    """A document _PLAIN_DOC matches with its script and style blocks marked
    as removed, so that every "<" left starts a tag, a comment, a mark or is
    a lone "<"."""
    if "<s" in html or "<S" in html:
        return _SKIPPED_BLOCK.sub(_MARK, html)
    return html


def _markup_to_text(html: str) -> str:
    """_simple_html_to_text of a document _PLAIN_DOC matches, after
    _skip_blocks, or of the part of one before a "<"."""
    text = _OTHER_MARKUP.sub(_MARK, _BREAK_TAG.sub(" ", html))
    return unescape(text).replace(_MARK, "")


def _looped_html_to_text(html: str) -> str | None:
    parts: list[str] = []
    pos = 0
    while (lt := html.find("<", pos)) != -1:
        if lt > pos:
            parts.append(unescape(html[pos:lt]))
        if html.startswith("<!--", lt):
            comment = _SIMPLE_COMMENT.match(html, lt)
            if comment is None:
                return None
            pos = comment.end()
            continue
        match = _SIMPLE_TAG.match(html, lt)
        if match is None:
            following = html[lt + 1 : lt + 2]
            if not following or following.isalpha() or following in "/!?":
                return None
            parts.append("<")  # "a < b": html.parser keeps a lone "<" as text
            pos = lt + 1
            continue
        closing, name, attributes, self_closing = match.groups()
        name = name.lower()
        if closing and (attributes or self_closing):
            return None
        if name in _SKIPPED_RAW and not closing and not self_closing:
            end = html.find("</", match.end())
            if end == -1 or html[end + 2 : end + 3 + len(name)].lower() != name + ">":
                return None
            pos = end + 3 + len(name)  # the script or style text is skipped
            continue
        if name in _RAW_TEXT:
            return None
        if name in _TextExtractor._BREAKS:
            parts.append(" ")
        pos = match.end()
    parts.append(unescape(html[pos:]))
    return "".join(parts)


# html.parser is quadratic, and worse, on unfinished markup: from the first
# construct it cannot finish, close() reads the rest one "<" at a time, each
# read scanning to the end (64,000 "<a" took 12 s; 10,000 "<p x='a'" 30 s).
# What it reads before that point costs about what it advances. So when more
# than _STUCK characters follow an unfinished construct, they are read the
# crude way (markup removed, text unescaped), in linear time.
_STUCK = 1024


def _parsed_html_to_text(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html)
        rest = parser.rawdata
        if len(rest) > _STUCK and rest.startswith("<") and not parser.cdata_elem:
            return "".join(parser.parts) + _crude_text(rest)
        parser.close()
    except Exception:  # html.parser gives up on some garbage: fall back to crude
        return _crude_text(html)
    return "".join(parser.parts)


def _crude_text(html: str) -> str:
    return unescape(_TAG.sub(" ", html))


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


def _short(text: str, limit: int = 200) -> str:
    return clean_short(text, limit)
