"""monitor.parse and monitor.fastparse shortcuts against the code they replaced.

The plain-text conversion (regex passes instead of a loop over tags, stopping
once the length cap is certain), the character-reference guard (only long
references looked at) and the fast path's URL joining (without re.sub's
template) must give exactly what the straightforward versions kept below give.
The corpus-wide equality of parse_feed itself is tests/test_fastparse.py's and
the golden files'.
"""

from __future__ import annotations

import re
from typing import Any

from feedparser.urls import _urljoin as feedparser_urljoin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.parse import (
    _HTML_TYPES,
    _INPUT_FACTOR,
    _clean,
    _defuse_charrefs,
    _parsed_html_to_text,
    _plain,
    _simple_html_to_text,
    _str,
)
from monitor.parse import fast as fastparse
from monitor.parse.html_text import _looped_html_to_text

# ------------------------------------------------ the reference versions


# The tag-by-tag conversion monitor.parse used before its regex passes: it is
# still the loop _simple_html_to_text falls back to (this file used to keep a
# copy of it), so the regex passes are checked against that loop.
reference_loop = _looped_html_to_text


def reference_plain(value: Any, content_type: str | None, limit: int) -> str:
    """_plain before it learnt to stop early: convert everything, then cut."""
    text = _str(value)
    if not text:
        return ""
    text = text[: limit * _INPUT_FACTOR]
    if (content_type or "").lower() in _HTML_TYPES and ("<" in text or "&" in text):
        simple = reference_loop(text)
        text = simple if simple is not None else _parsed_html_to_text(text)
    text = " ".join(_clean(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def reference_defuse(data: bytes) -> bytes:
    """Every character reference looked at, out-of-range ones replaced."""

    def checked(match: re.Match[bytes]) -> bytes:
        hex_digits, digits = match.groups()
        significant = (hex_digits if hex_digits is not None else digits).lstrip(b"0")
        if len(significant) > 8:
            return b"&#xFFFD;"
        code = int(significant or b"0", 16 if hex_digits is not None else 10)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return b"&#xFFFD;"
        return match.group(0)

    return _CHARREF.sub(checked, data)


# ------------------------------------------------------------ documents

FRAGMENTS = [
    "<p>",
    "</p>",
    "<br/>",
    "<BR>",
    "<li class='a'>",
    "<td>",
    "</Table>",
    "<h1>",
    "<hr/>",
    "<b>",
    "</b>",
    '<span style="x">',
    '<a href="https://x/?a=1&amp;b=2">',
    "</a>",
    "<o:p>",
    "<!-- c -->",
    "<!--",
    "-->",
    "<![if !mso]>",
    "<![endif]>",
    "<script>var a = 1 < 2;</script>",
    "<script async src=x>",
    "</script>",
    "</SCRIPT>",
    "<style type='t'>p{}</style>",
    "<style>",
    "<script/>",
    "<template>",
    "<title>",
    "<textarea>",
    "<!DOCTYPE html>",
    "<?pi?>",
    "&amp;",
    "&am",
    "p;",
    "&",
    "#",
    "&#82",
    "17;",
    "&#x2019;",
    "&#xD800;",
    "&nbsp",
    "&notit;",
    "&lt;b&gt;",
    "<",
    ">",
    "< ",
    "<<",
    "<1",
    "<é",
    "</ p>",
    "a<b",
    "\x00",
    "\x01",
    "\x85",
    "\u2028",
    "\t",
    "\n",
    " ",
    "  ",
    "word",
    "lorem ipsum dolor ",
    "Straße",
    "ſcript",
]

documents = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_simple_html_to_text_is_the_tag_loop(html: str) -> None:
    assert _simple_html_to_text(html) == reference_loop(html)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.integers(min_value=1, max_value=40), st.sampled_from(["text/html", None]))
def test_plain_text_is_the_full_conversion_cut(html: str, limit: int, ctype: str | None) -> None:
    # Small limits make the documents long enough for the early stop (and
    # for the input cap of limit * _INPUT_FACTOR characters).
    assert _plain(html, ctype, limit) == reference_plain(html, ctype, limit)


def test_plain_text_of_long_articles_stops_early_with_the_same_text() -> None:
    paragraph = "<p>Some <b>bold</b> text &amp; an entity, then a break<br/>and more.</p>\n"
    blocks = "<script>if (a < b) {}</script><style>p{}</style>"
    for body in (
        paragraph * 3000,
        blocks + paragraph * 3000,
        paragraph * 3000 + "<![if mso]>x",  # not simple at the very end
        # unescape refuses this number; it stands for U+FFFD (out of range)
        paragraph * 3000 + "&#" + "9" * 5000 + ";",
    ):
        for limit in (10, 1_000, 10_000):
            expected = reference_plain(body.replace("&#" + "9" * 5000, "&#65533"),
                                       "text/html", limit)
            assert _plain(body, "text/html", limit) == expected, (limit, body[-40:])


def test_unescape_never_reads_across_a_tag() -> None:
    for html in ("&am<b>p;", "&#8<i>217;", "&<b>amp;", "&amp<br>;", "&not<!-- -->in;"):
        assert _plain(html, "text/html", 100) == reference_plain(html, "text/html", 100)


# ------------------------------------------------- character references

REFERENCES = [
    b"&#",
    b"&#x",
    b"&#X",
    b"0",
    b"000000000",
    b"d",
    b"D8",
    b"00",
    b"1",
    b"10",
    b"FFFF",
    b"ffff",
    b"7",
    b"9",
    b"55296",
    b"57343",
    b"1114111",
    b"1114112",
    b"110000",
    b";",
    b"&amp;",
    b"a",
    b" ",
]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(REFERENCES), max_size=30).map(b"".join))
def test_defuse_charrefs_is_the_full_check(data: bytes) -> None:
    assert _defuse_charrefs(data) == reference_defuse(data)


def test_defuse_charrefs_replaces_every_out_of_range_form() -> None:
    data = b"&#xD800;&#xdfff;&#55296;&#0057343;&#x110000;&#1114112;&#x0000000000000041;"
    assert _defuse_charrefs(data) == reference_defuse(data)
    assert _defuse_charrefs(data).count(b"&#xFFFD;") == 6


# ------------------------------------------------------------ URL joins

URL_PARTS = [
    "http:",
    "https:",
    "HTTP:",
    "feed:",
    "//",
    "///",
    "/",
    "a",
    "b.c",
    "?q=1",
    "#f",
    "..",
    ".",
    "[",
    "]",
    ":80",
    "%20",
    " ",
    "\t",
    "é",
    "x+y-z.w:",
    "",
]
urls = st.lists(st.sampled_from(URL_PARTS), max_size=8).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["", "http://example.com/a/b", "https://h/", "rel/path", "http://[x"]), urls)
def test_fast_path_urljoin_is_feedparsers(base: str, uri: str) -> None:
    assert fastparse._urljoin(base, uri) == feedparser_urljoin(base, uri)
