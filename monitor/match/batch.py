"""Percolation: a batch of entries against a fixed set of topics.

Owns the Matcher and its second stage: after the prefilter (prefilter._Index)
has left the few (topic, entry) pairs that could match, those entries go into
a fresh in-memory FTS5 table with the columns ``title``, ``summary``,
``article`` (the linked page's text, when fetched) and ``norm`` (the normal
forms of the item's words, see monitor.normalize and norm) and each remaining
topic's query, pruned to the batch (see prune) and then rewritten by
normquery.normalised_query (every unquoted word also meets its forms in
``norm``), runs once against it: SQLite has the last word. The first stage
works in two steps: on raw tokens alone, every clause that a normal form could
satisfy left aside, then, only for the items some topic with such clauses
still wants, on their normal forms too (which is when an item's norm is made). Each hit carries the matched words and
a snippet (see evidence), so "why did this match?" always has an answer. Also
``explain()`` for ``monitor topics test``. No HTTP, no persistent storage: it
must not touch the archive database.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.language import primary
from monitor.match.cnf import _Cnf, is_norm, necessary
from monitor.match.evidence import (
    SNIPPET_ELLIPSIS,
    SNIPPET_TOKENS,
    _evidence,
    _Fetched,
    _rehighlight,
    _Row,
    _terms_of,
    _window,
)
from monitor.match.norm import Memo, entry_norm, fields, mark, norm_words
from monitor.match.prefilter import _Index
from monitor.match.prune import (
    _Alt,
    _bodies,
    _Group,
    _rewritten_template,
    _Template,
    _template,
    _Vocab,
)
from monitor.match.tokens import _entry_text, _tokenize, ordered_tokens
from monitor.normalize import normalize_term
from monitor.normquery import NORM_COLUMN, normalised_query
from monitor.query import (
    FTS_SCHEMA,
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    TOKENIZER,
    memory_db,
    scrub,
    split_clauses,
    strip_exclude,
)
from monitor.types import Entry, Hit, Topic

# The package's one logger: its name is in the log lines people read.
log = logging.getLogger("monitor.match")

NORM_SCHEMA = (f"CREATE VIRTUAL TABLE {{name}} USING fts5(title, summary, article, "
               f"{NORM_COLUMN}, tokenize='{TOKENIZER}')")


@functools.lru_cache(maxsize=65536)
def _normalised(fts_query: str) -> str:
    """normalised_query, remembered: the pruned queries of a topic repeat."""
    return normalised_query(fts_query, NORM_COLUMN)


_EXACT = f"-{NORM_COLUMN}:"
# A filter that reads the norm column: a positive one on it (``-norm:`` leaves
# it out), or a negated one on any other column (``- title:`` reads every
# column but the title, norm included). Reading too much only costs filling
# the column.
_READS_NORM_RE = re.compile(
    rf"(?<![-\w]){NORM_COLUMN}\s*:|-\s*(?:\{{[^}}]*\}}|(?!{NORM_COLUMN}\s*:)\w+)\s*:")


@functools.lru_cache(maxsize=65536)
def _norm_alt(alt: _Alt) -> _Alt:
    """A group's alternative as normalised_query reads it: a quoted one
    exact (``-norm:"..."``), a bareword also in the norm column by its
    normal form, which pruning then looks up in the batch's norm tokens."""
    if alt.text.startswith('"'):
        return _Alt(_EXACT + alt.text, alt.tokens, alt.prefix)
    form = normalize_term(alt.text)
    rendered = _normalised(alt.text)
    if form is None:
        return _Alt(rendered, alt.tokens, alt.prefix)
    star = form.endswith("*")
    body = form[:-1] if star else form
    return _Alt(rendered, alt.tokens, alt.prefix, tuple(ordered_tokens(scrub(body))), star)


def _rewrite(fts_query: str, norm: bool) -> str:
    return _normalised(fts_query) if norm else fts_query


# Outside strings: a phrase join, a negated column filter or a filter naming
# the norm column. Strings there may be matched in the norm column, which
# pruning by the batch's raw tokens does not know: such queries run unpruned.
_NORM_REACHABLE_RE = re.compile(rf"\+|-\s*[{{\w]|\b{NORM_COLUMN}\b")


def _prunable(fts_query: str) -> bool:
    outside = re.sub(r'"(?:[^"]|"")*"', " ", fts_query)
    return _NORM_REACHABLE_RE.search(outside) is None


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


def entry_from_text(text: str, title: str | None = None) -> Entry:
    """An Entry for a free text (``monitor topics test``, topic examples).

    The whole text goes into ``summary`` and its first non-empty line (or the
    given ``title``) into ``title``, so queries with ``title:`` filters work on
    a one-line headline as they would on a feed item."""
    if title is None:
        title = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return Entry(key="text", title=title, summary=text, url=None,
                 published_at=datetime.fromtimestamp(0, UTC))


class _Batch:
    """A batch of entries in a fresh in-memory FTS5 table; closed after use."""

    # SQLite 3.40's snippet() (and in rarer cases highlight()) fails with
    # "database disk image is malformed" on some valid NEAR queries whose
    # phrases overlap, e.g. NEAR("air strike" strike). A hit must not be lost
    # to its evidence: each query falls back to fewer auxiliary functions.
    _COLUMNS = (
        "highlight(p, 0, ?1, ?2), highlight(p, 1, ?1, ?2), snippet(p, -1, ?1, ?2, ?3, ?4), "
        "highlight(p, 2, ?1, ?2)",
        "highlight(p, 0, ?1, ?2), highlight(p, 1, ?1, ?2), NULL, highlight(p, 2, ?1, ?2)",
        "NULL, NULL, NULL, NULL",
    )
    _HITS_WHERE = "p MATCH ?5 ORDER BY rowid"
    _ROW_WHERE = "p MATCH ?5 AND rowid = ?6"

    _NORM_HL = ", highlight(p, 3, ?1, ?2)"

    def __init__(self, entries: Sequence[Entry], rowids: Sequence[int] | None = None, *,
                 norm: bool = True, norms: Mapping[int, str] | None = None) -> None:
        """``norm``: the table has a norm column, filled from ``norms`` (by
        rowid) or, for entries not there, with entry_norm()."""
        self.db = memory_db()
        self.norm = norm
        self.db.execute((NORM_SCHEMA if norm else FTS_SCHEMA).format(name="p"))
        self.keys: dict[int, str] = {}
        self.texts: dict[int, tuple[str, str, str]] = {}  # what norm was made of
        self.memo = Memo()  # the words of those texts, read once per batch
        # Topics share clauses (a place list, a list of rights words): a
        # clause's row is asked for again by every topic of the item's hits.
        self._fetched: dict[tuple[str, int], _Fetched | None] = {}
        self.db.execute("BEGIN")
        for i, entry in enumerate(entries):
            rowid = rowids[i] if rowids is not None else i + 1
            self._add(rowid, entry, norms.get(rowid) if norms is not None else None)
        self.db.execute("COMMIT")

    def vocab(self) -> _Vocab:
        self.db.execute("CREATE VIRTUAL TABLE pv USING fts5vocab(p, row)")
        return _Vocab(str(t) for (t,) in self.db.execute("SELECT term FROM pv"))

    def _add(self, rowid: int, entry: Entry, norm: str | None) -> None:
        try:
            title, summary = scrub(entry.title), scrub(entry.summary)
            article = scrub(entry.article) if entry.article else None
            if self.norm:
                if norm is None:
                    norm = entry_norm(entry)
                self.db.execute("INSERT INTO p(rowid, title, summary, article, norm) "
                                "VALUES (?, ?, ?, ?, ?)", (rowid, title, summary, article, norm))
                self.texts[rowid] = fields(entry)
            else:
                self.db.execute("INSERT INTO p(rowid, title, summary, article) "
                                "VALUES (?, ?, ?, ?)", (rowid, title, summary, article))
            self.keys[rowid] = entry.key
        except Exception as exc:  # catalogue B8: one bad entry never loses the batch
            log.warning("entry %r skipped by the matcher: %s", getattr(entry, "key", "?"), exc)

    def _fetch(self, where: str, *params: object) -> list[_Fetched]:
        args = (HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, SNIPPET_ELLIPSIS, SNIPPET_TOKENS, *params)
        for n, columns in enumerate(self._COLUMNS):
            extra = "" if not self.norm else self._NORM_HL if n < 2 else ", NULL"
            try:
                found = self.db.execute(f"SELECT rowid, {columns}{extra} FROM p WHERE {where}",
                                        args).fetchall()
                break
            except sqlite3.DatabaseError:
                if n == len(self._COLUMNS) - 1:
                    raise
        return [_Fetched(_Row(int(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""),
                              str(r[4] or "")), str(r[5] or "") if self.norm else "", n)
                for r in found]

    def _rows(self, where: str, *params: object) -> list[_Row]:
        return [self.finish(f) for f in self._fetch(where, *params)]

    def finish(self, fetched: _Fetched) -> _Row:
        """The evidence of a fetched row: raw words behind norm column hits
        marked, and a snippet made in Python where SQLite's failed."""
        row = fetched.row
        if self.norm:
            row = self._raw_words(row, fetched.norm_hl)
        return self._plain_evidence(row) if fetched.level else row

    def snippet(self, fetched: _Fetched) -> str:
        """The snippet of a fetched row, as finish() would make it. Only its
        words matter to the caller (see evidence._evidence, which re-cuts
        them from the whole query's highlights): when SQLite's snippet is raw
        text, the raw words behind norm hits need not be marked in it."""
        row = fetched.row
        if fetched.level == 0 and self._raw_snippet(row):
            return row.snippet
        return self.finish(fetched).snippet

    @staticmethod
    def _raw_snippet(row: _Row) -> bool:
        """Whether the row's snippet is a window of its raw columns (and not
        of the norm column, which snippet() may choose): its marked words
        stand in a raw column's highlight as they stand in the snippet (a
        normal form is often a piece of its word: "увол" of "увольнение")."""
        body = row.snippet.removeprefix(SNIPPET_ELLIPSIS).removesuffix(SNIPPET_ELLIPSIS)
        if not body.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "").strip():
            return False
        return any(body in c for c in row.columns)

    def fetch_row(self, fts_query: str, rowid: int) -> _Fetched | None:
        """Row ``rowid`` as SQLite highlights it for ``fts_query``, not yet
        finished (see finish): a clause's row is finished only if chosen."""
        key = (fts_query, rowid)
        if key in self._fetched:
            return self._fetched[key]
        try:
            rows = self._fetch(self._ROW_WHERE, fts_query, rowid)
        except sqlite3.Error:
            rows = []
        found = self._fetched[key] = rows[0] if rows else None
        return found

    def matched_words(self, fetched: _Fetched) -> int:
        """How many distinct words the query matched in a fetched row: raw
        words, and words of the norm column (by their normal form, so a raw
        word and its normal form are one when they are spelled alike)."""
        words = set(_terms_of(*fetched.row.columns))
        if HIGHLIGHT_OPEN in fetched.norm_hl:
            words.update(_terms_of(fetched.norm_hl))
        return len(words)

    def _raw_words(self, row: _Row, norm_hl: str) -> _Row:
        """``row`` with the raw words behind its norm column hits marked in
        the raw columns, and a snippet of raw text (snippet() may have chosen
        the norm column)."""
        texts = self.texts.get(row.rowid)
        if texts is None or HIGHLIGHT_OPEN not in norm_hl:
            return row
        marked = mark(row.columns, norm_hl, texts, self.memo)
        title_hl, summary_hl, article_hl = marked.columns
        snippet = row.snippet
        plain = snippet.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "")
        body = plain.removeprefix(SNIPPET_ELLIPSIS).removesuffix(SNIPPET_ELLIPSIS)
        raw = [c.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "") for c in row.columns]
        if not body.strip() or not any(body in c for c in raw):
            shown = next((c for c in (summary_hl, article_hl) if HIGHLIGHT_OPEN in c),
                         title_hl or summary_hl or article_hl)
            snippet = _window(shown)
        else:  # the same window, with the words matched through normal forms marked too
            snippet = _rehighlight(snippet, marked.columns) or snippet
        return _Row(row.rowid, title_hl, summary_hl, snippet, article_hl, marked.folded)

    def _plain_evidence(self, row: _Row) -> _Row:
        """What snippet() would give, made in Python from the highlights (or
        the text itself when there are none)."""
        title_hl, summary_hl, article_hl = row.columns
        if not (title_hl or summary_hl or article_hl):
            title_hl, summary_hl, article_hl = self.db.execute(
                "SELECT title, summary, article FROM p WHERE rowid = ?", (row.rowid,)).fetchone()
        shown = next((c for c in (summary_hl, article_hl) if HIGHLIGHT_OPEN in (c or "")),
                     title_hl or summary_hl or article_hl or "")
        return _Row(row.rowid, title_hl or "", summary_hl or "", _window(shown),
                    article_hl or "", row.folded)

    def hits(self, fts_query: str) -> list[_Row]:
        return self._rows(self._HITS_WHERE, fts_query)

    def row(self, fts_query: str, rowid: int) -> _Row | None:
        fetched = self.fetch_row(fts_query, rowid)
        return None if fetched is None else self.finish(fetched)

    def rowids(self, fts_query: str) -> set[int]:
        """The rows ``fts_query`` matches; none when SQLite rejects it."""
        try:
            return {int(r[0]) for r in self.db.execute("SELECT rowid FROM p WHERE p MATCH ?",
                                                       (fts_query,))}
        except sqlite3.Error:
            return set()

    def any(self, fts_query: str) -> bool:
        try:
            return self.db.execute("SELECT 1 FROM p WHERE p MATCH ? LIMIT 1",
                                   (fts_query,)).fetchone() is not None
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class _Plan:
    """What the matcher precomputes per topic: the clauses of its query
    (config syntax and expanded) for snippets and near misses, and the
    prunable templates of the query and of its clauses. Templates are of the
    expanded query; a rendered one is then rewritten (see _rewrite)."""

    topic: Topic
    clauses: tuple[str, ...]  # as written in feeds.yaml
    fts_clauses: tuple[str, ...]  # the same, expanded; () when they do not line up
    template: _Template = ()
    clause_templates: tuple[_Template, ...] = ()

    @classmethod
    def of(cls, topic: Topic) -> _Plan:
        original = split_clauses(topic.query)
        expanded = split_clauses(strip_exclude(topic.fts_query, topic.exclude))
        if len(original) < 2 or len(original) != len(expanded):
            return cls(topic, tuple(original), ())
        return cls(topic, tuple(c.strip() for c in original), tuple(expanded))

    def with_templates(self, tokens: Mapping[str, tuple[str, ...]],
                       groups: dict[str, _Group], norm: bool) -> _Plan:
        """Templates that render to the query SQLite runs: rewritten already
        when ``norm`` (the groups of strings stay exact, so pruning them by
        the batch's raw tokens is still exact)."""
        def template(q: str) -> _Template:
            if not norm:
                return _template(q, tokens, groups)
            rewritten = _rewritten_template(q, tokens, groups, _normalised, _EXACT,
                                            _norm_alt) if _prunable(q) else None
            return rewritten if rewritten is not None else (_normalised(q),)

        return _Plan(self.topic, self.clauses, self.fts_clauses,
                     template(self.topic.fts_query),
                     tuple(template(c) for c in self.fts_clauses))


def _split(cnf: _Cnf) -> tuple[_Cnf, bool]:
    """The clauses of ``cnf`` no normal form can satisfy, and whether any
    clause was left out."""
    raw = tuple(c for c in cnf if not any(is_norm(need) for need in c))
    return raw, len(raw) != len(cnf)


class Matcher:
    """Matches batches of entries against a fixed set of topics.

    Uses ``topic.fts_query`` (already expanded and validated by the config),
    rewritten by normalised_query when ``normalise`` (the default; off, the
    matcher is the exact one, measured beside it by benchmarks/matching.py).
    Thread-safe: every call works on its own in-memory database."""

    def __init__(self, topics: Sequence[Topic], *, normalise: bool = True) -> None:
        self.topics: tuple[Topic, ...] = tuple(topics)
        self.normalise = normalise
        plans = [_Plan.of(t) for t in self.topics]
        bodies: set[str] = set()
        for p in plans:
            for q in (p.topic.fts_query, *p.fts_clauses):
                bodies |= _bodies(q)
        tokens = _tokenize(bodies)
        groups: dict[str, _Group] = {}
        self._plans = tuple(p.with_templates(tokens, groups, normalise) for p in plans)
        conditions = [necessary(_Vocab.whole(p.template), norm=normalise) for p in self._plans]
        split = [_split(c) for c in conditions]
        # First step: raw tokens; second: normal forms too, for the topics
        # with a clause a normal form could satisfy. A topic every clause of
        # which a normal form can meet (the common case: bare list terms) has
        # nothing to go by in the first step, and skips it: listed there, it
        # would reach every item of every batch.
        self._norm_topics = [n for n, (_, cut) in enumerate(split) if cut]
        self._norm_only = frozenset(n for n, (raw, cut) in enumerate(split) if cut and not raw)
        self._raw_topics = [n for n in range(len(self.topics)) if n not in self._norm_only]
        if self._norm_only:
            # Such a topic wants every item's normal forms, so every item
            # gets them: one step over all topics, on raw and normal-form
            # tokens in one set, costs less than two (the shipped topics
            # are all of this kind).
            self._norm_topics = list(range(len(self.topics)))
            self._raw_topics = []
        self._index = _Index([split[n][0] for n in self._raw_topics])
        # Topics whose query reads the norm column at all, a NOT included:
        # their items need it filled even when nothing positive needs it.
        self._reads_norm = frozenset(
            n for n, p in enumerate(self._plans)
            if normalise and _READS_NORM_RE.search(_Vocab.whole(p.template)))
        self._norm_index = _Index([conditions[n] for n in self._norm_topics], merged=True)
        self._languages = [frozenset(filter(None, map(primary, t.languages)))
                           for t in self.topics]

    def _q(self, fts_query: str) -> str:
        return _rewrite(fts_query, self.normalise)

    def _speaking(self, wanted: dict[int, list[int]],
                  entries: Sequence[Entry]) -> dict[int, list[int]]:
        """``wanted`` without the items a language-limited topic does not
        read: an item of no known language is left out of such a topic."""
        out = {}
        for n, items in wanted.items():
            langs = self._languages[n]
            kept = [i for i in items if primary(entries[i].language) in langs] if langs else items
            if kept:
                out[n] = kept
        return out

    def _candidates(self, entries: Sequence[Entry], texts: list[bytes | None],
                    ) -> tuple[dict[int, list[int]], dict[int, str]]:
        """topic -> the items it may match, and the norm column of every item
        the second step looked at (by row id: item index + 1). That step adds
        the norm column's words (norm.norm_words) to the item's token text in
        ``texts``: raw tokens with more among them only prune less (see _vocab)."""
        raw_topics = self._raw_topics
        wanted = ({raw_topics[k]: v for k, v in self._index.candidates(texts).items()}
                  if raw_topics else {})
        if self._norm_only:
            norm_topics, items = self._norm_topics, list(range(len(entries)))
        else:
            norm_topics = [n for n in self._norm_topics if n in wanted]
            if not norm_topics:
                return wanted, {}
            items = sorted({i for n in norm_topics for i in wanted[n]})
        norms = {i + 1: entry_norm(entries[i]) for i in items}
        full: list[bytes | None] = []
        for i in items:
            text = texts[i]
            if text is not None:
                text = texts[i] = b"".join((text, norm_words(norms[i + 1]), b" "))
            full.append(text)
        found_topics = self._norm_index.candidates(full)
        for n in norm_topics:
            wanted.pop(n, None)
        for k, picked in found_topics.items():
            wanted[self._norm_topics[k]] = [items[j] for j in picked]
        return dict(sorted(wanted.items())), norms

    def match(self, entries: Sequence[Entry]) -> list[Hit]:
        """Every (topic, entry) hit of the batch, in topic order then entry
        order. A topic whose query SQLite rejects at run time is logged and
        skipped; an entry that cannot be indexed is logged and skipped.

        Items no topic can match (by their tokens, see _Index) never reach
        SQLite; the others are indexed once and each topic's pruned query runs
        over them."""
        if not entries or not self.topics:
            return []
        texts = [_entry_text(e) for e in entries]
        found, norms = self._candidates(entries, texts)
        wanted = self._speaking(found, entries)
        if not wanted:
            return []
        rows = sorted({i for items in wanted.values() for i in items})
        # An item no topic reading the norm column wants cannot be told
        # apart by it: its norm column may stay empty.
        for i in {i for n, items in wanted.items() if n in self._reads_norm for i in items}:
            if i + 1 not in norms:
                norms[i + 1] = entry_norm(entries[i])
        batch = _Batch([entries[i] for i in rows], [i + 1 for i in rows], norm=self.normalise,
                       norms={i + 1: norms.get(i + 1, "") for i in rows})
        try:
            vocab = self._vocab(batch, [texts[i] for i in rows],
                                [norms[i + 1] for i in rows if i + 1 in norms])
            out: list[Hit] = []
            for n, items in wanted.items():
                hits = self._topic_hits(batch, vocab, self._plans[n])
                if self._languages[n]:  # the batch also holds items other topics wanted
                    keys = {entries[i].key for i in items}
                    hits = [h for h in hits if h.entry_key in keys]
                out.extend(hits)
            return out
        finally:
            batch.close()

    def _vocab(self, batch: _Batch, known: Sequence[bytes | None],
               norms: Sequence[str]) -> _Vocab:
        """What pruning renders the batch's queries against: its raw tokens
        (with the norm column's added by _candidates, which only prunes less)
        and, when normalising, its norm column's."""
        if any(t is None for t in known):  # every term, in both readings
            whole = batch.vocab()
            return _Vocab(whole.terms, whole.terms if self.normalise else None)
        raw = {t.decode() for t in set(b"".join(t for t in known if t).split())}
        if not self.normalise:
            return _Vocab(raw)
        return _Vocab(raw, {t.decode() for t in set(b" ".join(map(norm_words, norms)).split())})

    def _topic_hits(self, batch: _Batch, vocab: _Vocab, plan: _Plan) -> list[Hit]:
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
                               snippet=snippet, found_in=row.found_in()))
        return out

    def explain(self, text: str, title: str | None = None) -> list[TopicExplanation]:
        """For every topic: does ``text`` match, on which words, and if not,
        which top-level AND clauses of its query it does satisfy.
        The text is indexed as entry_from_text() describes."""
        batch = _Batch([entry_from_text(text, title)], norm=self.normalise)
        try:
            return [self._explain_one(batch, plan) for plan in self._plans]
        finally:
            batch.close()

    def matching(self, texts: Sequence[str]) -> list[set[int]]:
        """Per topic, in order: the indices of ``texts`` it matches, each text
        read as explain() reads it, with no evidence made. One batch and one
        query per topic for all the texts (a topic's examples are checked at
        every config load: one explain() a text was ~1 s of a first poll)."""
        batch = _Batch([entry_from_text(t) for t in texts], norm=self.normalise)
        try:
            return [{i - 1 for i in batch.rowids(self._q(plan.topic.fts_query))}
                    for plan in self._plans]
        finally:
            batch.close()

    def _explain_one(self, batch: _Batch, plan: _Plan) -> TopicExplanation:
        topic = plan.topic
        row = batch.row(self._q(topic.fts_query), 1)
        clauses = [self._q(c) for c in plan.fts_clauses]
        if row is not None:
            terms, snippet = _evidence(batch, clauses, row)
            return TopicExplanation(topic.id, topic.name, True, terms, snippet)
        close = tuple(c for c, x in zip(plan.clauses, clauses, strict=False)
                      if batch.any(x))
        excluded = bool(topic.exclude and topic.exclude.strip()) and batch.any(
            self._q(strip_exclude(topic.fts_query, topic.exclude)))
        return TopicExplanation(topic.id, topic.name, False, (), "", close, excluded)


@functools.lru_cache(maxsize=2)
def shared_matcher(topics: tuple[Topic, ...]) -> Matcher:
    """One Matcher per set of topics in a process. The examples check that
    opens a poll and the poll itself match with the same topics; building a
    Matcher is ~0.3 s of CPU with the shipped ones, paid once this way. A
    Matcher is thread-safe and keeps no state a later batch could see."""
    return Matcher(topics)


@dataclass(frozen=True)
class NearMiss:
    """An entry that satisfies every top-level AND clause of a topic's query
    but ``missing`` (in the config's syntax), for ``monitor topics suggest``."""

    entry_key: str
    missing: str


def near_misses(topic: Topic, entries: Sequence[Entry], *, normalise: bool = True,
                norms: Mapping[int, str] | None = None) -> list[NearMiss]:
    """The entries of the batch that miss exactly one clause of ``topic``.

    Each clause runs once over the whole batch, so the cost is one query per
    clause rather than per entry; a topic of fewer than two clauses has none.
    ``norms``: the entries' norm columns by position + 1, when already made."""
    plan = _Plan.of(topic)
    if not plan.fts_clauses or not entries:
        return []
    batch = _Batch(entries, norm=normalise, norms=norms)
    try:
        satisfied = [_rowids(batch, _rewrite(c, normalise)) for c in plan.fts_clauses]
        whole = _rowids(batch, _rewrite(strip_exclude(topic.fts_query, topic.exclude), normalise))
        out = []
        for rowid, key in batch.keys.items():
            missing = [c for c, rows in zip(plan.clauses, satisfied, strict=True)
                       if rowid not in rows]
            if len(missing) == 1 and rowid not in whole:
                out.append(NearMiss(key, missing[0]))
        return out
    finally:
        batch.close()


@dataclass(frozen=True)
class FoldedMatch:
    """An entry that ``topic`` matches only through normal forms (the exact
    query does not match it), and the raw words of it that carried the match."""

    entry_key: str
    words: tuple[str, ...]
    snippet: str


def folded_matches(topic: Topic, entries: Sequence[Entry], *,
                   norms: Mapping[int, str] | None = None) -> list[FoldedMatch]:
    """The entries of the batch the normalised query of ``topic`` matches and
    its exact query does not, for review in ``monitor topics suggest``
    (``norms`` as for near_misses)."""
    if not entries:
        return []
    exact = _Batch(entries, norm=False)
    try:
        plain = _rowids(exact, topic.fts_query)
    finally:
        exact.close()
    batch = _Batch(entries, norms=norms)
    try:
        query = _normalised(topic.fts_query)
        out = []
        for row in batch.hits(query) if _rowids(batch, query) - plain else []:
            key = batch.keys.get(row.rowid)
            if key is not None and row.rowid not in plain:
                out.append(FoldedMatch(key, row.folded, row.snippet))
        return out
    except sqlite3.Error as exc:
        log.warning("topic %s skipped: invalid query: %s", topic.id, exc)
        return []
    finally:
        batch.close()


def _rowids(batch: _Batch, fts_query: str) -> set[int]:
    try:
        return {int(r[0]) for r in batch.db.execute("SELECT rowid FROM p WHERE p MATCH ?",
                                                    (fts_query,))}
    except sqlite3.Error as exc:
        log.warning("clause %r skipped: invalid query: %s", fts_query, exc)
        return set()
