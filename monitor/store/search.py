"""`monitor search`: stories of the whole archive matching an FTS5 query,
ranked by bm25 and age, newest windows of the index first. The query is
read through the ``norm`` column (monitor.normquery), so a word finds its
forms; what the reader sees (snippets, highlights) comes from the title,
summary and article text, never from the normal forms."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from monitor.clean import clean_url
from monitor.errors import QueryError
from monitor.normalize import normalize_token
from monitor.normquery import NORM_COLUMN, normalised_query
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from monitor.store.db import StoreBase, marks
from monitor.store.models import SearchResult, shown

SEARCH_WINDOW = 20_000  # newest items searched first, doubling (see Store.search)
# bm25 weights of items_fts's columns: title, summary, article, norm. The
# norm column repeats every word's normal form, so a word found as written
# scores through both; one found only through its form ranks below it.
WEIGHTS = "3.0, 1.0, 0.5, 0.5"
SNIPPET_TOKENS = 16
TEXT_COLUMNS = ("title", "summary", "article")  # what a snippet may show
_NORM_FORM_RE = re.compile(NORM_COLUMN + r':(?:NEAR\(([^)]*)\)|"((?:[^"]|"")*)"(\*?))')
_STRING_RE = re.compile(r'"((?:[^"]|"")*)"')
_WORD_RE = re.compile(r"[^\W_]+")


class SearchMixin(StoreBase):
    def search(self, fts_query: str, *, limit: int = 20) -> list[SearchResult]:
        """Stories matching an FTS5 query over the whole archive, best first: bm25
        (title weighted 3x, article text and normal forms half) discounted by
        age; one row per story with its feeds. ``fts_query`` is the query as
        validated (``@name`` expanded); each word of it also finds its normal
        forms (monitor.normquery), a quoted one stays exact.

        Ranking every match of a common word costs seconds on a large archive, so
        the newest items (by rowid) are searched first, in windows that double
        until they hold enough matches; only those are ranked. A rare term ends
        up searching the whole archive; an old item of a common word may be
        passed over for newer ones, which the age discount prefers anyway."""
        wanted = limit * 5
        query = normalised_query(fts_query, NORM_COLUMN)
        low: int | None
        try:
            low = self._search_window(query, wanted)
        except sqlite3.OperationalError:
            # A query SQLite accepts that the rewrite cannot carry (``0 *``):
            # read as written, as before the norm column.
            query, low = fts_query, None
        try:
            if low is None:
                low = self._search_window(query, wanted)
            cur = self.conn.execute(f"""
                SELECT i.id, i.title, i.url, i.feed_id, i.published_at, i.story_key,
                       bm25(items_fts, {WEIGHTS}) AS score
                FROM items_fts JOIN items i ON i.id = items_fts.rowid
                WHERE items_fts MATCH ? AND items_fts.rowid > ?
                ORDER BY bm25(items_fts, {WEIGHTS})
                         / (1.0 + max(0.0, julianday('now') - julianday(i.published_at)) / 30.0)
                LIMIT ?""", [query, low, wanted])
            best: dict[str, Any] = {}
            for row in cur.fetchall():
                if row[5] not in best and len(best) < limit:
                    best[row[5]] = row
            snippets = self._snippets(query, [row[0] for row in best.values()])
            return [self._result(*row, snippet=snippets[row[0]]) for row in best.values()]
        except sqlite3.OperationalError as exc:
            raise QueryError(f"invalid query: {exc}", query=fts_query) from None

    def _result(self, item_id: int, title: str | None, url: str | None, feed_id: str,
                published_at: str | None, story_key: str, score: float, *,
                snippet: str | None) -> SearchResult:
        feeds = self._rows("SELECT DISTINCT feed_id FROM items WHERE story_key = ? "
                           "ORDER BY feed_id", [story_key])
        return SearchResult(id=item_id, title=shown(title), url=clean_url(url), feed_id=feed_id,
                            published_at=published_at, story_key=story_key,
                            snippet=shown(snippet), score=round(score, 4),
                            feeds=tuple(f[0] for f in feeds))

    def _snippets(self, query: str, item_ids: list[int]) -> dict[int, str]:
        """Each item's snippet (``_choose_snippet``), read in one pass.

        One query over the rowid range of the items, filtered to them outside
        FTS5 (``+rowid``): each evaluation of a prefix query merges the
        doclists of every term it expands to, so a query per item (``rowid =
        ?``) paid that once per result (~4 ms each for ``"protest"*`` on 1M
        items) where one range pays it once."""
        if not item_ids:
            return {}
        rows = {int(r[0]): [str(s or "") for s in r[1:]] for r in self.conn.execute(
            "SELECT rowid, " + ", ".join(
                f"snippet(items_fts, {i}, ?1, ?2, '…', {SNIPPET_TOKENS})"
                for i in range(len(TEXT_COLUMNS)))
            + " FROM items_fts WHERE items_fts MATCH ?3 AND rowid BETWEEN ?4 AND ?5"
            f" AND +rowid IN ({marks(item_ids)})",
            [HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, query, min(item_ids), max(item_ids), *item_ids])}
        return {i: self._choose_snippet(query, i, rows.get(i, [""] * len(TEXT_COLUMNS)))
                for i in item_ids}

    def _choose_snippet(self, query: str, item_id: int, snippets: list[str]) -> str:
        """The snippet of the text column with the most matched words (the
        first on a tie, as snippet(-1) picks), never of ``norm``. An item
        found only through normal forms has no word FTS5 highlights: its
        words whose normal form the query asked for are marked instead."""
        counts = [s.count(HIGHLIGHT_OPEN) for s in snippets]
        if max(counts) > 0:
            return snippets[counts.index(max(counts))]
        texts = self.conn.execute(
            f"SELECT {', '.join(TEXT_COLUMNS)} FROM items WHERE id = ?", [item_id]).fetchone()
        forms = query_forms(query)
        found = [form_snippet(str(t or ""), forms) for t in (texts or ())]
        marked = [s for s in found if s is not None]
        if marked:
            return max(marked, key=lambda s: s.count(HIGHLIGHT_OPEN))
        return next((s for s in (snippets[1], snippets[0], snippets[2]) if s), "")

    def _search_window(self, fts_query: str, wanted: int) -> int:
        """The lowest rowid (exclusive) of the newest window holding ``wanted``
        matches, or 0 for the whole archive."""
        top = int(self.conn.execute("SELECT coalesce(max(rowid), 0) FROM items").fetchone()[0])
        window, found, high = SEARCH_WINDOW, 0, top
        while high > 0:
            low = max(high - window, 0)
            found += int(self.conn.execute(
                "SELECT count(*) FROM items_fts WHERE items_fts MATCH ? AND rowid > ? "
                "AND rowid <= ?", [fts_query, low, high]).fetchone()[0])
            if found >= wanted:
                return low
            high, window = low, window * 2
        return 0


def query_forms(query: str) -> list[tuple[str, bool]]:
    """The normal forms a normalised query looks for in ``norm``, each with
    whether it is a prefix."""
    forms: list[tuple[str, bool]] = []
    for m in _NORM_FORM_RE.finditer(query):
        if m.group(1) is not None:
            forms += [(s.replace('""', '"'), False) for s in _STRING_RE.findall(m.group(1))]
        else:
            forms.append((m.group(2).replace('""', '"'), bool(m.group(3))))
    return forms


def form_snippet(text: str, forms: list[tuple[str, bool]],
                 tokens: int = SNIPPET_TOKENS) -> str | None:
    """``text`` around its first word whose normal form is one of ``forms``,
    those words marked as snippet() marks them; None when it has none."""
    words = list(_WORD_RE.finditer(text))
    hit = [i for i, w in enumerate(words) if _is_form(normalize_token(w.group(0)), forms)]
    marked = set(hit)
    if not hit:
        return None
    start = max(0, min(hit[0] - tokens // 4, len(words) - tokens))
    end = min(len(words), start + tokens)
    out, pos = [], words[start].start()
    for i in range(start, end):
        w = words[i]
        out.append(text[pos:w.start()])
        out.append(f"{HIGHLIGHT_OPEN}{w.group(0)}{HIGHLIGHT_CLOSE}" if i in marked else w.group(0))
        pos = w.end()
    return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(words) else "")


def _is_form(form: str, forms: list[tuple[str, bool]]) -> bool:
    return bool(form) and any(form.startswith(f) if prefix else form == f for f, prefix in forms)
