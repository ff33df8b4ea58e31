"""The desk's reads and its one write: triage verdicts per (story, topic),
each topic's measured precision, a story's items and evidence, stories per
publication day, the languages of stories. The only table the desk writes
is ``verdicts``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.clean import clean_url
from monitor.store.db import StoreBase, chunks, marks, to_iso
from monitor.store.models import shown

VERDICTS = ("relevant", "not_relevant")


def _story_where(story_key: str) -> tuple[str, list[Any]]:
    """Items of a story: by key, or the one item of an item without a key ("i:<id>")."""
    if story_key.startswith("i:") and story_key[2:].isdigit():
        return "i.id = ?", [int(story_key[2:])]
    return "i.story_key = ?", [story_key]


class DeskMixin(StoreBase):
    def verdicts(self, topic_id: str, story_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The verdict rows of these stories under ``topic_id``, by story key."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(story_keys), 500):
            for r in self.query(
                    f"SELECT story_key, verdict, starred, note, updated_at FROM verdicts "
                    f"WHERE topic_id = ? AND story_key IN ({marks(chunk)})", [topic_id, *chunk]):
                out[r["story_key"]] = r
        return out

    def story_verdicts(self, story_key: str) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT topic_id, verdict, starred, note, updated_at FROM verdicts "
                          "WHERE story_key = ?", [story_key])
        return {r["topic_id"]: r for r in rows}

    def set_verdict(self, story_key: str, topic_id: str, now: datetime, *,
                    verdict: str | None = None, starred: bool | None = None,
                    note: str | None = None, clear: bool = False) -> dict[str, Any]:
        """Record what a reviewer decided; fields left None keep their value
        (``clear`` resets the verdict to none). The row as it now stands."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO verdicts (story_key, topic_id, updated_at) "
                       "VALUES (?, ?, ?)", [story_key, topic_id, to_iso(now)])
            sets: list[str] = ["updated_at = ?"]
            params: list[Any] = [to_iso(now)]
            if verdict is not None or clear:
                sets.append("verdict = ?")
                params.append(verdict)
            if starred is not None:
                sets.append("starred = ?")
                params.append(int(starred))
            if note is not None:
                sets.append("note = ?")
                params.append(note)
            db.execute(f"UPDATE verdicts SET {', '.join(sets)} WHERE story_key = ? "
                       f"AND topic_id = ?", [*params, story_key, topic_id])
        return self.query("SELECT story_key, topic_id, verdict, starred, note, updated_at "
                          "FROM verdicts WHERE story_key = ? AND topic_id = ?",
                          [story_key, topic_id])[0]

    def reviewed_items(self) -> list[dict[str, Any]]:
        """Every item of every story given a verdict, with the verdict: the
        examples `monitor topics check` runs (a story is its items)."""
        cols = ("v.story_key, v.topic_id, v.verdict, i.id, i.title, i.summary, i.url, "
                "i.published_at")
        return self.query(f"""
            SELECT {cols} FROM verdicts v JOIN items i ON i.story_key = v.story_key
            WHERE v.verdict IS NOT NULL
            UNION ALL
            SELECT {cols} FROM verdicts v
            JOIN items i ON v.story_key = 'i:' || i.id
                        AND i.id = CAST(substr(v.story_key, 3) AS INTEGER)
            WHERE v.verdict IS NOT NULL AND v.story_key LIKE 'i:%'
            ORDER BY 2, 1, 4""")

    def precision(self, topic_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(relevant, reviewed) per topic, from the verdicts given."""
        if not topic_ids:
            return {}
        rows = self._rows(f"""
            SELECT topic_id, coalesce(sum(verdict = 'relevant'), 0), count(*)
            FROM verdicts WHERE verdict IS NOT NULL AND topic_id IN ({marks(topic_ids)})
            GROUP BY topic_id""", list(topic_ids))
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def daily_published_counts(self, topic_ids: Sequence[str], until: datetime,
                               days: int) -> list[tuple[str, int, int]]:
        """(topic, whole days before ``until``, distinct stories) by the items'
        publication date, for the ``days`` 24 h windows ending at ``until``."""
        if not topic_ids:
            return []
        # CROSS JOIN walks the window's items by date: the planner's own choice
        # walked every hit of the topics (the whole year) instead, 3x slower
        # on the 1M-item benchmark archive.
        end = int(until.timestamp())
        rows = self._rows(f"""
            SELECT h.topic_id,
                   (? - CAST(strftime('%s', i.published_at) AS INTEGER) - 1) / 86400 AS ago,
                   count(DISTINCT coalesce(i.story_key, 'i:' || i.id))
            FROM items i CROSS JOIN hits h ON h.item_id = i.id
            WHERE i.published_at >= ? AND i.published_at < ?
              AND h.topic_id IN ({marks(topic_ids)})
            GROUP BY h.topic_id, ago""",
            [end, to_iso(until - timedelta(days=days)), to_iso(until), *topic_ids])
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def story_languages(self, story_keys: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The languages the items of each story were given (feed or entry)."""
        out: dict[str, set[str]] = {}
        keyed = [k for k in story_keys if not k.startswith("i:")]
        for chunk in chunks(keyed, 500):
            for key, lang in self._rows(
                    f"SELECT DISTINCT i.story_key, coalesce(i.language, f.language) "
                    f"FROM items i JOIN feeds f ON f.id = i.feed_id "
                    f"WHERE i.story_key IN ({marks(chunk)})", chunk):
                if lang:
                    out.setdefault(key, set()).add(str(lang))
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def story_items(self, story_key: str) -> list[dict[str, Any]]:
        """Every item of a story across feeds, first published first."""
        where, params = _story_where(story_key)
        rows = self.query(f"""
            SELECT i.id, i.feed_id, i.title, i.url, i.summary, i.published_at, i.fetched_at,
                   coalesce(i.language, f.language) AS language
            FROM items i JOIN feeds f ON f.id = i.feed_id
            WHERE {where} ORDER BY i.published_at, i.id""", params)
        for r in rows:
            r["title"], r["summary"] = shown(r["title"]), shown(r["summary"])
            r["url"] = clean_url(r["url"])
        return rows

    def story_evidence(self, story_key: str) -> list[dict[str, Any]]:
        """The hits of a story's items: topic, item, matched words, snippet."""
        where, params = _story_where(story_key)
        rows = self.query(f"""
            SELECT h.topic_id, h.item_id, i.feed_id, h.terms, h.snippet, h.matched_at
            FROM hits h JOIN items i ON i.id = h.item_id
            WHERE {where} ORDER BY h.topic_id, h.id""", params)
        for r in rows:
            try:
                terms = json.loads(r["terms"] or "[]")
            except ValueError:
                terms = []
            r["terms"] = [str(t) for t in terms] if isinstance(terms, list) else []
            r["snippet"] = shown(r["snippet"]) or ""
        return rows
