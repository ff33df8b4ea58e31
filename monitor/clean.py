"""The one cleaner for text that came from a server or a feed.

Owns what may reach an output (a terminal through rich, the text and JSON
logs, CLI tables, ``--json``, digests) of any string someone else wrote: HTTP
reason phrases, error texts that quote a server, header values, feed and entry
titles, authors, summaries and the URLs we show. It is applied once, where
such text enters (the fetcher's failures, the parser's records, error
construction), and again where it is cheap on the way out of the database, so
rows stored before it existed are shown clean too.

Removed: C0 and C1 control characters that are not whitespace (ESC starts
ANSI and OSC sequences, U+009B is a one-character CSI, a lone CR rewrites the
line), DEL, the bidi embeddings, overrides and isolates U+202A-U+202E and
U+2066-U+2069 (text that reads backwards), the BOM, the interlinear annotation
characters U+FFF9-U+FFFB, the noncharacters U+FFFE/U+FFFF and lone surrogates
(which no UTF-8 output can encode). Letters of every script, emoji, ZWJ/ZWNJ,
LRM/RLM and punctuation stay as they are. Pure functions, no I/O.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

__all__ = ["CleanFormatter", "clean_lines", "clean_short", "clean_text", "clean_url",
           "without_userinfo"]

# Whitespace controls (TAB, LF, VT, FF, CR, U+001C-U+001F, U+0085) are not in
# here: the one-line cleaners turn them into spaces, clean_lines into breaks.
_UNSAFE_CHARS = ("\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069"
                 "\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff")
_UNSAFE = re.compile(f"[{_UNSAFE_CHARS}]")
# Inside a line, the whitespace controls other than TAB go too: they move the
# cursor (CR, VT, FF) or are line breaks only to some readers.
_UNSAFE_IN_LINE = re.compile(f"[{_UNSAFE_CHARS}\x0b\x0c\x1c-\x1f\x85]")
# What str.splitlines breaks at; split() by it keeps a last empty line, so
# that cleaning twice changes nothing.
_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# In a URL the same characters, and any whitespace, are percent-encoded
# instead: the link still leads where it led, it only stops hiding where.
_URL_UNSAFE = re.compile(f"[{_UNSAFE_CHARS}\\s]")


def clean_text(text: str | None) -> str:
    """``text`` as one safe line: unsafe characters removed, every run of
    whitespace (controls such as LF and U+0085 included) one space, no
    leading or trailing space."""
    if not text:
        return ""
    return " ".join(_UNSAFE.sub("", text).split())


def clean_short(text: str | None, limit: int) -> str:
    """``clean_text`` cut to at most ``limit`` characters, "…" marking the cut."""
    flat = clean_text(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def clean_lines(text: str | None) -> str:
    """``text`` with its line breaks kept, for where they mean something (a
    traceback, an error listing several problems): every kind of line break
    (CR LF, CR, U+0085, U+2028...) becomes LF, TAB stays, the rest as in
    ``clean_text``."""
    if not text:
        return ""
    return "\n".join(_UNSAFE_IN_LINE.sub("", line) for line in _LINE_BREAK.split(text))


def clean_url(url: str | None) -> str | None:
    """A URL safe to show: its user and password dropped (``http://user:pw@host/``
    leaks a secret or shows a host it does not lead to), unsafe characters and
    whitespace percent-encoded (UTF-8). None stays None; nothing else changes."""
    if url is None:
        return None
    return _URL_UNSAFE.sub(_percent, without_userinfo(url))


def without_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` of its authority (where
    urllib.parse reads the authority: up to the first "/", "?" or "#")."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i != -1), default=len(rest))
    if "@" not in rest[:end]:
        return url
    return f"{scheme}://{rest[:end].rpartition('@')[2]}{rest[end:]}"


def _percent(match: re.Match[str]) -> str:
    return quote(match.group(0).encode("utf-8", "surrogatepass"), safe="")


class CleanFormatter(logging.Formatter):
    """A log formatter whose lines hold no unsafe character: our own messages
    are clean already, but a traceback or a library's message may quote a
    server (an exception text), and a log read in a terminal must not run it."""

    def format(self, record: logging.LogRecord) -> str:
        return clean_lines(super().format(record))
