"""The poll's writes: items (new and changed), their story keys, their hits,
the feed's new state and the fetch log, one transaction for a group of polls;
and the two reads a poll makes before matching (stored content hashes, the
day's new items for the quota)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from monitor import stories
from monitor.normalize import norm_with
from monitor.store.alerts import enqueue_alerts, had_success
from monitor.store.articles import queue_articles
from monitor.store.db import MAX_VARIABLES, StoreBase, chunks, to_iso
from monitor.types import AlertConfig, Entry, FeedUpdate, Hit

FETCH_LOG_PER_FEED = 100
FETCH_LOG_TRIM_EVERY = 8
_trim_dice = random.Random()


@dataclass(frozen=True)
class PollWrite:
    """What one feed's poll writes: its new state and log line, and its new
    and changed items with their hits."""

    update: FeedUpdate
    new: Sequence[Entry] = ()
    changed: Sequence[Entry] = ()
    hits: Sequence[Hit] = ()
    # The config's alerts: their outbox rows are written with these hits.
    alerts: Sequence[AlertConfig] = ()
    # Article text: the new items published at or after this are queued.
    articles_since: datetime | None = None


# The columns of items_fts, in its order (migrations m010 and m011).
FTS_INDEXED = ("title", "summary", "article", "norm")


def index_new_items(db: Database, ids: Sequence[int]) -> None:
    """Index just-inserted items in items_fts, in one statement per chunk:
    since m011 no insert trigger does it (see there for why)."""
    cols = ", ".join(FTS_INDEXED)
    for part in chunks(list(ids), MAX_VARIABLES):
        db.execute(f"INSERT INTO items_fts (rowid, {cols}) SELECT id, {cols} FROM items "
                   f"WHERE id IN ({', '.join('?' * len(part))})", part)


class ItemsMixin(StoreBase):
    def existing_hashes(self, feed_id: str, keys: Sequence[str]) -> dict[str, str]:
        """content_hash of the entries of this feed already stored, by key."""
        out: dict[str, str] = {}
        for chunk in chunks(list(keys), 500):
            rows = self.query(
                f"SELECT key, content_hash FROM items WHERE feed_id = ? AND key IN "
                f"({','.join('?' * len(chunk))})", [feed_id, *chunk])
            out.update({r["key"]: r["content_hash"] for r in rows})
        return out

    def items_fetched_since(self, feed_id: str, since: datetime) -> int:
        """How many items of this feed were first stored at or after ``since``."""
        rows = self.query("SELECT count(*) AS n FROM items WHERE feed_id = ? AND fetched_at >= ?",
                          [feed_id, to_iso(since)])
        return int(rows[0]["n"])

    def commit_polls(self, writes: Sequence[PollWrite]) -> list[tuple[int, int]]:
        """The polls of several feeds in one transaction, all or none: a
        transaction costs far more than the few rows of an unchanged feed.
        Returns (items inserted, hits inserted) per write, in order."""
        with self.write() as db:
            if all(not (w.new or w.changed or w.hits) for w in writes):
                self._write_states(db, [w.update for w in writes])
                return [(0, 0)] * len(writes)
            return [self._write_poll(db, w) for w in writes]

    def _write_states(self, db: Database, updates: Sequence[FeedUpdate]) -> None:
        """The state and log line of feeds without items (304, unchanged,
        failed) in a few multi-row statements: per row, a statement costs the
        ingest thread a round trip for the GIL while the event loop runs."""
        by_columns: dict[tuple[str, ...], list[list[Any]]] = {}
        for u in updates:
            values = self._feed_values(u, 0)
            by_columns.setdefault(tuple(values), []).append([u.feed_id, *values.values()])
        for columns, rows in by_columns.items():
            for part in chunks(rows, MAX_VARIABLES // (len(columns) + 1)):
                sets = ", ".join(f"{c} = v.column{i + 2}" for i, c in enumerate(columns))
                marks = ", ".join("(" + ", ".join("?" * (len(columns) + 1)) + ")" for _ in part)
                db.execute(f"UPDATE feeds SET {sets} FROM (VALUES {marks}) AS v "
                           "WHERE feeds.id = v.column1", [x for row in part for x in row])
        logs = [self._fetch_row(u, 0, 0) for u in updates]
        columns = tuple(logs[0]) if logs else ()
        for log_part in chunks(logs, MAX_VARIABLES // max(1, len(columns))):
            marks = ", ".join("(" + ", ".join("?" * len(columns)) + ")" for _ in log_part)
            db.execute(f"INSERT INTO fetches ({', '.join(columns)}) VALUES {marks}",
                       [x for row in log_part for x in row.values()])
        for u in updates:
            self._trim_fetch_log(db, u.feed_id)

    def _write_poll(self, db: Database, w: PollWrite) -> tuple[int, int]:
        update = w.update
        ids = self._insert_items(db, update.feed_id, w.new, update.fetched_at)
        ids.update(self._update_items(db, update.feed_id, w.changed))
        fresh: list[tuple[int, Hit]] = []
        n_hits = self._insert_hits(db, ids, w.hits, update.fetched_at, fresh)
        # Before _update_feed: a feed's first success is its backlog.
        backlog = not had_success(db, update.feed_id)
        if w.alerts and fresh and not backlog:
            entries = {e.key: e for e in (*w.new, *w.changed)}
            enqueue_alerts(db, w.alerts, update.feed_id,
                           [(i, h, entries[h.entry_key]) for i, h in fresh], update.fetched_at)
        inserted = sum(1 for e in w.new if e.key in ids)
        if w.articles_since is not None:
            new_ids = [ids[e.key] for e in w.new if e.key in ids]
            queue_articles(db, new_ids, w.articles_since, alerts=not backlog)
        self._update_feed(db, update, inserted)
        self._log_fetch(db, update, inserted, n_hits)
        return inserted, n_hits

    def _insert_items(self, db: Database, feed_id: str, entries: Sequence[Entry],
                      fetched_at: datetime) -> dict[str, int]:
        ids: dict[str, int] = {}
        fetched = to_iso(fetched_at)
        for e in entries:
            canon = stories.canonical_url(e.url)
            tkey = stories.title_key(e.title)
            row = {"feed_id": feed_id, "key": e.key, "url": e.url, "canonical_url": canon,
                   "story_key": self._story_key(db, canon, tkey, e, feed_id),
                   "title_key": tkey, "title": e.title, "summary": e.summary,
                   "author": e.author, "published_at": to_iso(e.published_at),
                   "updated_at": to_iso(e.updated_at) if e.updated_at else None,
                   "fetched_at": fetched, "language": e.language,
                   "content_hash": e.content_hash,
                   "norm": norm_with(e.norm, e.title or "", e.summary or "", e.article or "")}
            cur = db.execute(
                f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                "ON CONFLICT (feed_id, key) DO NOTHING", list(row.values()))
            if cur.rowcount == 1 and cur.lastrowid is not None:
                ids[e.key] = cur.lastrowid
        index_new_items(db, list(ids.values()))
        return ids

    def _story_key(self, db: Database, canon: str | None, tkey: str | None, e: Entry,
                   feed_id: str) -> str:
        if canon:
            row = db.execute("SELECT story_key FROM items WHERE canonical_url = ? LIMIT 1",
                             [canon]).fetchone()
            if row:
                return str(row[0])
        if tkey:
            lo = to_iso(e.published_at - timedelta(seconds=stories.STORY_WINDOW))
            hi = to_iso(e.published_at + timedelta(seconds=stories.STORY_WINDOW))
            row = db.execute(
                "SELECT story_key FROM items WHERE title_key = ? AND published_at BETWEEN ? AND ? "
                "LIMIT 1", [tkey, lo, hi]).fetchone()
            if row:
                return str(row[0])
        # stories.url_key(e.url), from the canonical URL already made: making
        # it again was ~4 % of the ingest thread's time (cProfile, first poll).
        own = ("u:" + hashlib.sha256(canon.encode()).hexdigest()[:24] if canon else None) or tkey
        if own:
            return own
        return "k:" + hashlib.sha256(f"{feed_id}\n{e.key}".encode()).hexdigest()[:24]

    def _update_items(self, db: Database, feed_id: str,
                      entries: Sequence[Entry]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for e in entries:
            # The norm column covers the stored article text too, which the
            # feed's entry does not carry.
            stored = db.execute("SELECT article FROM items WHERE feed_id = ? AND key = ?",
                                [feed_id, e.key]).fetchone()
            norm = norm_with(e.norm, e.title or "", e.summary or "",
                             (stored[0] if stored else None) or e.article or "")
            cur = db.execute(
                "UPDATE items SET title = ?, summary = ?, url = ?, author = ?, updated_at = ?, "
                "content_hash = ?, norm = ? WHERE feed_id = ? AND key = ? RETURNING id",
                [e.title, e.summary, e.url, e.author,
                 to_iso(e.updated_at) if e.updated_at else None, e.content_hash, norm,
                 feed_id, e.key])
            row = cur.fetchone()
            if row:
                ids[e.key] = int(row[0])
        return ids

    def _insert_hits(self, db: Database, ids: dict[str, int], hits: Sequence[Hit],
                     now: datetime, fresh: list[tuple[int, Hit]] | None = None) -> int:
        count = 0
        for h in hits:
            item_id = ids.get(h.entry_key)
            if item_id is None:
                continue
            cur = db.execute(
                "INSERT INTO hits (item_id, topic_id, matched_at, terms, snippet, found_in) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, topic_id) DO NOTHING",
                [item_id, h.topic_id, to_iso(now), json.dumps(list(h.terms), ensure_ascii=False),
                 h.snippet, ",".join(h.found_in)])
            count += cur.rowcount
            if cur.rowcount == 1 and fresh is not None:
                fresh.append((item_id, h))
        return count

    def _update_feed(self, db: Database, u: FeedUpdate, inserted: int) -> None:
        values = self._feed_values(u, inserted)
        # Plain SQL: sqlite-utils' update/insert introspect the table on every call,
        # which was most of the cost of a 304 poll.
        db.execute(f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                   [*values.values(), u.feed_id])

    @staticmethod
    def _feed_values(u: FeedUpdate, inserted: int) -> dict[str, Any]:
        values: dict[str, Any] = {
            "last_fetch_at": to_iso(u.fetched_at), "last_status": u.http_status,
            # rounded up: stored to the second, a feed must not come due early
            "next_due_at": to_iso(u.next_due_at + timedelta(microseconds=999_999)),
            "retry_after": to_iso(u.retry_after) if u.retry_after else None,
            "error_count": u.error_count, "moved_to": u.moved_to, "moved_count": u.moved_count,
        }
        if u.failure is None:
            values.update(last_success_at=to_iso(u.fetched_at), last_error=None,
                          last_error_kind=None, failing_since=None)
            if u.outcome != "not-modified" and u.outcome != "unchanged":
                values["bozo_reason"] = u.bozo_reason
        else:
            values.update(last_error=u.failure.reason, last_error_kind=u.failure.kind,
                          failing_since=to_iso(u.failing_since or u.fetched_at))
        if u.replace_validators:
            values.update(etag=u.etag, last_modified=u.last_modified, body_hash=u.body_hash)
        else:
            values.update({k: v for k, v in (("etag", u.etag), ("last_modified", u.last_modified),
                                              ("body_hash", u.body_hash)) if v is not None})
        if u.disabled_reason:
            values["disabled_reason"] = u.disabled_reason
            values["disabled_at"] = to_iso(u.fetched_at)
        if u.url:
            values["url"] = u.url
        if u.title:
            values["title"] = u.title
        if inserted:
            values["last_new_item_at"] = to_iso(u.fetched_at)
        if u.quota_skipped is not None:
            values.update(quota_skipped=u.quota_skipped, quota_limit=u.quota_limit,
                          quota_at=to_iso(u.fetched_at))
        return values

    def _log_fetch(self, db: Database, u: FeedUpdate, inserted: int, n_hits: int) -> None:
        row = self._fetch_row(u, inserted, n_hits)
        db.execute(f"INSERT INTO fetches ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
        self._trim_fetch_log(db, u.feed_id)

    @staticmethod
    def _fetch_row(u: FeedUpdate, inserted: int, n_hits: int) -> dict[str, Any]:
        return {
            "feed_id": u.feed_id, "started_at": to_iso(u.fetched_at), "duration": u.duration,
            "url": u.request_url, "http_status": u.http_status, "outcome": u.outcome,
            "bytes": u.bytes_read, "new_items": inserted, "hits": n_hits,
            "error_kind": u.failure.kind if u.failure else None,
            "error": u.failure.reason if u.failure else None,
        }

    @staticmethod
    def _trim_fetch_log(db: Database, feed_id: str) -> None:
        # Trimming walks the feed's last FETCH_LOG_PER_FEED rows, a third of
        # the cost of a 304's commit: done at random one fetch in
        # FETCH_LOG_TRIM_EVERY (at random, so no polling order can starve a
        # feed of it), a feed keeps a few rows over the limit between trims.
        if _trim_dice.randrange(FETCH_LOG_TRIM_EVERY) == 0:
            db.execute(
                "DELETE FROM fetches WHERE feed_id = ? AND id <= (SELECT id FROM fetches "
                "WHERE feed_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                [feed_id, feed_id, FETCH_LOG_PER_FEED])
