"""The reads behind the reports: `monitor feeds` (FeedHealth), `monitor hits`
(StoryHit), `monitor status`, the table counts, and the digest's selects
(its period's hits, the carriers of its stories, story counts per topic and
per day, a feed's recent publication dates). Read-only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.clean import clean_url
from monitor.store.db import chunks, marks, to_iso
from monitor.store.jobs import JobsMixin
from monitor.store.models import Carrier, DigestHit, FeedHealth, StoryHit, shown


class ReportsMixin(JobsMixin):
    def feeds_report(self) -> list[FeedHealth]:
        """Every feed's row and item count; text from servers (titles, errors,
        validators) shown clean, whatever an older version stored."""
        cur = self._read("""
            SELECT f.*, (SELECT count(*) FROM items i WHERE i.feed_id = f.id) AS items
            FROM feeds f ORDER BY f.active DESC, f.id""")
        names = [d[0] for d in cur.description or ()]
        return [FeedHealth.from_row(names, row) for row in cur.fetchall()]

    def hits(self, *, topics: Sequence[str] = (), since: datetime | None = None,
             limit: int = 50) -> list[StoryHit]:
        """Recent hits, one row per story: every feed that carried it, every topic
        it matched with the words that matched each, and a snippet."""
        where = ["1 = 1"]
        params: list[Any] = []
        if topics:
            where.append(f"h.topic_id IN ({marks(topics)})")
            params += list(topics)
        if since is not None:
            where.append("h.matched_at >= ?")
            params.append(to_iso(since))
        rows = self.query(f"""
            SELECT i.story_key, max(h.matched_at) AS matched_at,
                   min(i.published_at) AS published_at, min(h.id) AS first_hit
            FROM hits h JOIN items i ON i.id = h.item_id
            WHERE {' AND '.join(where)}
            GROUP BY i.story_key
            ORDER BY matched_at DESC, published_at DESC
            LIMIT ?""", [*params, limit])
        return [self._story(row, where, params) for row in rows]

    def _story(self, row: dict[str, Any], where: list[str], params: list[Any]) -> StoryHit:
        first = self.query("SELECT i.title, i.url, h.topic_id, h.snippet, h.found_in FROM hits h "
                           "JOIN items i ON i.id = h.item_id WHERE h.id = ?",
                           [row["first_hit"]])[0]
        matched = self.query(f"""
            SELECT h.topic_id, h.terms, i.feed_id FROM hits h JOIN items i ON i.id = h.item_id
            WHERE i.story_key = ? AND {' AND '.join(where)} ORDER BY h.id""",
                             [row["story_key"], *params])
        by_topic: dict[str, list[str]] = {}
        for m in matched:
            words = by_topic.setdefault(m["topic_id"], [])
            words += [w for w in json.loads(m["terms"]) if w not in words]
        feeds = self.query("SELECT DISTINCT feed_id FROM items WHERE story_key = ? "
                           "ORDER BY feed_id", [row["story_key"]])
        terms: list[str] = []
        for words in by_topic.values():
            terms += [w for w in words if w not in terms]
        return StoryHit(
            title=shown(first["title"]), url=clean_url(first["url"]),
            published_at=row["published_at"], matched_at=row["matched_at"],
            topics=tuple(by_topic), terms=tuple(terms),
            matched={k: tuple(v) for k, v in by_topic.items()},
            snippet=shown(first["snippet"]), feeds=tuple(f["feed_id"] for f in feeds),
            story_key=row["story_key"],
            found_in=tuple(w for w in (first["found_in"] or "").split(",") if w))

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("feeds", "items", "hits", "topics", "fetches"):
            out[table] = int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out

    def status(self) -> dict[str, Any]:
        """What `monitor status` shows: the daemon row, the next due feed,
        feed health counts and digests waiting to be sent."""
        nxt = self.query("""
            SELECT id, next_due_at FROM feeds WHERE active = 1 AND disabled_reason IS NULL
            ORDER BY next_due_at IS NOT NULL, next_due_at, id LIMIT 1""")
        counts = self.query("""
            SELECT count(*) AS feeds,
                   coalesce(sum(error_count > 0 AND disabled_reason IS NULL), 0) AS failing,
                   coalesce(sum(disabled_reason IS NOT NULL), 0) AS disabled
            FROM feeds WHERE active = 1""")[0]
        return {"daemon": self.daemon_row(), "next_due": nxt[0] if nxt else None, **counts,
                "pending_digests": self.query(
                    "SELECT * FROM digest_pending ORDER BY next_attempt_at, digest_id")}

    # --- the digest's selects ---------------------------------------------------------

    def digest_hits(self, topic_ids: Sequence[str], since: datetime,
                    until: datetime) -> list[DigestHit]:
        """The hits of ``topic_ids`` matched in ``[since, until)``, with their items."""
        if not topic_ids:
            return []
        return [DigestHit(*r) for r in self._rows(f"""
            SELECT i.id, i.story_key, i.feed_id, i.url, i.published_at,
                   h.topic_id, h.terms, h.snippet, i.title
            FROM hits h JOIN items i ON i.id = h.item_id
            WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({marks(topic_ids)})""",
            [to_iso(since), to_iso(until), *topic_ids])]

    def story_carriers(self, story_keys: Iterable[str], until: datetime) -> list[Carrier]:
        """Every item of these stories first fetched before ``until``."""
        out: list[Carrier] = []
        for chunk in chunks(list(story_keys), 500):
            out += [Carrier(*r) for r in self._rows(
                f"SELECT id, story_key, feed_id, url, published_at FROM items "
                f"WHERE story_key IN ({marks(chunk)}) AND fetched_at < ?",
                [*chunk, to_iso(until)])]
        return out

    def story_counts(self, topic_ids: Sequence[str], start: datetime,
                     end: datetime) -> dict[str, int]:
        """Distinct stories per topic among the hits matched in ``[start, end)``."""
        if not topic_ids:
            return {}
        rows = self._rows(f"""
            SELECT h.topic_id, count(DISTINCT coalesce(i.story_key, 'i:' || i.id)) AS n
            FROM hits h JOIN items i ON i.id = h.item_id
            WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({marks(topic_ids)})
            GROUP BY h.topic_id""", [to_iso(start), to_iso(end), *topic_ids])
        return {r[0]: int(r[1]) for r in rows}

    def daily_story_counts(self, topic_ids: Sequence[str], until: datetime,
                           days: int) -> list[tuple[str, int, int]]:
        """(topic, whole days before ``until``, distinct stories) for the hits of
        the ``days`` 24 h windows ending at ``until``."""
        if not topic_ids:
            return []
        end = int(until.timestamp())
        rows = self._rows(f"""
            SELECT h.topic_id,
                   (? - CAST(strftime('%s', h.matched_at) AS INTEGER) - 1) / 86400 AS ago,
                   count(DISTINCT coalesce(i.story_key, 'i:' || i.id)) AS n
            FROM hits h JOIN items i ON i.id = h.item_id
            WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({marks(topic_ids)})
            GROUP BY h.topic_id, ago""",
            [end, to_iso(until - timedelta(days=days)), to_iso(until), *topic_ids])
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def recent_published_many(self, feed_ids: Sequence[str], before: datetime,
                              limit: int) -> dict[str, list[str]]:
        """``recent_published`` of many feeds in one query, newest first per feed."""
        if not feed_ids:
            return {}
        # CROSS JOIN keeps the feeds as the outer loop: each feed then reads
        # its newest ``limit`` rows off the (feed_id, published_at) index,
        # never a scan of the whole archive.
        rows = self._rows("""
            SELECT f.value, i.published_at FROM json_each(?) f CROSS JOIN items i
            WHERE i.rowid IN (SELECT rowid FROM items WHERE feed_id = f.value
                              AND published_at <= ? ORDER BY published_at DESC LIMIT ?)
            ORDER BY f.value, i.published_at DESC""",
            [json.dumps(list(feed_ids)), to_iso(before), limit])
        out: dict[str, list[str]] = {f: [] for f in feed_ids}
        for feed_id, published in rows:
            out[str(feed_id)].append(published)
        return out

    def recent_published(self, feed_id: str, before: datetime, limit: int) -> list[str]:
        """The publication dates of the feed's newest ``limit`` items up to ``before``."""
        rows = self._rows("SELECT published_at FROM items WHERE feed_id = ? AND published_at <= ? "
                          "ORDER BY published_at DESC LIMIT ?", [feed_id, to_iso(before), limit])
        return [r[0] for r in rows]
