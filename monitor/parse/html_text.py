"""HTML to plain text: the one conversion every HTML field goes through.

Owns turning a field's markup into a single line of text of at most a given
length. It reads as html.parser does (``_parsed_html_to_text``, with a crude
linear fallback for markup html.parser would take quadratic time over);
documents made of simple markup only take a regex shortcut
(``_simple_html_to_text``) that tests/test_fastparse.py and
tests/test_parse_reference.py prove gives the same text. Must not parse
feeds, fetch, or touch keys (those keep their own characters, see
monitor.parse.entries).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from html import unescape
from html.parser import HTMLParser
from typing import Any

from monitor.clean import clean_text
from monitor.parse.cut import _INPUT_FACTOR

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


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
