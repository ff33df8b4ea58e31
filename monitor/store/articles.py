"""Article text: the queue of linked pages to fetch (the ``articles`` table
is the queue, so a crash or restart loses none and fetches none twice), the
text or failure of each, the item's ``article`` column the archive's FTS
index searches, and the hits the text adds or re-evidences (with their
alerts, in the same transaction)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from monitor.normalize import norm_document
from monitor.store.alerts import enqueue_alerts
from monitor.store.db import StoreBase, from_iso, to_iso
from monitor.store.models import shown
from monitor.types import AlertConfig, Entry, Hit


@dataclass(frozen=True)
class QueuedArticle:
    item_id: int
    url: str
    feed_id: str
    attempts: int


def queue_articles(db: Database, ids: Sequence[int], since: datetime, *,
                   alerts: bool = False) -> int:
    """Queue the items ``ids`` (just inserted, in the poll's transaction) that
    have a URL and were published at or after ``since``; an item already
    queued stays as it is. ``alerts``: whether the hits its text adds may
    alert (False for a feed's backlog)."""
    queued = 0
    for item_id in ids:
        cur = db.execute(
            "INSERT INTO articles (item_id, url, status, alerts) "
            "SELECT id, url, 'queued', ? FROM items "
            "WHERE id = ? AND url IS NOT NULL AND url != '' AND published_at >= ? "
            "ON CONFLICT (item_id) DO NOTHING", [int(alerts), item_id, to_iso(since)])
        queued += cur.rowcount
    return queued


class ArticlesMixin(StoreBase):
    def due_articles(self, now: datetime, limit: int) -> list[QueuedArticle]:
        """Queued articles whose time has come, newest item first."""
        rows = self._rows(
            "SELECT a.item_id, a.url, i.feed_id, a.attempts FROM articles a "
            "JOIN items i ON i.id = a.item_id WHERE a.status = 'queued' "
            "AND (a.next_try_at IS NULL OR a.next_try_at <= ?) "
            "ORDER BY i.published_at DESC, a.item_id DESC LIMIT ?", [to_iso(now), limit])
        return [QueuedArticle(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def article_entry(self, item_id: int) -> Entry | None:
        """The item as the matcher reads it, with its article text."""
        rows = self._rows("SELECT key, title, summary, url, published_at, article, language "
                          "FROM items WHERE id = ?", [item_id])
        if not rows:
            return None
        key, title, summary, url, published, article, language = rows[0]
        published_at = from_iso(published)
        assert published_at is not None, "items.published_at is NOT NULL"
        return Entry(key=key, title=title, summary=summary, url=url, published_at=published_at,
                     article=article or "", language=language)

    def store_article(self, item_id: int, text: str, text_hash: str, now: datetime,
                      hits: Sequence[Hit], alerts: Sequence[AlertConfig] = ()) -> int:
        """The text of an article, its item's FTS column and its hits, in one
        transaction: a new hit is inserted, an existing one gets the new
        evidence; the new hits enqueue ``alerts`` as a poll's would, unless
        the item came with its feed's backlog. Returns the hits inserted."""
        with self.write() as db:
            db.execute("UPDATE articles SET status = 'ok', reason = NULL, next_try_at = NULL, "
                       "attempts = attempts + 1, fetched_at = ?, text = ?, text_hash = ?, "
                       "chars = ? WHERE item_id = ?",
                       [to_iso(now), text, text_hash, len(text), item_id])
            row = db.execute("SELECT title, summary FROM items WHERE id = ?",
                             [item_id]).fetchone()
            norm = norm_document(row[0] or "", row[1] or "", text) if row else None
            db.execute("UPDATE items SET article = ?, norm = ? WHERE id = ?",
                       [text, norm, item_id])
            fresh = [h for h in hits if self._upsert_hit(db, item_id, h, now)]
            if alerts and fresh:
                self._enqueue_article_alerts(db, item_id, fresh, alerts, now)
            return len(fresh)

    def _enqueue_article_alerts(self, db: Database, item_id: int, fresh: Sequence[Hit],
                                alerts: Sequence[AlertConfig], now: datetime) -> None:
        row = db.execute("SELECT a.alerts, i.feed_id FROM articles a JOIN items i "
                         "ON i.id = a.item_id WHERE a.item_id = ?", [item_id]).fetchone()
        entry = self.article_entry(item_id)
        if not row or not row[0] or entry is None:
            return
        enqueue_alerts(db, alerts, str(row[1]), [(item_id, h, entry) for h in fresh], now)

    @staticmethod
    def _upsert_hit(db: Database, item_id: int, h: Hit, now: datetime) -> int:
        terms = json.dumps(list(h.terms), ensure_ascii=False)
        found_in = ",".join(h.found_in)
        cur = db.execute(
            "INSERT INTO hits (item_id, topic_id, matched_at, terms, snippet, found_in) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, topic_id) DO NOTHING",
            [item_id, h.topic_id, to_iso(now), terms, h.snippet, found_in])
        if cur.rowcount:
            return 1
        db.execute("UPDATE hits SET terms = ?, snippet = ?, found_in = ? "
                   "WHERE item_id = ? AND topic_id = ?",
                   [terms, h.snippet, found_in, item_id, h.topic_id])
        return 0

    def article_failed(self, item_id: int, reason: str, now: datetime,
                       retry_at: datetime | None) -> None:
        """A failed attempt: queued again at ``retry_at``, or final (None)."""
        with self.write() as db:
            db.execute("UPDATE articles SET status = ?, reason = ?, attempts = attempts + 1, "
                       "next_try_at = ?, fetched_at = ? WHERE item_id = ?",
                       ["queued" if retry_at else "failed", reason,
                        to_iso(retry_at) if retry_at else None, to_iso(now), item_id])

    def article_counts(self, failures: int = 5) -> dict[str, dict[str, Any]]:
        """Per feed: its articles by status (queued, ok, failed) and the
        reasons of its latest failures, final or to be retried (``failures`` at most)."""
        out: dict[str, dict[str, Any]] = {}
        # CROSS JOIN keeps articles as the outer loop: the planner would
        # otherwise walk every item of the archive (1M: ~90 ms) to find the
        # few that have an article.
        for feed_id, status, n in self._rows(
                "SELECT i.feed_id, a.status, count(*) FROM articles a "
                "CROSS JOIN items i ON i.id = a.item_id GROUP BY i.feed_id, a.status"):
            row = out.setdefault(str(feed_id), {"queued": 0, "ok": 0, "failed": 0,
                                                "failures": []})
            row[str(status)] = int(n)
        for feed_id, row in out.items():
            if row["failed"] or row["queued"]:
                row["failures"] = [shown(r[0]) for r in self._rows(
                    "SELECT a.reason FROM articles a JOIN items i ON i.id = a.item_id "
                    "WHERE i.feed_id = ? AND a.reason IS NOT NULL "
                    "ORDER BY a.fetched_at DESC, a.item_id DESC LIMIT ?", [feed_id, failures])]
        return out
