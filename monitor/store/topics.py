"""The topics table and re-applying topics to the archive: the config's topics
synced in, which topics' stored hits are stale, the item batches a re-apply
walks, and the swap of a topic's hits for what its current query finds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.db import chunks, to_iso
from monitor.store.items import ItemsMixin
from monitor.types import Hit, Topic


class TopicsMixin(ItemsMixin):
    def sync_topics(self, topics: Sequence[Topic], now: datetime) -> list[str]:
        """Store the topics; returns the ids whose stored hits do not reflect the
        current query (changed, or new while items are stored) until
        `monitor topics apply` re-applies them."""
        with self.write() as db:
            known = {r["id"]: r for r in db.query("SELECT id, fts_query FROM topics")}
            has_items = db.execute("SELECT EXISTS (SELECT 1 FROM items)").fetchone()[0]
            for pos, topic in enumerate(topics):
                row = known.get(topic.id)
                values = {"name": topic.name, "description": topic.description,
                          "query": topic.query, "fts_query": topic.fts_query,
                          "position": pos, "active": 1}
                if row is None:
                    applied = None if has_items else topic.fts_query
                    db.table("topics").insert({"id": topic.id, "updated_at": to_iso(now),
                                               "applied_query": applied, **values})
                    continue
                if row["fts_query"] != topic.fts_query:
                    values["updated_at"] = to_iso(now)
                db.table("topics").update(topic.id, values)
            for topic_id in set(known) - {t.id for t in topics}:
                db.table("topics").update(topic_id, {"active": 0})
        return self.stale_topics()

    def stale_topics(self) -> list[str]:
        rows = self.query("SELECT id FROM topics WHERE active = 1 AND applied_query IS NOT "
                          "fts_query ORDER BY position")
        return [r["id"] for r in rows]

    def mark_applied(self, topic_id: str, fts_query: str) -> None:
        with self.write() as db:
            db.execute("UPDATE topics SET applied_query = ? WHERE id = ?", [fts_query, topic_id])

    def item_batch(self, *, after_id: int, since: datetime | None,
                   limit: int) -> list[dict[str, Any]]:
        """Stored items in id order, for re-applying topics in bounded batches."""
        sql = ("SELECT id, feed_id, key, title, summary, url, published_at, article, language FROM items "
               "WHERE id > ?")
        params: list[Any] = [after_id]
        if since is not None:
            sql += " AND published_at >= ?"
            params.append(to_iso(since))
        return self.query(sql + " ORDER BY id LIMIT ?", [*params, limit])

    def count_items(self, since: datetime | None = None) -> int:
        if since is None:
            return int(self.conn.execute("SELECT count(*) FROM items").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM items WHERE published_at >= ?",
                                     [to_iso(since)]).fetchone()[0])

    def replace_hits(self, topic_id: str, item_ids: Sequence[int],
                     hits: dict[int, Hit], now: datetime) -> tuple[int, int]:
        """Make the topic's hits among ``item_ids`` exactly ``hits``: (added, removed)."""
        with self.write() as db:
            marks = ",".join("?" * len(item_ids))
            have = {r[0] for r in db.execute(
                f"SELECT item_id FROM hits WHERE topic_id = ? AND item_id IN ({marks})",
                [topic_id, *item_ids])}
            gone = [i for i in have if i not in hits]
            for chunk in chunks([str(i) for i in gone], 500):
                db.execute(f"DELETE FROM hits WHERE topic_id = ? AND item_id IN "
                           f"({','.join('?' * len(chunk))})", [topic_id, *chunk])
            added = self._insert_hits(db, {str(i): i for i in hits if i not in have},
                                      [Hit(h.topic_id, str(i), h.terms, h.snippet, h.found_in)
                                       for i, h in hits.items() if i not in have], now)
        return added, len(gone)

    def topic_ids(self) -> set[str]:
        """The id of every stored topic, removed ones included (they keep their hits)."""
        return {str(r[0]) for r in self._rows("SELECT id FROM topics")}
