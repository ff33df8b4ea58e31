"""Parsing: response bytes + headers -> ParsedFeed of plain-text Entries.

The package, module by module:
- ``document``: ``parse_feed`` itself (decoding, the steps in order, "is this
  a feed", feed-level fields, the one ParseError contract);
- ``registry``: which parser reads a document, by media type and sniffing
  (JSON Feed's place, the lxml fast path, feedparser);
- ``jsonfeed``: JSON Feed 1.0/1.1 -> the same raw records as the XML parsers;
- ``fast``: the lxml fast path; ``feedparser``: the feedparser path and its patch;
- ``entities``: the XML-entity guard; ``cut``: field caps and the entries cut;
- ``entries``: raw records -> Entry; ``html_text``: the one HTML-to-text.

Must not fetch (monitor.fetch) nor store: it never does I/O.
The private names below are re-exported for the tests that check the
shortcuts against their reference versions.
"""

from monitor.parse.cut import _INPUT_FACTOR, AUTHOR_MAX, KEY_MAX, SUMMARY_MAX, TITLE_MAX, URL_MAX
from monitor.parse.document import parse_feed, takes_fast_path
from monitor.parse.entities import _defuse_charrefs
from monitor.parse.entries import _clean
from monitor.parse.html_text import (
    _HTML_TYPES,
    _RAW_TEXT,
    _SIMPLE_COMMENT,
    _SIMPLE_TAG,
    _SKIPPED_RAW,
    _parsed_html_to_text,
    _plain,
    _simple_html_to_text,
    _str,
    _TextExtractor,
)

__all__ = [
    "AUTHOR_MAX",
    "KEY_MAX",
    "SUMMARY_MAX",
    "TITLE_MAX",
    "URL_MAX",
    "_HTML_TYPES",
    "_INPUT_FACTOR",
    "_RAW_TEXT",
    "_SIMPLE_COMMENT",
    "_SIMPLE_TAG",
    "_SKIPPED_RAW",
    "_TextExtractor",
    "_clean",
    "_defuse_charrefs",
    "_parsed_html_to_text",
    "_plain",
    "_simple_html_to_text",
    "_str",
    "parse_feed",
    "takes_fast_path",
]
