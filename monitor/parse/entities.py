"""The XML-entity guard: a document's prolog rebuilt with only the entities
that cannot amplify, and character references that would break feedparser
replaced (catalogue X3).

Owns what precedes the root element and the out-of-range character
references. Must not parse the document itself nor fetch anything: no
external identifier survives it.
"""

from __future__ import annotations

import re

from monitor.errors import ParseError

_UTF8_DECL = b"<?xml version='1.0' encoding='utf-8'?>\n"

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
