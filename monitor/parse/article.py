"""An article page's bytes -> its plain text, or the reason there is none.

Owns reading one fetched HTML page (monitor.fetch.article) as an article:
decoding it (BOM, then a ``<meta>`` charset, then UTF-8, then a guess),
extracting the main text with trafilatura (offline: it is given the page,
never a URL to fetch), making that text inert (monitor.clean, and no
tag-shaped text left) and judging it: a page whose text is too short, or is a
cookie-consent or subscription wall, is a failure with its reason, not an
article. Never raises, whatever the bytes: hostile input is a failure too.

Must not fetch nor store (the article queue in monitor.store does that).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from monitor.clean import clean_lines, clean_text

log = logging.getLogger(__name__)

Reason = Literal["too-short", "boilerplate", "empty", "not-html", "parse"]


@dataclass(frozen=True)
class ArticleText:
    ok: bool
    text: str  # plain text only: no markup, control characters or bidi overrides
    reason: str | None  # a Reason when not ok
    text_hash: str  # sha256 hex of text ("" when not ok)


# trafilatura's options, chosen on ../shared/data/article-extraction by
# benchmarks/extraction.py (benchmarks/RESULTS.md, "Article extraction"):
# favor_precision raised precision from 0.942 to 0.963 (related-link lists,
# bylines and sidebars left out) for 0.008 of recall, and a false hit on a
# sidebar is worse for topic matching than a missed sentence; the second look
# at short results (SECOND_LOOK_BELOW) wins most of that recall back. Comments
# are readers', not the article's.
TRAFILATURA_OPTIONS: Final[dict[str, Any]] = {
    "output_format": "txt",
    "favor_precision": True,
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    "with_metadata": False,
    "deduplicate": False,
}

# Under this many characters a precise extraction is checked again without
# favor_precision (a teaser's length, issue 15: "under 500 characters").
SECOND_LOOK_BELOW: Final = 500

# Pages larger than this are cut before parsing: the fetcher's cap (10 MB by
# default) bounds what arrives; this bounds the parse time of what is called
# with more (an article's text is never near it).
MAX_INPUT: Final = 5_000_000

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:\-]{1,40})""", re.IGNORECASE)
# WHATWG: a <meta> can never declare UTF-16 (it could not have been read), and
# labels that carry markup in other bytes (UTF-7) are not honoured.
_META_REFUSED: Final = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-7", "utf-32",
                                  "utf-32-le", "utf-32-be"})
_NOT_CHARSETS: Final = ("utf_16", "utf_32", "utf_7", "escape", "idna", "punycode", "undefined",
                        "mbcs", "oem", "charmap", "rot", "hex", "base64", "uu", "zlib", "bz2",
                        "quopri")
_META_ALIASES: Final = {"iso8859-1": "cp1252", "latin-1": "cp1252", "ascii": "cp1252"}
_HTML_SNIFF = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|article|main|div|p|title|meta|h[1-6])[\s>/]",
    re.IGNORECASE)
_SNIFF_BYTES: Final = 64 * 1024
_C0 = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHARREF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,64})|([0-9]{1,64}));?")
# Text that looks like a tag: escaped markup in a page (``&lt;script&gt;``)
# comes out of extraction as real angle brackets; it never reaches storage.
# Linear: a failed match stops at the next "<", where the next attempt starts.
_TAG_SHAPED = re.compile(r"<[/!?]?[a-zA-Z][^<>]*>")

# Consent banners and subscription walls, in the languages of the feeds we
# watch. A line of the extracted text is a wall line when it says one of these.
_WALL = re.compile(
    r"cookie|consent|gdpr|privacy (?:settings|preferences)|accept all|"
    r"subscribe|subscription|subscriber|sign in to|log in to|create an account|"
    r"to continue reading|continue reading with|paywall|premium (?:content|article)|"
    r"enable javascript|disable your ad ?blocker|"
    r"подпи[сш]|куки|cookie-файл|согласи[ея] на обработку|войдите|"
    r"abonn|einwillig|datenschutz|zustimm|"
    r"suscr[ií]b|consentimiento",
    re.IGNORECASE)
# What only a wall says: a text this short that says it is a teaser behind one.
_STRONG_WALL = re.compile(
    r"to continue reading|subscribers? only|already a subscriber|subscribe to (?:read|continue)|"
    r"for subscribers|this (?:article|content) is (?:only )?(?:available|reserved) (?:to|for)|"
    r"оформите подписку|только (?:для )?подписчик|"
    r"nur für abonnenten|réservé aux abonnés",
    re.IGNORECASE)
_STRONG_WALL_MAX: Final = 2500
# A wall and its teaser: the walled share of a text this short decides.
_WALL_SHARE: Final = 0.25
_WALL_SHORT_FACTOR: Final = 3


def extract_article(body: bytes, url: str, *, min_chars: int = 300) -> ArticleText:
    """The article text of the HTML page ``body`` (fetched from ``url``), or a
    failure: "empty" (no body, no text), "not-html", "boilerplate" (a consent
    or subscription wall), "too-short" (under ``min_chars`` characters),
    "parse" (the page defeated the parser). Never raises."""
    try:
        return _extract(body, url, min_chars)
    except Exception:  # hostile input must cost one page, never the caller
        log.debug("article extraction failed for %s", clean_text(url), exc_info=True)
        return _failed("parse")


def _extract(body: bytes, url: str, min_chars: int) -> ArticleText:
    if not body.strip():
        return _failed("empty")
    if not looks_like_html(body):
        return _failed("not-html")
    html = _parseable(decode_html(body[:MAX_INPUT]))
    import trafilatura  # late: it costs a quarter second to import, and few runs need it

    text = inert_text(trafilatura.extract(html, url=url or None, **TRAFILATURA_OPTIONS) or "")
    if len(text) < max(min_chars, SECOND_LOOK_BELOW) and TRAFILATURA_OPTIONS.get("favor_precision"):
        # Precision can keep only a notice of a page whose article is there
        # (measured: barrons.com's reprint notice, 260 of 3,213 characters);
        # trafilatura's balanced setting gets a second look at short results.
        balanced = {**TRAFILATURA_OPTIONS, "favor_precision": False}
        second = inert_text(trafilatura.extract(html, url=url or None, **balanced) or "")
        text = second if len(second) > len(text) else text
    if not text:
        page = inert_text(trafilatura.html2txt(html) or "")
        return _failed("boilerplate" if _is_wall(page, min_chars) else "empty")
    if _is_wall(text, min_chars):
        return _failed("boilerplate")
    if len(text) < min_chars:
        return _failed("too-short")
    return ArticleText(ok=True, text=text, reason=None,
                       text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest())


def _parseable(html: str) -> str:
    """``html`` without what makes lxml give up on the whole page (trafilatura
    then returns nothing): NUL and C0 controls, raw or as character
    references (``&#x1b;``), and references to no character at all."""
    html = _C0.sub("", html)
    return _CHARREF.sub(_checked_charref, html) if "&#" in html else html


def _checked_charref(match: re.Match[str]) -> str:
    hex_digits, digits = match.groups()
    significant = (hex_digits if hex_digits is not None else digits).lstrip("0")[:9]
    code = int(significant or "0", 16 if hex_digits is not None else 10)
    if code in (0x9, 0xA, 0xD) or (0x20 <= code < 0xD800 and not 0x7F <= code <= 0x9F) \
            or 0xE000 <= code <= 0x10FFFF:
        return match.group(0)
    return ""


def _failed(reason: Reason) -> ArticleText:
    return ArticleText(ok=False, text="", reason=reason, text_hash="")


def looks_like_html(body: bytes) -> bool:
    """Whether the first bytes hold an HTML tag and no NUL (a binary file)."""
    head = body[:_SNIFF_BYTES]
    for bom, encoding in _BOMS:
        if head.startswith(bom) and encoding.startswith("utf-16"):
            head = head[len(bom):].decode(encoding, "replace").encode("utf-8", "replace")
            break
    if is_binary(head):
        return False
    return _HTML_SNIFF.search(head) is not None


def is_binary(head: bytes) -> bool:
    """More than one NUL in a hundred bytes: an image, a PDF, UTF-16 without
    its BOM; a stray NUL in a page is not."""
    return head.count(b"\x00") * 100 > len(head)


def decode_html(body: bytes) -> str:
    """``body`` as text: by its BOM, else the charset of a ``<meta>`` in its
    first 4 KB (not UTF-7, UTF-16 or UTF-32), else UTF-8, else cp1252 (every
    byte decodes)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(encoding, "replace")
    declared = _meta_charset(body[:4096])
    if declared is not None:
        return body.decode(declared, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", "replace")


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    if match is None:
        return None
    try:
        info = codecs.lookup(match.group(1).decode("ascii").strip())
    except (LookupError, UnicodeDecodeError):
        return None
    name = info.name
    # Python's codec registry holds more than charsets ("unicode_escape",
    # "rot13", "zlib"): none of those is a page's encoding.
    if not getattr(info, "_is_text_encoding", True) or name in _META_REFUSED \
            or any(part in name for part in _NOT_CHARSETS):
        return None
    return _META_ALIASES.get(name, name)


def inert_text(raw: str) -> str:
    """Extracted text made safe to store and show: line breaks kept, each line
    cleaned (monitor.clean), tag-shaped text removed, blank lines dropped."""
    # Cleaned before the tags go, so that no removed character can join the
    # parts of a tag ("<\x00script>"); a removed tag leaves a space for the same reason.
    text = _TAG_SHAPED.sub(" ", clean_lines(raw))
    lines = (clean_text(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _is_wall(text: str, min_chars: int) -> bool:
    """A consent or subscription wall: a short text of which a large share is
    said by wall lines (an article that ends with "Subscribe" is not one), or
    a teaser that says it stops at a subscription wall."""
    if len(text) <= _STRONG_WALL_MAX and _STRONG_WALL.search(text):
        return True
    if not text or len(text) > _WALL_SHORT_FACTOR * max(min_chars, 1):
        return False
    lines = text.split("\n")
    walled = sum(len(line) for line in lines if _WALL.search(line))
    return walled >= _WALL_SHARE * len(text)
