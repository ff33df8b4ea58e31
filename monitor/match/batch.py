"""Topic matching: ``@name`` expansion, query validation and FTS5 percolation.

Owns the topic language of DESIGN.md ("Topic language"): a topic query is an
SQLite FTS5 query in which ``@name`` stands for an OR-group of a named term
list. SQLite parses and validates every query; the only syntax handled here is
the ``@name`` substitution and, for ``explain()``, a split of a query at its
top-level ``AND`` so that a near miss can say which parts did match.

Matching is percolation in two stages. First, in Python, each entry's tokens
(exactly those of SQLite's tokenizer, see "Tokens without SQLite") are checked
against what each topic's query needs (see "Necessary conditions"), which
leaves the few (topic, entry) pairs that could match. Then those entries go
into a fresh in-memory FTS5 table with the columns ``title`` and ``summary``
and each remaining topic's query runs once against it: SQLite has the last
word. Each hit carries the matched words (from ``highlight()``) and a short
``snippet()`` with the words wrapped in HIGHLIGHT_OPEN/HIGHLIGHT_CLOSE, so "why
did this match?" always has an answer. Before a topic runs, its @name groups
are pruned to the alternatives the entries' tokens can match (see "Pruning"),
so long term lists cost little. No HTTP, no persistent storage.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import filterfalse

from monitor.errors import QueryError, QueryTooLarge
from monitor.types import Entry, Hit, Topic

__all__ = [
    "HIGHLIGHT_CLOSE",
    "HIGHLIGHT_OPEN",
    "MAX_PHRASE_TOKENS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "MAX_TERMS",
    "PLAIN_WORDS",
    "QUERY",
    "SNIPPET_TOKENS",
    "TOKENIZER",
    "Matcher",
    "SearchReading",
    "TopicExplanation",
    "build_fts_query",
    "entry_from_text",
    "expand_query",
    "plain_words",
    "read_search",
    "split_clauses",
    "validate_query",
]

log = logging.getLogger(__name__)

TOKENIZER = "unicode61 remove_diacritics 2"

# Matched words in snippets are wrapped in these markers; the digest and the
# CLI render them (bold in a terminal, <mark> in HTML). Plain ASCII so the
# stored snippet stays readable in sqlite3/Datasette; feed text is scrubbed of
# the same sequences before indexing (see _clean), so every marker is ours.
HIGHLIGHT_OPEN = "[["
HIGHLIGHT_CLOSE = "]]"
SNIPPET_ELLIPSIS = "…"
SNIPPET_TOKENS = 16  # FTS5 allows 1..64; ~16 reads as one line
MAX_TERMS = 10

# Size limits of the topic language, for topics and searches alike (see
# "Size limits"). The shipped feeds.yaml stays well under them: its longest
# query is 294 characters as written and 486 terms once expanded, and its
# longest term has 7 words.
MAX_QUERY_CHARS = 4_000  # a query or an exclude, as written
MAX_QUERY_TERMS = 1_000  # words and "phrases", after @name expansion
MAX_PHRASE_TOKENS = 64  # words in one "phrase"

_NAME_RE = re.compile(r"@([A-Za-z0-9_-]+)")
# A space after every "[" or "]" that another follows: "[[[x]]]" -> "[ [ [x] ] ]".
_MARKER_RUN_RE = re.compile(r"\[(?=\[)|\](?=\])")
_MARKER_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + "|" + re.escape(HIGHLIGHT_CLOSE))
_MARKED_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + r"(.*?)" + re.escape(HIGHLIGHT_CLOSE), re.S)
_SCHEMA = f"CREATE VIRTUAL TABLE {{name}} USING fts5(title, summary, tokenize='{TOKENIZER}')"


# --------------------------------------------------------------------------
# @name expansion and validation


def _quote(term: str) -> str:
    """A term as an FTS5 string; a trailing ``*`` makes it a prefix query."""
    prefix = term.endswith("*")
    body = term[:-1].rstrip() if prefix else term
    quoted = '"' + body.replace('"', '""') + '"'
    return quoted + "*" if prefix else quoted


def _or_group(name: str, terms: Sequence[str], topic_id: str | None, query: str) -> str:
    cleaned = [t.strip() for t in terms if t.strip().rstrip("*").strip()]
    if not cleaned:
        raise QueryError(f"term list @{name} is empty", topic=topic_id, query=query)
    return "(" + " OR ".join(_quote(t) for t in cleaned) + ")"


def _outside_quotes(query: str) -> Iterator[tuple[bool, str]]:
    """Split ``query`` into (is_quoted, text) runs; ``""`` inside a string is
    FTS5's escaped quote. An unterminated string runs to the end (SQLite will
    reject it)."""
    i, start, n = 0, 0, len(query)
    while i < n:
        if query[i] != '"':
            i += 1
            continue
        if i > start:
            yield False, query[start:i]
        j = _skip_string(query, i)
        yield True, query[i:j]
        i = start = j
    if start < n:
        yield False, query[start:]


def expand_query(
    query: str, terms: Mapping[str, Sequence[str]], *, topic_id: str | None = None
) -> str:
    """Replace every ``@name`` outside "quoted phrases" by the OR-group of
    ``terms[name]``: ``("t1" OR "t2"* OR "multi word phrase")``.

    An undefined name raises QueryError naming the topic and the name; a
    query longer than MAX_QUERY_CHARS raises QueryTooLarge before anything
    is expanded (a long query of @names would expand a hundredfold)."""
    _check_length(query, topic_id)

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in terms:
            raise QueryError(f"undefined term list @{name}", topic=topic_id, query=query)
        return _or_group(name, terms[name], topic_id, query)

    return "".join(
        text if quoted else _NAME_RE.sub(replace, text) for quoted, text in _outside_quotes(query)
    )


def build_fts_query(
    query: str,
    exclude: str | None,
    terms: Mapping[str, Sequence[str]],
    *,
    topic_id: str | None = None,
) -> str:
    """The text SQLite sees for a topic: ``query`` expanded, and with an
    ``exclude`` folded in as ``(query) NOT (exclude)``."""
    q = expand_query(query, terms, topic_id=topic_id).strip()
    if exclude is None or not exclude.strip():
        return q
    x = expand_query(exclude, terms, topic_id=topic_id).strip()
    return f"({q}) NOT ({x})"


def _connect() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)


def validate_query(fts_query: str, *, topic_id: str | None = None) -> None:
    """The one validator of topics and searches: ``fts_query`` (expanded)
    within MAX_QUERY_TERMS and MAX_PHRASE_TOKENS (QueryTooLarge), then run
    against an empty FTS5 table with our columns and tokenizer; whatever
    SQLite rejects becomes QueryError("invalid query: ...")."""
    if not fts_query.strip():
        raise QueryError("invalid query: empty", topic=topic_id, query=fts_query)
    if "\x00" in fts_query:
        # SQLite would silently cut the query at the NUL and check the rest.
        raise QueryError("invalid query: contains a NUL character", topic=topic_id,
                         query=_shown(fts_query.replace("\x00", "\\x00")))
    _check_terms(fts_query, topic_id)
    db = _connect()
    try:
        db.execute(_SCHEMA.format(name="q"))
        db.execute("SELECT rowid FROM q WHERE q MATCH ?", (fts_query,)).fetchall()
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        raise QueryError(f"invalid query: {exc}", topic=topic_id,
                         query=_shown(fts_query)) from None
    finally:
        db.close()


# --------------------------------------------------------------------------
# Size limits
#
# FTS5's cost grows with the number of phrases of a query times the rows each
# one matches: 8,000 ORed words took seconds to minutes per search, and a
# 100 KB topic 97 s per poll of 10 items. Queries are measured before SQLite
# sees them: their length as written (before expansion, which multiplies it),
# then the words and phrases they hold once expanded, and the words in each
# phrase.

_SHOWN_CHARS = 60
_BAREWORD = r"[0-9A-Za-z_\x1a\x80-\U0010ffff]"
# Barewords outside strings; group 1 marks a column name (``title:``).
_BARE_RE = re.compile(rf"{_BAREWORD}+(\s*:)?")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})


def _shown(query: str) -> str:
    """``query`` as an error shows it: cut, so a huge query is one short line."""
    return query if len(query) <= _SHOWN_CHARS else query[:_SHOWN_CHARS] + "…"


def _check_length(query: str, topic_id: str | None) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryTooLarge(
            f"query too long: {len(query):,} characters, the limit is {MAX_QUERY_CHARS:,} "
            "characters as written", topic=topic_id)


def _check_terms(fts_query: str, topic_id: str | None) -> None:
    terms = 0
    for quoted, text in _outside_quotes(fts_query):
        if quoted:
            terms += 1
            if terms <= MAX_QUERY_TERMS:
                _check_phrase(text, topic_id)
        else:
            terms += sum(1 for m in _BARE_RE.finditer(text)
                         if not m.group(1) and m.group(0) not in _OPERATORS)
    if terms > MAX_QUERY_TERMS:
        raise QueryTooLarge(
            f"too many terms: {terms:,} words and phrases after @name expansion, "
            f"the limit is {MAX_QUERY_TERMS:,}", topic=topic_id)


def _check_phrase(string: str, topic_id: str | None) -> None:
    body = string[1:-1] if len(string) > 1 and string.endswith('"') else string[1:]
    words = len(ordered_tokens(_clean(body.replace('""', '"'))))
    if words > MAX_PHRASE_TOKENS:
        raise QueryTooLarge(
            f"phrase too long: {words:,} words in {_shown(string)}, the limit is "
            f"{MAX_PHRASE_TOKENS} words per phrase", topic=topic_id)


# --------------------------------------------------------------------------
# Reading a search: the query language, or plain words
#
# People paste headlines into `monitor search`: "Putin's war", "Russia-Ukraine",
# "U.S.", "Kazakhstan: OSCE" are not FTS5 (an apostrophe, a column filter
# "-Ukraine", a column "Kazakhstan"). A search is first read as a query of the
# topic language, which SQLite validates; only if SQLite rejects it is it read
# as plain words: each whitespace-separated word a quoted string (so its
# punctuation only separates tokens, as in the indexed text; a double quote
# too), all of them ANDed. A word that is exactly @name stays its term list, and a trailing *
# stays a prefix, as in term lists. Topics never get this fallback: a topic
# that is not a valid query is a config error.

QUERY = "query"
PLAIN_WORDS = "plain words"


@dataclass(frozen=True)
class SearchReading:
    """How a search was read: ``kind`` is QUERY or PLAIN_WORDS, ``fts_query``
    what SQLite runs, ``reason`` why the query reading was refused."""

    kind: str
    fts_query: str
    reason: str | None = None


def read_search(query: str, terms: Mapping[str, Sequence[str]]) -> SearchReading:
    """The reading of a search, as the section above says; validated.

    Raises QueryError only for an empty query, an undefined @name standing
    as a word of its own, or a size limit (QueryTooLarge): never for syntax."""
    if not query.strip():
        raise QueryError("invalid query: empty", query=query)
    try:
        fts = expand_query(query, terms)
        validate_query(fts)
        return SearchReading(QUERY, fts)
    except QueryTooLarge:
        raise
    except QueryError as exc:
        reason = exc.message.removeprefix("invalid query: ")
    fts = plain_words(query, terms)
    validate_query(fts)
    return SearchReading(PLAIN_WORDS, fts, reason)


def plain_words(text: str, terms: Mapping[str, Sequence[str]]) -> str:
    """``text`` as an FTS5 query of plain words (see read_search). A text
    without a single token becomes ``""``, which matches nothing."""
    _check_length(text, None)
    parts = []
    for word in text.split():
        if _NAME_RE.fullmatch(word):
            name = word[1:]
            if name not in terms:
                raise QueryError(f"undefined term list {word} (to search for the word, "
                                 f'write it in quotes: "{word}")', query=_shown(text))
            parts.append(_or_group(name, terms[name], None, text))
            continue
        # A double quote only separates tokens here, as it does in the text.
        cleaned = _clean(word.replace('"', " ")).strip()
        if ordered_tokens(cleaned.rstrip("*")):
            parts.append(_quote(cleaned))
    return " AND ".join(parts) if parts else '""'


# --------------------------------------------------------------------------
# Top-level clause splitting, for near misses, snippets and pruning
# (SQLite stays the parser: this only finds top-level AND and groups)

_SPECIAL = set('()"{}:+*^ \t\r\n\f\v')


def _tokens(query: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) tokens of ``query`` at nesting depth 0. Kinds: ``op``
    for AND/OR/NOT, ``unit`` for everything else (groups, strings, words,
    column filters and their punctuation)."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
            continue
        start = i
        if c == '"':
            i = _skip_string(query, i)
        elif c in "({":
            i = _skip_group(query, i)
        elif c in ")}:+*^-":
            i += 1
        else:
            while i < n and query[i] not in _SPECIAL:
                i += 1
        word = query[start:i]
        out.append((start, i, "op" if word in ("AND", "OR", "NOT") else "unit"))
    return out


def _skip_string(query: str, i: int) -> int:
    j, n = i + 1, len(query)
    while j < n:
        if query[j] == '"':
            if j + 1 < n and query[j + 1] == '"':
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_group(query: str, i: int) -> int:
    close = ")" if query[i] == "(" else "}"
    depth, j, n = 0, i, len(query)
    while j < n:
        c = query[j]
        if c == '"':
            j = _skip_string(query, j)
            continue
        if c == query[i]:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def split_clauses(query: str) -> list[str]:
    """The top-level ``AND`` clauses of an FTS5 query, in its own syntax.

    ``@kz AND (strike OR protest) AND NOT x`` is not FTS5, but
    ``@kz AND (strike OR protest*) NOT football AND title:x`` gives
    ``["@kz", "(strike OR protest*) NOT football", "title:x"]``: NOT binds
    tighter than AND, so it stays with its left operand. A query with a
    top-level OR is one clause; juxtaposed phrases (implicit AND) stay together.
    """
    toks = _tokens(query)
    if any(kind == "op" and query[s:e] == "OR" for s, e, kind in toks):
        return [query.strip()] if query.strip() else []
    clauses: list[str] = []
    start: int | None = None
    end = 0
    for s, e, kind in toks:
        if kind == "op" and query[s:e] == "AND":
            if start is not None:
                clauses.append(query[start:end])
            start = None
            continue
        if start is None:
            start = s
        end = e
    if start is not None:
        clauses.append(query[start:end])
    return clauses


def _strip_exclude(topic: Topic) -> str:
    """``topic.fts_query`` without the ``NOT (exclude)`` that build_fts_query
    appended, so its clauses line up with those of ``topic.query``."""
    if not topic.exclude or not topic.exclude.strip():
        return topic.fts_query
    toks = _tokens(topic.fts_query)
    if len(toks) == 3 and topic.fts_query[toks[1][0] : toks[1][1]] == "NOT":
        first = topic.fts_query[toks[0][0] : toks[0][1]]
        if first.startswith("(") and first.endswith(")"):
            return first[1:-1]
    return topic.fts_query


# --------------------------------------------------------------------------
# Pruning: why percolation stays cheap with long term lists
#
# FTS5 pays a few microseconds for every phrase of a query, and an expanded
# topic has hundreds (every spelling of every city). Most of them cannot match
# a given batch: their tokens are not in it. Before running a topic, every
# parenthesised OR-group of plain strings (what @name expands to) keeps only
# the alternatives whose tokens the batch contains; a group left empty becomes
# a phrase of a token the batch lacks. Removing alternatives that match nothing
# changes neither the rows, nor highlight(), nor snippet().

_STR = r'"(?:[^"]|"")*"\*?'
_GROUP_RE = re.compile(rf"\(\s*{_STR}(?:\s+OR\s+{_STR})*\s*\)")
_STR_RE = re.compile(r'"((?:[^"]|"")*)"(\*?)')


@dataclass(frozen=True)
class _Alt:
    text: str  # as written in the query: "body" or "body"*
    tokens: tuple[str, ...]  # as the tokenizer folds the body
    prefix: bool


_Group = tuple[_Alt, ...]
_Template = tuple[str | _Group, ...]
def _group_spans(fts: str) -> list[tuple[int, int]]:
    """Spans of the OR-groups of plain strings, found outside any string."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(fts)
    while i < n:
        c = fts[i]
        if c == '"':
            i = _skip_string(fts, i)
            continue
        if c == "(":
            m = _GROUP_RE.match(fts, i)
            if m:
                spans.append((i, m.end()))
                i = m.end()
                continue
        i += 1
    return spans


def _bodies(fts: str) -> set[str]:
    out: set[str] = set()
    for a, b in _group_spans(fts):
        out.update(m.group(1).replace('""', '"') for m in _STR_RE.finditer(fts, a, b))
    return out


def _tokenize(bodies: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The tokens FTS5 makes of each text, in order (via fts5vocab)."""
    texts = sorted(set(bodies))
    db = _connect()
    try:
        db.execute(_SCHEMA.format(name="s"))
        db.execute("CREATE VIRTUAL TABLE sv USING fts5vocab(s, instance)")
        db.executemany("INSERT INTO s(rowid, title) VALUES (?, ?)",
                       [(i + 1, _clean(t)) for i, t in enumerate(texts)])
        tokens: dict[int, list[str]] = {}
        for doc, term in db.execute("SELECT doc, term FROM sv ORDER BY doc, offset"):
            tokens.setdefault(int(doc), []).append(str(term))
    finally:
        db.close()
    return {t: tuple(tokens.get(i + 1, ())) for i, t in enumerate(texts)}


def _template(fts: str, tokens: Mapping[str, tuple[str, ...]],
              groups: dict[str, _Group] | None = None) -> _Template:
    """``fts`` cut into text and prunable groups; ``groups`` caches the
    groups by their text (topics share their term lists)."""
    parts: list[str | tuple[_Alt, ...]] = []
    last = 0
    seen = {} if groups is None else groups
    for a, b in _group_spans(fts):
        parts.append(fts[last:a])
        text = fts[a:b]
        group = seen.get(text)
        if group is None:
            group = seen[text] = tuple(
                _Alt(m.group(0), tokens.get(m.group(1).replace('""', '"'), ()), bool(m.group(2)))
                for m in _STR_RE.finditer(text))
        parts.append(group)
        last = b
    parts.append(fts[last:])
    return tuple(p for p in parts if p != "")


class _Vocab:
    """The distinct tokens of a batch, and templates rendered against them."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = set(terms)
        self._sorted: list[str] | None = None
        self.never = "zq0"
        while self.never in self.terms:
            self.never += "0"
        self._cache: dict[str, bool] = {}

    def _has_prefix(self, prefix: str) -> bool:
        if self._sorted is None:
            self._sorted = sorted(self.terms)
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)

    def can_match(self, alt: _Alt) -> bool:
        hit = self._cache.get(alt.text)
        if hit is None:
            if not alt.tokens:  # nothing to reason about: keep it
                hit = True
            else:
                *head, last = alt.tokens
                hit = all(t in self.terms for t in head) and (
                    self._has_prefix(last) if alt.prefix else last in self.terms)
            self._cache[alt.text] = hit
        return hit

    def render(self, template: _Template) -> str:
        out = []
        for part in template:
            if isinstance(part, str):
                out.append(part)
                continue
            kept = [a.text for a in part if self.can_match(a)]
            out.append("(" + " OR ".join(kept) + ")" if kept else f'("{self.never}")')
        return "".join(out)


# --------------------------------------------------------------------------
# Tokens without SQLite: the cheap first stage of percolation
#
# Indexing every item of a batch in FTS5 costs tens of microseconds per item,
# and nearly every item of a real feed matches no topic. So the tokens of each
# item are first computed in Python, exactly as the unicode61 tokenizer makes
# them, and only items that some topic could match go into FTS5. Exactness
# matters: a token set that missed a token the tokenizer makes would drop a
# true hit. The per-character rules (which characters separate tokens, what
# each one folds to) are therefore not re-implemented but read from SQLite
# itself, one character at a time, and remembered.

# ASCII bytes as unicode61 treats them: letters and digits are token bytes
# (letters lowered), every other ASCII byte separates. Bytes >= 0x80 (UTF-8
# of everything else) pass through and are judged by the learned table.
_ASCII_FOLD = bytes(c + 32 if 0x41 <= c <= 0x5A else
                    c if 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A or c >= 0x80 else 0x20
                    for c in range(256))
# Ranges learned in one go on first use: Latin, Greek, Cyrillic and the
# punctuation feeds use most. Any other character is learned when first seen.
_EAGER_RANGES = ((0x80, 0x530), (0x1E00, 0x1F00), (0x2000, 0x2070), (0x20A0, 0x20D0))


class _FoldTable(dict[int, str]):
    """Code point -> what unicode61 (TOKENIZER) turns it into inside a token:
    its folded form, "" for a mark it drops, or " " for a separator. A
    ``str.translate`` table that learns a character on first lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __missing__(self, code: int) -> str:
        with self._lock:
            if code not in self:
                if not self:
                    self._learn([c for a, b in _EAGER_RANGES for c in range(a, b)])
                if code not in self:
                    self._learn([code])
            return self[code]

    def _learn(self, codes: Sequence[int]) -> None:
        if self._db is None:
            self._db = _connect()
            self._db.execute(_SCHEMA.format(name="f"))
            self._db.execute("CREATE VIRTUAL TABLE fv USING fts5vocab(f, instance)")
        db = self._db
        probes = [c for c in codes if not 0xD800 <= c <= 0xDFFF and c != 0]
        db.execute("BEGIN")
        db.executemany("INSERT INTO f(rowid, title) VALUES (?, ?)",
                       [(c, f"a{chr(c)}b") for c in probes])
        seen: dict[int, list[str]] = {}
        for doc, term in db.execute("SELECT doc, term FROM fv ORDER BY doc, offset"):
            seen.setdefault(int(doc), []).append(str(term))
        db.execute("DELETE FROM f")
        db.execute("COMMIT")
        for c in codes:
            toks = seen.get(c, [])
            # "a<c>b" is one token "a<fold>b" when c is a token character;
            # anything else (two tokens, or a NUL/surrogate never probed) separates.
            one = len(toks) == 1 and toks[0].startswith("a") and toks[0].endswith("b")
            self[c] = toks[0][1:-1] if one else " "


_FOLD = _FoldTable()


_WORDS: dict[bytes, tuple[bytes, ...]] = {}  # non-ASCII word -> its tokens
_WORDS_MAX = 50_000  # feeds repeat their words, so lookups dominate (~6 MB at most)


def _fold_word(word: bytes) -> tuple[bytes, ...]:
    if word.isascii():
        return (word,)
    return tuple(t.encode() for t in word.decode().translate(_FOLD).split())


def token_bytes(text: str) -> set[bytes]:
    """The distinct tokens TOKENIZER makes of ``_clean(text)``, UTF-8
    encoded: working in bytes keeps the common all-ASCII case in C."""
    # "replace" turns a lone surrogate into "?", a separator, as _clean does.
    words = set(text.encode("utf-8", "replace").translate(_ASCII_FOLD).split())
    if text.isascii():
        return words
    odd = list(filterfalse(bytes.isascii, words))
    words.difference_update(odd)
    if len(_WORDS) > _WORDS_MAX:
        _WORDS.clear()
    for word in odd:
        tokens = _WORDS.get(word)
        if tokens is None:
            tokens = _WORDS[word] = _fold_word(word)
        words.update(tokens)
    return words


def text_tokens(text: str) -> set[str]:
    """The distinct tokens TOKENIZER makes of ``_clean(text)``."""
    return {t.decode() for t in token_bytes(text)}


def ordered_tokens(text: str) -> list[str]:
    """The tokens TOKENIZER makes of ``text``, in order."""
    words = text.encode().translate(_ASCII_FOLD).split()
    return [t.decode() for w in words for t in _fold_word(w)]


# --------------------------------------------------------------------------
# Necessary conditions: which tokens an item must have for a query to match
#
# A topic query is read (leniently: anything unexpected means "no condition")
# into a conjunction of clauses, each an OR of _Needs, every _Need a set of
# tokens that must all be present. It is implied by the query, never the
# other way round: NOT's right side is ignored, NEAR and phrases need their
# tokens but not their order, column filters are dropped, and where an OR of
# two conjunctions would multiply into too many clauses some are left out.
# Leaving a clause out only lets more items through to SQLite, which decides.


@dataclass(frozen=True)
class _Need:
    exact: frozenset[str]
    prefixes: frozenset[str]  # some token must start with each of these

    def key(self) -> tuple[str, bool]:
        """The token to look the need up by: the longest exact one, else
        the longest prefix (longer words are rarer)."""
        if self.exact:
            return max(self.exact, key=lambda t: (len(t), t)), False
        return max(self.prefixes, key=lambda t: (len(t), t)), True


_Cnf = tuple[frozenset[_Need], ...]  # () is "true": no condition
_MAX_CLAUSES = 24


class _Unparsable(Exception):
    pass


_LEX_RE = re.compile(r'\s+|"(?:[^"]|"")*"|[(){}:+*,^-]|[0-9A-Za-z_\x1a\x80-\U0010ffff]+')


def _lex(query: str) -> list[str]:
    found = _LEX_RE.findall(query)
    # findall skips what no alternative matches: anything skipped is a
    # character FTS5 would reject, or an unterminated string.
    if sum(map(len, found)) != len(query) or '"' in found:
        raise _Unparsable(query)
    return [t for t in found if not t.isspace()]


class _CnfReader:
    """Recursive descent over FTS5's query grammar (NOT binds tighter than
    AND, AND than OR; juxtaposition is AND), producing a _Cnf."""

    def __init__(self, query: str, *, groups: bool = True) -> None:
        # Each OR-group of strings (an expanded @list, shared by many topics)
        # stands as one token whose clause is read once and cached.
        self.toks: list[str] = []
        last = 0
        for a, b in _group_spans(query) if groups else ():
            self.toks += _lex(query[last:a])
            self.toks.append(_GROUP_MARK + query[a:b])
            last = b
        self.toks += _lex(query[last:])
        self.i = 0

    def read(self) -> _Cnf:
        cnf = self._or()
        if self.i != len(self.toks):
            raise _Unparsable(" ".join(self.toks[self.i:]))
        return cnf

    def _peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, want: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (want is not None and tok != want):
            raise _Unparsable(f"expected {want!r}")
        self.i += 1
        return tok

    def _or(self) -> _Cnf:
        parts = [self._and()]
        while self._peek() == "OR":
            self._take()
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        if not all(parts):
            return ()
        # An expanded @list is a long OR of single phrases: merged in one go.
        singles = [p[0] for p in parts if len(p) == 1]
        rest = [p for p in parts if len(p) > 1]
        cnf = (frozenset().union(*singles),) if singles else rest.pop()
        for p in rest:
            cnf = _cnf_or(cnf, p)
        return cnf

    def _and(self) -> _Cnf:
        parts = [self._not()]
        while True:
            tok = self._peek()
            if tok == "AND":
                self._take()
            elif tok is None or tok in ("OR", "NOT", ")", ","):
                return _cnf_and(*parts)
            parts.append(self._not())

    def _not(self) -> _Cnf:
        cnf = self._primary()
        while self._peek() == "NOT":
            self._take()
            self._primary()  # what must be absent says nothing of what is present
        return cnf

    def _primary(self) -> _Cnf:
        self._columns()
        tok = self._peek()
        if tok is not None and tok.startswith(_GROUP_MARK):
            self._take()
            return _group_cnf(tok[len(_GROUP_MARK):])
        if tok == "(":
            self._take()
            cnf = self._or()
            self._take(")")
            return cnf
        if tok == "NEAR" and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == "(":
            return self._near()
        return _cnf_of(self._phrase())

    def _columns(self) -> None:
        """Skip a column filter: ``col:``, ``-col:``, ``{a b}:``, ``-{a b}:``."""
        start = self.i
        if self._peek() == "-":
            self._take()
        tok = self._peek()
        if tok == "{":
            while self._take() != "}":
                pass
            self._take(":")
        elif tok is not None and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == ":":
            self.i += 2
        elif self.i != start:
            raise _Unparsable("-")

    def _near(self) -> _Cnf:
        self._take("NEAR")
        self._take("(")
        parts: list[_Cnf] = [()]
        while self._peek() not in (")", ",", None):
            parts.append(_cnf_of(self._phrase()))
        if self._peek() == ",":
            self._take()
            self._take()
        self._take(")")
        return _cnf_and(*parts)

    def _phrase(self) -> _Need:
        if self._peek() == "^":
            self._take()
        exact: set[str] = set()
        prefixes: set[str] = set()
        while True:
            tok = self._take()
            if tok in ("AND", "OR", "NOT") or not (tok.startswith('"') or _is_word(tok)):
                raise _Unparsable(tok)
            words = list(_phrase_tokens(tok))
            if self._peek() == "*":
                self._take()
                if words:
                    prefixes.add(words.pop())
            exact.update(words)
            if self._peek() != "+":
                return _Need(frozenset(exact), frozenset(prefixes - exact))
            self._take()


_GROUP_MARK = "\x00"  # never in a lexed token: _lex rejects NUL


@functools.lru_cache(maxsize=16384)
def _group_cnf(group: str) -> _Cnf:
    """The condition of one parenthesised OR-group of strings."""
    return _CnfReader(group, groups=False).read()


@functools.lru_cache(maxsize=65536)
def _phrase_tokens(tok: str) -> tuple[str, ...]:
    """The tokens of a string ("...", with "" for a quote) or bareword."""
    text = tok[1:-1].replace('""', '"') if tok.startswith('"') else tok
    return tuple(ordered_tokens(_clean(text)))


def _is_word(tok: str) -> bool:
    return _LEX_RE.fullmatch(tok) is not None and tok[0] not in '"(){}:+*,^-' \
        and not tok.isspace()


def _cnf_of(need: _Need) -> _Cnf:
    return (frozenset({need}),) if need.exact or need.prefixes else ()


def _cnf_and(*parts: _Cnf) -> _Cnf:
    if len(parts) == 1:
        return parts[0]
    every = tuple(dict.fromkeys(c for p in parts for c in p))
    return tuple(sorted(every, key=len)[:_MAX_CLAUSES])


def _cnf_or(a: _Cnf, b: _Cnf) -> _Cnf:
    """(A1 & A2 ...) | (B1 & B2 ...) implies every Ai | Bj; with too many
    pairs, only those of the narrowest clauses are kept (still implied)."""
    if not a or not b:
        return ()
    xs, ys = sorted(a, key=len), sorted(b, key=len)
    while len(xs) * len(ys) > _MAX_CLAUSES:
        if len(xs) >= len(ys):
            xs.pop()
        else:
            ys.pop()
    return tuple(dict.fromkeys(x | y for x in xs for y in ys))


def necessary(fts_query: str) -> _Cnf:
    """What every item matching ``fts_query`` contains; () when unknown."""
    try:
        return _CnfReader(fts_query).read()
    except (_Unparsable, IndexError):
        return ()


_HEAD = 3
_CHECKED_MAX = 100_000  # distinct tokens remembered per matcher (~8 MB at most)


class _BatchTokens:
    """The distinct tokens of a batch, and which of them start with a prefix."""

    def __init__(self, vocab: set[bytes]) -> None:
        self.vocab = vocab
        self._sorted: list[bytes] | None = None
        self._starting: dict[bytes, frozenset[bytes]] = {}

    def ordered(self) -> list[bytes]:
        if self._sorted is None:
            self._sorted = sorted(self.vocab)
        return self._sorted

    def starting(self, prefix: bytes) -> frozenset[bytes]:
        found = self._starting.get(prefix)
        if found is None:
            ordered = self.ordered()
            j = k = bisect.bisect_left(ordered, prefix)
            while k < len(ordered) and ordered[k].startswith(prefix):
                k += 1
            found = self._starting[prefix] = frozenset(ordered[j:k])
        return found


class _Index:
    """Which topics an item can possibly match, from its tokens alone.

    Every _Need of a topic's necessary condition (see necessary()) is looked
    up by one of its tokens; an item reaches a topic when each clause of the
    condition has a need whose tokens the item has all of. Only those (topic,
    item) pairs reach SQLite. A topic is listed under the needs of one chosen
    clause only and its other clauses are checked as set intersections, so
    the work per item follows the needs it meets, not the number of topics."""

    def __init__(self, conditions: Sequence[_Cnf]) -> None:
        ids: dict[_Need, int] = {}
        self.needs: list[_Need] = []
        self.always: list[int] = []  # topics with nothing to go by
        self.key_of: dict[int, list[int]] = {}  # need -> topics keyed by it
        self.others: list[tuple[frozenset[int], ...]] = []  # per topic, its other clauses
        for n, cnf in enumerate(conditions):
            clauses = [frozenset(self._id(need, ids) for need in c) for c in cnf]
            if not clauses:
                self.always.append(n)
                self.others.append(())
                continue
            key = min(clauses, key=self._weight)
            for i in key:
                self.key_of.setdefault(i, []).append(n)
            self.others.append(tuple(c for c in clauses if c is not key))
        # Items' tokens are UTF-8 bytes (see token_bytes), so are these.
        self.exact: dict[bytes, list[int]] = {}
        prefixes: dict[bytes, list[int]] = {}
        for i, need in enumerate(self.needs):
            token, is_prefix = need.key()
            (prefixes if is_prefix else self.exact).setdefault(token.encode(), []).append(i)
        self.prefixes = prefixes
        # Prefixes by their first _HEAD bytes: a token is compared only with
        # those sharing its head (and with the few shorter ones).
        self.by_head: dict[bytes, list[tuple[bytes, list[int]]]] = {}
        self.short: list[tuple[bytes, list[int]]] = []
        for prefix, needs in prefixes.items():
            if len(prefix) >= _HEAD:
                self.by_head.setdefault(prefix[:_HEAD], []).append((prefix, needs))
            else:
                self.short.append((prefix, needs))
        # token -> the needs its prefixes find; every token ever seen is looked
        # at once (feeds repeat their words), so a batch costs a set difference.
        self._lock = threading.Lock()
        self._checked: set[bytes] = set()
        self._prefixed: dict[bytes, list[int]] = {}
        self.full = [(frozenset(t.encode() for t in n.exact),
                      tuple(t.encode() for t in n.prefixes)) for n in self.needs]

    def _id(self, need: _Need, ids: dict[_Need, int]) -> int:
        i = ids.get(need)
        if i is None:
            i = ids[need] = len(self.needs)
            self.needs.append(need)
        return i

    def _weight(self, clause: frozenset[int]) -> tuple[int, int]:
        """Lower is a better key: fewer needs met by short or prefix words
        (which common text has more often), then fewer needs."""
        loose = 0
        for i in clause:
            token, is_prefix = self.needs[i].key()
            loose += is_prefix or len(token) <= 4
        return loose, len(clause)

    def candidates(self, token_sets: Sequence[set[bytes] | None]) -> dict[int, list[int]]:
        """topic index -> indices of the items that topic may match, in
        order. An item whose tokens are unknown (None) goes to every topic."""
        batch = _BatchTokens(set().union(*(s for s in token_sets if s is not None)))
        by_token = self._batch_needs(batch)
        out: dict[int, list[int]] = {}
        for i, tokens in enumerate(token_sets):
            if tokens is None:
                reached: Iterable[int] = range(len(self.others))
            else:
                reached = self._topics_of(self._met(tokens, by_token, batch))
                if self.always:
                    reached = [*self.always, *reached]
            for n in reached:
                out.setdefault(n, []).append(i)
        return {n: out[n] for n in sorted(out)}

    def _batch_needs(self, batch: _BatchTokens) -> dict[bytes, list[int]]:
        """For every token of the batch, the needs looked up by it."""
        vocab = batch.vocab
        by_token = {t: list(self.exact[t]) for t in vocab & self.exact.keys()}
        if not self.prefixes:
            return by_token
        with self._lock:
            self._learn_prefixes(vocab)
            for t in vocab & self._prefixed.keys():
                by_token.setdefault(t, []).extend(self._prefixed[t])
        return by_token

    def _learn_prefixes(self, vocab: set[bytes]) -> None:
        new = vocab - self._checked
        if not new:
            return
        if len(self._checked) > _CHECKED_MAX:
            self._checked, self._prefixed = set(), {}
            new = vocab
        by_head, short = self.by_head, self.short
        for t in new:
            found = [i for p, needs in by_head.get(t[:_HEAD], ()) if t.startswith(p)
                     for i in needs]
            if short:
                found += [i for p, needs in short if t.startswith(p) for i in needs]
            if found:
                self._prefixed[t] = found
        self._checked |= new

    def _met(self, tokens: set[bytes], by_token: Mapping[bytes, list[int]],
             batch: _BatchTokens) -> set[int]:
        met: set[int] = set()
        full = self.full
        for t in tokens & by_token.keys():
            for i in by_token[t]:
                if i in met:
                    continue
                exact, prefixes = full[i]
                if len(exact) + len(prefixes) == 1 or (  # its one token found it
                        exact <= tokens
                        and all(not tokens.isdisjoint(batch.starting(p)) for p in prefixes)):
                    met.add(i)
        return met

    def _topics_of(self, met: set[int]) -> list[int]:
        if not met:
            return []
        reached: set[int] = set()
        for i in met:
            keyed = self.key_of.get(i)
            if keyed:
                reached.update(keyed)
        return [n for n in reached if all(not met.isdisjoint(c) for c in self.others[n])]


# --------------------------------------------------------------------------
# Percolation


@dataclass(frozen=True)
class TopicExplanation:
    """How one topic treats a text: the answer of ``monitor topics test``.

    ``close_clauses`` (only for a topic that did not match) are the top-level
    AND clauses of its query, in the config's own syntax (e.g. ``@kazakhstan``),
    that the text does satisfy; ``excluded`` says the query matched but the
    topic's ``exclude`` removed the text."""

    topic_id: str
    name: str
    matched: bool
    terms: tuple[str, ...]
    snippet: str
    close_clauses: tuple[str, ...] = ()
    excluded: bool = False


def _clean(text: str | None) -> str:
    """Text SQLite can store whole: no lone surrogates (UTF-8 encoding fails),
    no NUL (highlight() would cut there), none of our highlight markers."""
    if not text:
        return ""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")
    if HIGHLIGHT_OPEN in text or HIGHLIGHT_CLOSE in text:
        text = _MARKER_RUN_RE.sub(lambda m: m.group(0) + " ", text)
    return text


def entry_from_text(text: str, title: str | None = None) -> Entry:
    """An Entry for a free text (``monitor topics test``, topic examples).

    The whole text goes into ``summary`` and its first non-empty line (or the
    given ``title``) into ``title``, so queries with ``title:`` filters work on
    a one-line headline as they would on a feed item."""
    if title is None:
        title = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return Entry(key="text", title=title, summary=text, url=None,
                 published_at=datetime.fromtimestamp(0, UTC))


def _entry_tokens(entry: Entry) -> set[bytes] | None:
    """The tokens of what _Batch indexes for ``entry``; None when the entry
    is too odd to say (the FTS5 stage then decides, and logs it)."""
    try:
        # _clean only changes what separates tokens: no need to run it here.
        return token_bytes((entry.title or "") + " " + (entry.summary or ""))
    except Exception:
        return None


def _terms_of(*highlighted: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in highlighted:
        for m in _MARKED_RE.finditer(text or ""):
            word = " ".join(m.group(1).split()).lower()
            if word and word not in seen:
                seen[word] = None
                if len(seen) >= MAX_TERMS:
                    return tuple(seen)
    return tuple(seen)


class _Batch:
    """A batch of entries in a fresh in-memory FTS5 table; closed after use."""

    # SQLite 3.40's snippet() (and in rarer cases highlight()) fails with
    # "database disk image is malformed" on some valid NEAR queries whose
    # phrases overlap, e.g. NEAR("air strike" strike). A hit must not be lost
    # to its evidence: each query falls back to fewer auxiliary functions.
    _COLUMNS = (
        "highlight(p, 0, ?1, ?2), highlight(p, 1, ?1, ?2), snippet(p, -1, ?1, ?2, ?3, ?4)",
        "highlight(p, 0, ?1, ?2), highlight(p, 1, ?1, ?2), NULL",
        "NULL, NULL, NULL",
    )
    _HITS_WHERE = "p MATCH ?5 ORDER BY rowid"
    _ROW_WHERE = "p MATCH ?5 AND rowid = ?6"

    def __init__(self, entries: Sequence[Entry], rowids: Sequence[int] | None = None) -> None:
        self.db = _connect()
        self.db.execute(_SCHEMA.format(name="p"))
        self.keys: dict[int, str] = {}
        self.db.execute("BEGIN")
        for i, entry in enumerate(entries):
            self._add(rowids[i] if rowids is not None else i + 1, entry)
        self.db.execute("COMMIT")

    def vocab(self) -> _Vocab:
        self.db.execute("CREATE VIRTUAL TABLE pv USING fts5vocab(p, row)")
        return _Vocab(str(t) for (t,) in self.db.execute("SELECT term FROM pv"))

    def _add(self, rowid: int, entry: Entry) -> None:
        try:
            title, summary = _clean(entry.title), _clean(entry.summary)
            self.db.execute("INSERT INTO p(rowid, title, summary) VALUES (?, ?, ?)",
                            (rowid, title, summary))
            self.keys[rowid] = entry.key
        except Exception as exc:  # catalogue B8: one bad entry never loses the batch
            log.warning("entry %r skipped by the matcher: %s", getattr(entry, "key", "?"), exc)

    def _rows(self, where: str, *params: object) -> list[_Row]:
        args = (HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, SNIPPET_ELLIPSIS, SNIPPET_TOKENS, *params)
        for n, columns in enumerate(self._COLUMNS):
            try:
                found = self.db.execute(f"SELECT rowid, {columns} FROM p WHERE {where}",
                                        args).fetchall()
                break
            except sqlite3.DatabaseError:
                if n == len(self._COLUMNS) - 1:
                    raise
        rows = [_Row(int(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""))
                for r in found]
        if n:
            rows = [self._plain_evidence(r) for r in rows]
        return rows

    def _plain_evidence(self, row: _Row) -> _Row:
        """What snippet() would give, made in Python from the highlights (or
        the text itself when there are none)."""
        title_hl, summary_hl = row.title_hl, row.summary_hl
        if not (title_hl or summary_hl):
            title_hl, summary_hl = self.db.execute(
                "SELECT title, summary FROM p WHERE rowid = ?", (row.rowid,)).fetchone()
        return _Row(row.rowid, title_hl or "", summary_hl or "",
                    _window(summary_hl if HIGHLIGHT_OPEN in (summary_hl or "") else
                            title_hl or summary_hl or ""))

    def hits(self, fts_query: str) -> list[_Row]:
        return self._rows(self._HITS_WHERE, fts_query)

    def row(self, fts_query: str, rowid: int) -> _Row | None:
        try:
            rows = self._rows(self._ROW_WHERE, fts_query, rowid)
        except sqlite3.Error:
            return None
        return rows[0] if rows else None

    def any(self, fts_query: str) -> bool:
        try:
            return self.db.execute("SELECT 1 FROM p WHERE p MATCH ? LIMIT 1",
                                   (fts_query,)).fetchone() is not None
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self.db.close()


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


@dataclass(frozen=True)
class _Row:
    rowid: int
    title_hl: str
    summary_hl: str
    snippet: str


@dataclass(frozen=True)
class _Plan:
    """What the matcher precomputes per topic: the clauses of its query
    (config syntax and expanded) for snippets and near misses, and the
    prunable templates of the query and of its clauses."""

    topic: Topic
    clauses: tuple[str, ...]  # as written in feeds.yaml
    fts_clauses: tuple[str, ...]  # the same, expanded; () when they do not line up
    template: _Template = ()
    clause_templates: tuple[_Template, ...] = ()

    @classmethod
    def of(cls, topic: Topic) -> _Plan:
        original = split_clauses(topic.query)
        expanded = split_clauses(_strip_exclude(topic))
        if len(original) < 2 or len(original) != len(expanded):
            return cls(topic, tuple(original), ())
        return cls(topic, tuple(c.strip() for c in original), tuple(expanded))

    def with_templates(self, tokens: Mapping[str, tuple[str, ...]],
                       groups: dict[str, _Group]) -> _Plan:
        clause_templates = tuple(_template(c, tokens, groups) for c in self.fts_clauses)
        return _Plan(self.topic, self.clauses, self.fts_clauses,
                     _template(self.topic.fts_query, tokens, groups), clause_templates)


def _evidence(batch: _Batch, fts_clauses: Sequence[str],
              row: _Row) -> tuple[tuple[str, ...], str]:
    """The matched words of a hit and its snippet.

    The words come from the whole query. The snippet's window comes from the
    top-level AND clause with the fewest distinct matched words: in "@place
    AND (strike OR protest)" that is the topic's own vocabulary, not the place
    names a long summary repeats. Within that window every word the whole
    query matched is marked."""
    terms = _terms_of(row.title_hl, row.summary_hl)
    best: tuple[int, str] | None = None
    for fts_clause in fts_clauses:
        sub = batch.row(fts_clause, row.rowid)
        if sub is None:
            continue
        n = len(_terms_of(sub.title_hl, sub.summary_hl))
        if n and (best is None or n <= best[0]):
            best = (n, sub.snippet)
    if best is None:
        return terms, row.snippet
    window = _rehighlight(best[1], (row.title_hl, row.summary_hl))
    return terms, window or best[1]


def _unmark(highlighted: str) -> tuple[str, list[int]]:
    """``highlighted`` without markers, and for each plain character its index
    in ``highlighted`` (plus one entry for the end)."""
    plain: list[str] = []
    where: list[int] = []
    pos = 0
    for m in _MARKER_RE.finditer(highlighted):
        plain.append(highlighted[pos:m.start()])
        where.extend(range(pos, m.start()))
        pos = m.end()
    plain.append(highlighted[pos:])
    where.extend(range(pos, len(highlighted) + 1))
    return "".join(plain), where


def _rehighlight(snippet: str, columns: Sequence[str]) -> str | None:
    """The window of ``snippet`` cut from a column highlighted by the whole
    query; None when it cannot be found (the caller keeps ``snippet``)."""
    body = snippet.removeprefix(SNIPPET_ELLIPSIS).removesuffix(SNIPPET_ELLIPSIS)
    fragment, _ = _unmark(body)
    if not fragment.strip():
        return None
    for highlighted in columns:
        plain, where = _unmark(highlighted)
        start = plain.find(fragment)
        if start < 0:
            continue
        end = start + len(fragment)
        a, b = where[start], where[end - 1] + 1
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


class Matcher:
    """Matches batches of entries against a fixed set of topics.

    Uses ``topic.fts_query`` (already expanded and validated by the config).
    Thread-safe: every call works on its own in-memory database."""

    def __init__(self, topics: Sequence[Topic]) -> None:
        self.topics: tuple[Topic, ...] = tuple(topics)
        plans = [_Plan.of(t) for t in self.topics]
        bodies: set[str] = set()
        for p in plans:
            for q in (p.topic.fts_query, *p.fts_clauses):
                bodies |= _bodies(q)
        tokens = _tokenize(bodies)
        groups: dict[str, _Group] = {}
        self._plans = tuple(p.with_templates(tokens, groups) for p in plans)
        self._index = _Index([necessary(t.fts_query) for t in self.topics])

    def match(self, entries: Sequence[Entry]) -> list[Hit]:
        """Every (topic, entry) hit of the batch, in topic order then entry
        order. A topic whose query SQLite rejects at run time is logged and
        skipped; an entry that cannot be indexed is logged and skipped.

        Items no topic can match (by their tokens, see _Index) never reach
        SQLite; the others are indexed once and each topic's pruned query runs
        over them."""
        if not entries or not self.topics:
            return []
        tokens = [_entry_tokens(e) for e in entries]
        wanted = self._index.candidates(tokens)
        if not wanted:
            return []
        rows = sorted({i for items in wanted.values() for i in items})
        batch = _Batch([entries[i] for i in rows], [i + 1 for i in rows])
        try:
            known = [tokens[i] for i in rows]
            vocab = (batch.vocab() if any(t is None for t in known) else
                     _Vocab(t.decode() for t in set().union(*(t for t in known if t))))
            out: list[Hit] = []
            for n in wanted:
                out.extend(self._topic_hits(batch, vocab, self._plans[n]))
            return out
        finally:
            batch.close()

    @staticmethod
    def _topic_hits(batch: _Batch, vocab: _Vocab, plan: _Plan) -> list[Hit]:
        try:
            rows = batch.hits(vocab.render(plan.template))
        except sqlite3.Error as exc:
            log.warning("topic %s skipped: invalid query: %s", plan.topic.id, exc)
            return []
        clauses = [vocab.render(t) for t in plan.clause_templates] if rows else []
        out = []
        for row in rows:
            key = batch.keys.get(row.rowid)
            if key is not None:
                terms, snippet = _evidence(batch, clauses, row)
                out.append(Hit(topic_id=plan.topic.id, entry_key=key, terms=terms,
                               snippet=snippet))
        return out

    def explain(self, text: str, title: str | None = None) -> list[TopicExplanation]:
        """For every topic: does ``text`` match, on which words, and if not,
        which top-level AND clauses of its query it does satisfy.
        The text is indexed as entry_from_text() describes."""
        batch = _Batch([entry_from_text(text, title)])
        try:
            return [self._explain_one(batch, plan) for plan in self._plans]
        finally:
            batch.close()

    @staticmethod
    def _explain_one(batch: _Batch, plan: _Plan) -> TopicExplanation:
        topic = plan.topic
        row = batch.row(topic.fts_query, 1)
        if row is not None:
            terms, snippet = _evidence(batch, plan.fts_clauses, row)
            return TopicExplanation(topic.id, topic.name, True, terms, snippet)
        close = tuple(c for c, x in zip(plan.clauses, plan.fts_clauses, strict=False)
                      if batch.any(x))
        excluded = bool(topic.exclude and topic.exclude.strip()) and batch.any(
            _strip_exclude(topic))
        return TopicExplanation(topic.id, topic.name, False, (), "", close, excluded)
