"""Evidence of a hit: the matched words and the snippet that shows them.

Owns how a hit's terms are read from FTS5's highlight() output and how its
snippet is chosen (the window of the narrowest top-level clause, re-marked
with every word of the whole query), and the snippet made in Python when
SQLite's snippet() fails. It asks the batch for rows and must not decide
which topics match.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.query import FTS_COLUMNS, HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, marked

SNIPPET_ELLIPSIS = "…"
SNIPPET_TOKENS = 16  # FTS5 allows 1..64; ~16 reads as one line
MAX_TERMS = 10

_MARKER_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + "|" + re.escape(HIGHLIGHT_CLOSE))


@dataclass(frozen=True)
class _Row:
    rowid: int
    title_hl: str
    summary_hl: str
    snippet: str
    article_hl: str = ""
    # Raw words matched only through their normal form (see norm.mark), also
    # named among the terms where they could not be marked in a column.
    folded: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, str, str]:
        return self.title_hl, self.summary_hl, self.article_hl

    def found_in(self) -> tuple[str, ...]:
        """The columns (FTS_COLUMNS) holding a matched word."""
        return tuple(name for name, text in zip(FTS_COLUMNS, self.columns, strict=True)
                     if HIGHLIGHT_OPEN in text)


@dataclass(frozen=True)
class _Fetched:
    """A row as SQLite highlighted it, before its evidence is finished."""

    row: _Row
    norm_hl: str  # the norm column highlighted ("" without one)
    level: int  # which of the batch's column lists gave it (0: all of them)


class _Rows(Protocol):
    """What _evidence needs of a batch (batch._Batch)."""

    def fetch_row(self, fts_query: str, rowid: int) -> _Fetched | None: ...

    def matched_words(self, fetched: _Fetched) -> int: ...

    def finish(self, fetched: _Fetched) -> _Row: ...

    def snippet(self, fetched: _Fetched) -> str: ...


def _terms_of(*highlighted: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in highlighted:
        for run in marked(text or ""):
            word = " ".join(run.split()).lower()
            if word and word not in seen:
                seen[word] = None
                if len(seen) >= MAX_TERMS:
                    return tuple(seen)
    return tuple(seen)


_SPAN_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + r".*?" + re.escape(HIGHLIGHT_CLOSE)
                      + r"|\S+", re.S)


def _window(highlighted: str) -> str:
    """About SNIPPET_TOKENS words of ``highlighted`` around its first marked
    span, never cutting one, with SNIPPET_ELLIPSIS where text was left out."""
    words = _SPAN_RE.findall(highlighted)
    first = next((i for i, w in enumerate(words) if HIGHLIGHT_OPEN in w), 0)
    start = max(0, first - SNIPPET_TOKENS // 4)
    end = min(len(words), start + SNIPPET_TOKENS)
    head = SNIPPET_ELLIPSIS if start > 0 else ""
    tail = SNIPPET_ELLIPSIS if end < len(words) else ""
    return head + " ".join(words[start:end]) + tail


def _evidence(batch: _Rows, fts_clauses: Sequence[str],
              row: _Row) -> tuple[tuple[str, ...], str]:
    """The matched words of a hit and its snippet.

    The words come from the whole query. The snippet's window comes from the
    top-level AND clause with the fewest distinct matched words: in "@place
    AND (strike OR protest)" that is the topic's own vocabulary, not the place
    names a long summary repeats. Within that window every word the whole
    query matched is marked."""
    terms = _terms_of(*row.columns)
    if row.folded:
        terms = tuple(dict.fromkeys((*terms, *row.folded)))[:MAX_TERMS]
    # Each clause's words are counted from SQLite's highlights; only the
    # chosen clause's row has its raw words marked and its snippet made.
    best: tuple[int, _Fetched] | None = None
    for fts_clause in fts_clauses:
        sub = batch.fetch_row(fts_clause, row.rowid)
        if sub is None:
            continue
        n = batch.matched_words(sub)
        if n and (best is None or n <= best[0]):
            best = (n, sub)
    if best is None:
        return terms, row.snippet
    snippet = batch.snippet(best[1])
    window = _rehighlight(snippet, row.columns)
    return terms, window or snippet


class _Unmarked:
    """``highlighted`` without markers, and the way back from a position in
    that plain text to one in ``highlighted``: by the runs between markers,
    so the cost follows the markers, not the length of a long article."""

    def __init__(self, highlighted: str) -> None:
        pieces: list[str] = []
        self.starts: list[int] = []  # where each run starts in the plain text
        self.origins: list[int] = []  # ... and in highlighted
        pos = length = 0
        for m in _MARKER_RE.finditer(highlighted):
            pieces.append(highlighted[pos:m.start()])
            self.starts.append(length)
            self.origins.append(pos)
            length += m.start() - pos
            pos = m.end()
        pieces.append(highlighted[pos:])
        self.starts.append(length)
        self.origins.append(pos)
        self.plain = "".join(pieces)

    def at(self, i: int) -> int:
        """The index in ``highlighted`` of plain character ``i`` (of the end
        for ``len(plain)``); a character after a marker maps after it."""
        k = bisect.bisect_right(self.starts, i) - 1
        return self.origins[k] + i - self.starts[k]


def _rehighlight(snippet: str, columns: Sequence[str]) -> str | None:
    """The window of ``snippet`` cut from a column highlighted by the whole
    query; None when it cannot be found (the caller keeps ``snippet``)."""
    body = snippet.removeprefix(SNIPPET_ELLIPSIS).removesuffix(SNIPPET_ELLIPSIS)
    fragment = _MARKER_RE.sub("", body)
    if not fragment.strip():
        return None
    for highlighted in columns:
        unmarked = _Unmarked(highlighted)
        plain = unmarked.plain
        start = plain.find(fragment)
        if start < 0:
            continue
        end = start + len(fragment)
        a, b = unmarked.at(start), unmarked.at(end - 1) + 1
        # Widen to whole marked spans so no marker is cut in half.
        open_before = highlighted.rfind(HIGHLIGHT_OPEN, 0, a + 1)
        if open_before >= 0 and highlighted.rfind(HIGHLIGHT_CLOSE, 0, a) < open_before:
            a = open_before
        if highlighted.rfind(HIGHLIGHT_OPEN, 0, b) > highlighted.rfind(HIGHLIGHT_CLOSE, 0, b):
            close = highlighted.find(HIGHLIGHT_CLOSE, b)
            b = len(highlighted) if close < 0 else close + len(HIGHLIGHT_CLOSE)
        head = SNIPPET_ELLIPSIS if start > 0 else ""
        tail = SNIPPET_ELLIPSIS if end < len(plain) else ""
        return head + highlighted[a:b] + tail
    return None

