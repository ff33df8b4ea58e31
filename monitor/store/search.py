"""`monitor search`: stories of the whole archive matching an FTS5 query,
ranked by bm25 and age, newest windows of the index first."""

from __future__ import annotations

import sqlite3
from typing import Any

from monitor.clean import clean_url
from monitor.errors import QueryError
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from monitor.store.db import StoreBase
from monitor.store.models import SearchResult, shown

SEARCH_WINDOW = 20_000  # newest items searched first, doubling (see Store.search)


class SearchMixin(StoreBase):
    def search(self, fts_query: str, *, limit: int = 20) -> list[SearchResult]:
        """Stories matching an FTS5 query over the whole archive, best first: bm25
        (title weighted 3x, article text half) discounted by age; one row per story with its feeds.

        Ranking every match of a common word costs seconds on a large archive, so
        the newest items (by rowid) are searched first, in windows that double
        until they hold enough matches; only those are ranked. A rare term ends
        up searching the whole archive; an old item of a common word may be
        passed over for newer ones, which the age discount prefers anyway."""
        wanted = limit * 5
        try:
            low = self._search_window(fts_query, wanted)
            cur = self.conn.execute("""
                SELECT i.id, i.title, i.url, i.feed_id, i.published_at, i.story_key,
                       snippet(items_fts, -1, ?, ?, '…', 16) AS snippet,
                       bm25(items_fts, 3.0, 1.0, 0.5) AS score
                FROM items_fts JOIN items i ON i.id = items_fts.rowid
                WHERE items_fts MATCH ? AND items_fts.rowid > ?
                ORDER BY bm25(items_fts, 3.0, 1.0, 0.5)
                         / (1.0 + max(0.0, julianday('now') - julianday(i.published_at)) / 30.0)
                LIMIT ?""", [HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, fts_query, low, wanted])
        except sqlite3.OperationalError as exc:
            raise QueryError(f"invalid query: {exc}", query=fts_query) from None
        best: dict[str, Any] = {}
        for row in cur.fetchall():
            if row[5] not in best and len(best) < limit:
                best[row[5]] = row
        return [self._result(*row) for row in best.values()]

    def _result(self, item_id: int, title: str | None, url: str | None, feed_id: str,
                published_at: str | None, story_key: str, snippet: str | None,
                score: float) -> SearchResult:
        feeds = self._rows("SELECT DISTINCT feed_id FROM items WHERE story_key = ? "
                           "ORDER BY feed_id", [story_key])
        return SearchResult(id=item_id, title=shown(title), url=clean_url(url), feed_id=feed_id,
                            published_at=published_at, story_key=story_key,
                            snippet=shown(snippet), score=round(score, 4),
                            feeds=tuple(f[0] for f in feeds))

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
