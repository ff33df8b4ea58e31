"""Topic matching: ``@name`` expansion, query validation and FTS5 percolation.

Owns the topic language of DESIGN.md ("Topic language"): a topic query is an
SQLite FTS5 query in which ``@name`` stands for an OR-group of a named term
list. SQLite parses and validates every query; the only syntax handled here is
the ``@name`` substitution and, for ``explain()``, a split of a query at its
top-level ``AND`` so that a near miss can say which parts did match.

Matching is percolation: a batch of entries goes into a fresh in-memory FTS5
table with the columns ``title`` and ``summary`` and every topic query runs
once against it. Each hit carries the matched words (from ``highlight()``) and
a short ``snippet()`` with the words wrapped in HIGHLIGHT_OPEN/HIGHLIGHT_CLOSE,
so "why did this match?" always has an answer. Before a topic runs, its
@name groups are pruned to the alternatives the batch's own tokens can match
(see "Pruning" below), so long term lists cost little. No HTTP, no persistent
storage.
"""

from __future__ import annotations

import bisect
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.errors import QueryError
from monitor.types import Entry, Hit, Topic

__all__ = [
    "HIGHLIGHT_CLOSE",
    "HIGHLIGHT_OPEN",
    "MAX_TERMS",
    "SNIPPET_TOKENS",
    "TOKENIZER",
    "Matcher",
    "TopicExplanation",
    "build_fts_query",
    "entry_from_text",
    "expand_query",
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

_NAME_RE = re.compile(r"@([A-Za-z0-9_-]+)")
# A space after every "[" or "]" that another follows: "[[[x]]]" -> "[ [ [x] ] ]".
_MARKER_RUN_RE = re.compile(r"\[(?=\[)|\](?=\])")
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

    An undefined name raises QueryError naming the topic and the name."""

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
    """Run ``fts_query`` against an empty FTS5 table with our columns and
    tokenizer; whatever SQLite rejects becomes QueryError("invalid query: ...")."""
    if not fts_query.strip():
        raise QueryError("invalid query: empty", topic=topic_id, query=fts_query)
    if "\x00" in fts_query:
        # SQLite would silently cut the query at the NUL and check the rest.
        raise QueryError("invalid query: contains a NUL character", topic=topic_id,
                         query=fts_query.replace("\x00", "\\x00"))
    db = _connect()
    try:
        db.execute(_SCHEMA.format(name="q"))
        db.execute("SELECT rowid FROM q WHERE q MATCH ?", (fts_query,)).fetchall()
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        raise QueryError(f"invalid query: {exc}", topic=topic_id, query=fts_query) from None
    finally:
        db.close()


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
# What may stand between the groups of a clause that is only an OR of groups.
_JOINERS_RE = re.compile(r"[\s()]*(?:OR[\s()]*)*")


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


def _template(fts: str, tokens: Mapping[str, tuple[str, ...]]) -> _Template:
    parts: list[str | tuple[_Alt, ...]] = []
    last = 0
    for a, b in _group_spans(fts):
        parts.append(fts[last:a])
        alts = []
        for m in _STR_RE.finditer(fts, a, b):
            body = m.group(1).replace('""', '"')
            alts.append(_Alt(m.group(0), tokens.get(body, ()), bool(m.group(2))))
        parts.append(tuple(alts))
        last = b
    parts.append(fts[last:])
    return tuple(p for p in parts if p != "")


def _or_of_groups(template: _Template) -> tuple[_Group, ...] | None:
    """The groups of a clause made of nothing but OR-ed groups, else None."""
    groups: list[_Group] = []
    for part in template:
        if isinstance(part, str):
            if not _JOINERS_RE.fullmatch(part):
                return None
        else:
            groups.append(part)
    return tuple(groups) or None


class _Vocab:
    """The distinct tokens of a batch, and templates rendered against them."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = set(terms)
        self.sorted = sorted(self.terms)
        self.never = "zq0"
        while self.never in self.terms:
            self.never += "0"
        self._cache: dict[str, bool] = {}

    def _has_prefix(self, prefix: str) -> bool:
        i = bisect.bisect_left(self.sorted, prefix)
        return i < len(self.sorted) and self.sorted[i].startswith(prefix)

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

    def possible(self, required: Sequence[Sequence[_Group]]) -> bool:
        """False when some required clause has no alternative that can match."""
        return all(any(self.can_match(a) for g in groups for a in g) for groups in required)

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

    _COLS = "highlight(p, 0, ?1, ?2), highlight(p, 1, ?1, ?2), snippet(p, -1, ?1, ?2, ?3, ?4)"
    _HITS_SQL = f"SELECT rowid, {_COLS} FROM p WHERE p MATCH ?5 ORDER BY rowid"
    _ROW_SQL = f"SELECT rowid, {_COLS} FROM p WHERE p MATCH ?5 AND rowid = ?6"

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.db = _connect()
        self.db.execute(_SCHEMA.format(name="p"))
        self.keys: dict[int, str] = {}
        self.db.execute("BEGIN")
        for i, entry in enumerate(entries):
            self._add(i + 1, entry)
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

    def _rows(self, sql: str, *params: object) -> list[_Row]:
        args = (HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, SNIPPET_ELLIPSIS, SNIPPET_TOKENS, *params)
        return [_Row(int(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""))
                for r in self.db.execute(sql, args)]

    def hits(self, fts_query: str) -> list[_Row]:
        return self._rows(self._HITS_SQL, fts_query)

    def row(self, fts_query: str, rowid: int) -> _Row | None:
        try:
            rows = self._rows(self._ROW_SQL, fts_query, rowid)
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
    # Top-level AND clauses that are only OR-groups: if one of them cannot
    # match the batch, the topic cannot either and its query is not run.
    required: tuple[tuple[_Group, ...], ...] = ()

    @classmethod
    def of(cls, topic: Topic) -> _Plan:
        original = split_clauses(topic.query)
        expanded = split_clauses(_strip_exclude(topic))
        if len(original) < 2 or len(original) != len(expanded):
            return cls(topic, tuple(original), ())
        return cls(topic, tuple(c.strip() for c in original), tuple(expanded))

    def with_templates(self, tokens: Mapping[str, tuple[str, ...]]) -> _Plan:
        clause_templates = tuple(_template(c, tokens) for c in self.fts_clauses)
        required = tuple(g for g in map(_or_of_groups, clause_templates) if g is not None)
        return _Plan(self.topic, self.clauses, self.fts_clauses,
                     _template(self.topic.fts_query, tokens), clause_templates, required)


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
    i, n = 0, len(highlighted)
    while i < n:
        for marker in (HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE):
            if highlighted.startswith(marker, i):
                i += len(marker)
                break
        else:
            plain.append(highlighted[i])
            where.append(i)
            i += 1
    where.append(n)
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
        self._plans = tuple(p.with_templates(tokens) for p in plans)

    def match(self, entries: Sequence[Entry]) -> list[Hit]:
        """Every (topic, entry) hit of the batch, in topic order then entry
        order. A topic whose query SQLite rejects at run time is logged and
        skipped; an entry that cannot be indexed is logged and skipped."""
        if not entries or not self.topics:
            return []
        batch = _Batch(entries)
        try:
            vocab = batch.vocab()
            out: list[Hit] = []
            for plan in self._plans:
                if not vocab.possible(plan.required):
                    continue
                try:
                    rows = batch.hits(vocab.render(plan.template))
                except sqlite3.Error as exc:
                    log.warning("topic %s skipped: invalid query: %s", plan.topic.id, exc)
                    continue
                clauses = [vocab.render(t) for t in plan.clause_templates] if rows else []
                for row in rows:
                    key = batch.keys.get(row.rowid)
                    if key is not None:
                        terms, snippet = _evidence(batch, clauses, row)
                        out.append(Hit(topic_id=plan.topic.id, entry_key=key,
                                       terms=terms, snippet=snippet))
            return out
        finally:
            batch.close()

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
