"""The topic and search language: what a query means before anything runs it.

Owns the language of DESIGN.md ("Topic language"): a topic query is an SQLite
FTS5 query in which ``@name`` stands for an OR-group of a named term list.
SQLite parses and validates every query; the only syntax handled here is the
``@name`` substitution, the size limits, the reading of a search as plain words
when it is not a query, and a split of a query at its top-level ``AND`` (for
near misses and snippets). Also owns the settings every FTS5 table of the
project shares (TOKENIZER, the ``title``/``summary`` columns), the highlight
markers of matched words, and the one function that splits marked text into
runs (``segments``), so the store, the matcher, the digest and the CLI agree.

Holds no state: every validation opens its own in-memory SQLite connection
and closes it. It must not match, store or import anything above it (the
matcher, the store, the config).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from monitor.errors import QueryError, QueryTooLarge

__all__ = [
    "FTS_COLUMNS",
    "FTS_SCHEMA",
    "HIGHLIGHT_CLOSE",
    "HIGHLIGHT_OPEN",
    "MAX_PHRASE_TOKENS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "PLAIN_WORDS",
    "QUERY",
    "TOKENIZER",
    "SearchReading",
    "build_fts_query",
    "expand_query",
    "marked",
    "memory_db",
    "plain_words",
    "read_search",
    "scrub",
    "segments",
    "skip_string",
    "split_clauses",
    "strip_exclude",
    "validate_query",
]

TOKENIZER = "unicode61 remove_diacritics 2"
# Every FTS5 table that runs topic queries has these columns (``title:``
# filters name them) and this tokenizer; ``name`` is the table's.
FTS_SCHEMA = (f"CREATE VIRTUAL TABLE {{name}} USING fts5(title, summary, article, "
              f"tokenize='{TOKENIZER}')")
FTS_COLUMNS = ("title", "summary", "article")

# Matched words in snippets are wrapped in these markers; the digest and the
# CLI render them (bold in a terminal, <mark> in HTML). Plain ASCII so the
# stored snippet stays readable in sqlite3/Datasette; feed text is scrubbed of
# the same sequences before indexing (see scrub), so every marker is ours.
HIGHLIGHT_OPEN = "[["
HIGHLIGHT_CLOSE = "]]"

# Size limits of the topic language, for topics and searches alike (see
# "Size limits"). The shipped feeds.yaml stays well under them: its longest
# query is 687 characters as written (it names some forty entities) and 584
# terms once expanded, and its longest term has 7 words.
MAX_QUERY_CHARS = 4_000  # a query or an exclude, as written
MAX_QUERY_TERMS = 1_000  # words and "phrases", after @name expansion
MAX_PHRASE_TOKENS = 64  # words in one "phrase"

_NAME_RE = re.compile(r"@([A-Za-z0-9_-]+)")
# A space after every "[" or "]" that another follows: "[[[x]]]" -> "[ [ [x] ] ]".
_MARKER_RUN_RE = re.compile(r"\[(?=\[)|\](?=\])")
_MARKED_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + r"(.*?)" + re.escape(HIGHLIGHT_CLOSE), re.S)


def memory_db() -> sqlite3.Connection:
    """A private in-memory database, in autocommit mode, usable from any thread."""
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)


# --------------------------------------------------------------------------
# Highlight markers


def scrub(text: str | None) -> str:
    """Text SQLite can store whole: no lone surrogates (UTF-8 encoding fails),
    no NUL (highlight() would cut there), none of our highlight markers."""
    if not text:
        return ""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")
    if HIGHLIGHT_OPEN in text or HIGHLIGHT_CLOSE in text:
        text = _MARKER_RUN_RE.sub(lambda m: m.group(0) + " ", text)
    return text


def segments(text: str) -> list[tuple[str, bool]]:
    """A marked text (a stored snippet, a highlighted column) as (text,
    matched) runs, in order; stray markers stay text, an empty marked run
    is left out."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _MARKED_RE.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        if m.group(1):
            out.append((m.group(1), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def marked(text: str) -> list[str]:
    """Only the marked runs of ``text`` as segments() reads them (empty ones
    included): the matcher's evidence wants the words alone, once per hit."""
    return _MARKED_RE.findall(text)


# --------------------------------------------------------------------------
# @name expansion and validation


def _quote(term: str) -> str:
    """A term as an FTS5 string; a trailing ``*`` makes it a prefix query."""
    prefix = term.endswith("*")
    body = term[:-1].rstrip() if prefix else term
    quoted = '"' + body.replace('"', '""') + '"'
    return quoted + "*" if prefix else quoted


# A list term that is one plain word (letters and digits, maybe a final *) and
# not an operator is written bare: FTS5 reads ``w`` as it reads ``"w"``, and
# the normalised matching (monitor.normquery) widens a bare word to its forms
# while it keeps a quoted string exact. A term written in quotes in feeds.yaml
# (``'"Kurmanov"'``) stays that string: the exact marker, in a list as in a query.
_BARE_TERM_RE = re.compile(r"[^\W_]+\*?")
_QUOTED_TERM_RE = re.compile(r'"(?:[^"]|"")+"\*?')
_KEYWORDS = frozenset({"AND", "OR", "NOT", "NEAR"})


def _list_term(term: str) -> str:
    if _QUOTED_TERM_RE.fullmatch(term):
        return term
    if _BARE_TERM_RE.fullmatch(term) and term.rstrip("*").upper() not in _KEYWORDS:
        return term
    return _quote(term)


def _or_group(name: str, terms: Sequence[str], topic_id: str | None, query: str) -> str:
    cleaned = [t.strip() for t in terms if t.strip().rstrip("*").strip()]
    if not cleaned:
        raise QueryError(f"term list @{name} is empty", topic=topic_id, query=query)
    return "(" + " OR ".join(_list_term(t) for t in cleaned) + ")"


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
        j = skip_string(query, i)
        yield True, query[i:j]
        i = start = j
    if start < n:
        yield False, query[start:]


def expand_query(
    query: str, terms: Mapping[str, Sequence[str]], *, topic_id: str | None = None
) -> str:
    """Replace every ``@name`` outside "quoted phrases" by the OR-group of
    ``terms[name]``: ``(t1 OR t2* OR "multi word phrase" OR "t3")``, a
    one-word term bare, any other quoted (see _list_term).

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
    db = memory_db()
    try:
        _check_terms(fts_query, topic_id, db)
        try:
            db.execute(FTS_SCHEMA.format(name="q"))
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
# What TOKENIZER makes of ASCII text: a token of each run of letters and
# digits, every other ASCII character separates.
_ASCII_TOKEN_RE = re.compile(r"[0-9A-Za-z]+")


def _shown(query: str) -> str:
    """``query`` as an error shows it: cut, so a huge query is one short line."""
    return query if len(query) <= _SHOWN_CHARS else query[:_SHOWN_CHARS] + "…"


def _check_length(query: str, topic_id: str | None) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryTooLarge(
            f"query too long: {len(query):,} characters, the limit is {MAX_QUERY_CHARS:,} "
            "characters as written", topic=topic_id)


def _check_terms(fts_query: str, topic_id: str | None, db: sqlite3.Connection) -> None:
    terms = 0
    for quoted, text in _outside_quotes(fts_query):
        if quoted:
            terms += 1
            if terms <= MAX_QUERY_TERMS:
                _check_phrase(text, topic_id, db)
        else:
            terms += sum(1 for m in _BARE_RE.finditer(text)
                         if not m.group(1) and m.group(0) not in _OPERATORS)
    if terms > MAX_QUERY_TERMS:
        raise QueryTooLarge(
            f"too many terms: {terms:,} words and phrases after @name expansion, "
            f"the limit is {MAX_QUERY_TERMS:,}", topic=topic_id)


def _check_phrase(string: str, topic_id: str | None, db: sqlite3.Connection) -> None:
    body = string[1:-1] if len(string) > 1 and string.endswith('"') else string[1:]
    text = scrub(body.replace('""', '"'))
    most = _most_tokens(text)
    if most <= MAX_PHRASE_TOKENS:
        return
    words = most if text.isascii() else _count_tokens(text, db)
    if words > MAX_PHRASE_TOKENS:
        raise QueryTooLarge(
            f"phrase too long: {words:,} words in {_shown(string)}, the limit is "
            f"{MAX_PHRASE_TOKENS} words per phrase", topic=topic_id)


def _most_tokens(text: str) -> int:
    """At least as many as the tokens TOKENIZER makes of ``text`` (scrubbed),
    and exactly that many for ASCII: each non-ASCII character adds at least
    one UTF-8 byte and can add at most one token (as a separator), so SQLite
    need only count a phrase this puts past the limit."""
    return len(_ASCII_TOKEN_RE.findall(text)) + len(text.encode()) - len(text)


def _has_tokens(text: str, db: sqlite3.Connection) -> bool:
    if _ASCII_TOKEN_RE.search(text):
        return True
    return not text.isascii() and _count_tokens(text, db) > 0


def _count_tokens(text: str, db: sqlite3.Connection) -> int:
    """How many tokens TOKENIZER makes of ``text`` (scrubbed), by SQLite
    itself, in a table of ``db`` made on first use."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'w'").fetchone() is None:
        db.execute(FTS_SCHEMA.format(name="w"))
        db.execute("CREATE VIRTUAL TABLE wv USING fts5vocab(w, instance)")
    db.execute("DELETE FROM w")
    db.execute("INSERT INTO w(rowid, title) VALUES (1, ?)", (text,))
    return int(db.execute("SELECT count(*) FROM wv").fetchone()[0])


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
    db = memory_db()
    try:
        for word in text.split():
            if _NAME_RE.fullmatch(word):
                name = word[1:]
                if name not in terms:
                    raise QueryError(f"undefined term list {word} (to search for the word, "
                                     f'write it in quotes: "{word}")', query=_shown(text))
                parts.append(_or_group(name, terms[name], None, text))
                continue
            # A double quote only separates tokens here, as it does in the text.
            cleaned = scrub(word.replace('"', " ")).strip()
            if _has_tokens(cleaned.rstrip("*"), db):
                parts.append(_quote(cleaned))
    finally:
        db.close()
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
            i = skip_string(query, i)
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


def skip_string(query: str, i: int) -> int:
    """The index just past the FTS5 string that opens at ``query[i]`` (a
    double quote); the end of ``query`` when it is unterminated."""
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
            j = skip_string(query, j)
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


def strip_exclude(fts_query: str, exclude: str | None) -> str:
    """``fts_query`` without the ``NOT (exclude)`` that build_fts_query
    appended, so its clauses line up with those of the query as written."""
    if not exclude or not exclude.strip():
        return fts_query
    toks = _tokens(fts_query)
    if len(toks) == 3 and fts_query[toks[1][0] : toks[1][1]] == "NOT":
        first = fts_query[toks[0][0] : toks[0][1]]
        if first.startswith("(") and first.endswith(")"):
            return first[1:-1]
    return fts_query
