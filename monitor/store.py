"""The SQLite database: opening it safely, one transaction per poll (or per
group of polls), and the queries behind `feeds`, `hits`, `search` and the digest.

Owns the connection rules: WAL, a busy timeout, foreign keys, migrations on
open, a quick integrity check that refuses a corrupted file, and every write
in ``BEGIN IMMEDIATE`` (a deferred ``BEGIN`` that reads then writes fails at
once with "database is locked" whatever the timeout). It never does HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from monitor import stories
from monitor.clean import clean_text, clean_url
from monitor.errors import QueryError, StorageError
from monitor.migrations import migrations
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from monitor.types import Entry, FeedConfig, FeedState, FeedUpdate, Hit, Topic

DEFAULT_DB = "storage/monitor.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another writer
FETCH_LOG_PER_FEED = 100
FETCH_LOG_TRIM_EVERY = 8
_trim_dice = random.Random()
SEARCH_WINDOW = 20_000  # newest items searched first, doubling (see Store.search)


def to_iso(dt: datetime) -> str:
    """UTC, second precision, 'Z': sorts as text for every year 0001-9999."""
    dt = dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z")


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def db_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MONITOR_DB") or DEFAULT_DB


T = TypeVar("T")
_MAX_VARIABLES = 32766 // 4  # well under SQLite's limit of bound parameters


def _chunks(rows: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(rows), max(1, size)):
        yield list(rows[i:i + size])


@dataclass(frozen=True)
class PollWrite:
    """What one feed's poll writes: its new state and log line, and its new
    and changed items with their hits."""

    update: FeedUpdate
    new: Sequence[Entry] = ()
    changed: Sequence[Entry] = ()
    hits: Sequence[Hit] = ()


class Store:
    """One connection to the monitor database. Not shared between threads."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT,
                 check: bool = True) -> None:
        self.path = str(path)
        self.conn = _connect(self.path, busy_timeout)
        try:
            self.db = Database(self.conn)
            if check:
                _quick_check(self.conn, self.path)
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction taken with BEGIN IMMEDIATE; rolled back on any error."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.path, "begin a write") from None
        try:
            yield self.db
        except sqlite3.Error as exc:
            self._rollback()
            raise _storage_error(exc, self.path, "write") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _storage_error(exc, self.path, "commit") from None

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _migrate(self) -> None:
        if not migrations.pending(self.db):
            return
        with self.write() as db:
            migrations.apply(db)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.path, "read") from None
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # --- configuration sync ------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the feeds table reflect the config; a changed config URL resets the
        feed's validators and moves, a feed gone from the config is kept inactive."""
        with self.write() as db:
            known = {r["id"]: r for r in db.query(
                "SELECT id, config_url, name, tags, language, interval, active FROM feeds")}
            for feed in feeds:
                row = known.get(feed.id)
                # '' when feeds.yaml gives no name (the column is NOT NULL):
                # reports then show the feed's title, else its id (feed_name).
                values = {"name": feed.name or "", "tags": json.dumps(list(feed.tags)),
                          "language": feed.language, "interval": feed.interval, "active": 1}
                if row is None:
                    db.table("feeds").insert({"id": feed.id, "url": feed.url, "config_url": feed.url,
                                        "created_at": to_iso(now), **values})
                elif row["config_url"] != feed.url:
                    db.table("feeds").update(feed.id, {
                        **values, "url": feed.url, "config_url": feed.url, "etag": None,
                        "last_modified": None, "body_hash": None, "moved_to": None,
                        "moved_count": 0, "disabled_reason": None, "disabled_at": None,
                        "error_count": 0,
                        "next_due_at": None, "retry_after": None})
                elif any(row[k] != v for k, v in values.items()):
                    # Only what changed: sqlite-utils' update introspects the
                    # table on every call, seconds for a few thousand feeds.
                    db.execute(f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)} "
                               "WHERE id = ?", [*values.values(), feed.id])
            gone = set(known) - {f.id for f in feeds}
            for feed_id in gone:
                if known[feed_id]["active"]:
                    db.execute("UPDATE feeds SET active = 0 WHERE id = ?", [feed_id])

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
        sql = "SELECT id, feed_id, key, title, summary, url, published_at FROM items WHERE id > ?"
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
            for chunk in _chunks([str(i) for i in gone], 500):
                db.execute(f"DELETE FROM hits WHERE topic_id = ? AND item_id IN "
                           f"({','.join('?' * len(chunk))})", [topic_id, *chunk])
            added = self._insert_hits(db, {str(i): i for i in hits if i not in have},
                                      [Hit(h.topic_id, str(i), h.terms, h.snippet)
                                       for i, h in hits.items() if i not in have], now)
        return added, len(gone)

    def search(self, fts_query: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Stories matching an FTS5 query over the whole archive, best first: bm25
        (title weighted 3x) discounted by age; one row per story with its feeds.

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
                       bm25(items_fts, 3.0, 1.0) AS score
                FROM items_fts JOIN items i ON i.id = items_fts.rowid
                WHERE items_fts MATCH ? AND items_fts.rowid > ?
                ORDER BY bm25(items_fts, 3.0, 1.0)
                         / (1.0 + max(0.0, julianday('now') - julianday(i.published_at)) / 30.0)
                LIMIT ?""", [HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE, fts_query, low, wanted])
        except sqlite3.OperationalError as exc:
            raise QueryError(f"invalid query: {exc}", query=fts_query) from None
        names = [d[0] for d in cur.description]
        stories: dict[str, dict[str, Any]] = {}
        for row in cur.fetchall():
            rec = dict(zip(names, row, strict=True))
            if rec["story_key"] not in stories and len(stories) < limit:
                stories[rec["story_key"]] = rec
        for rec in stories.values():
            feeds = self.query("SELECT DISTINCT feed_id FROM items WHERE story_key = ? "
                               "ORDER BY feed_id", [rec["story_key"]])
            rec["feeds"] = [f["feed_id"] for f in feeds]
            rec["score"] = round(rec["score"], 4)
            _shown_clean(rec)
        return list(stories.values())

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

    def enable_feed(self, feed_id: str, now: datetime) -> str | None:
        """Bring back a feed disabled (HTTP 410): due now, its errors forgotten.
        The reason it was disabled, or None when it was not disabled."""
        with self.write() as db:
            rows = list(db.query("SELECT disabled_reason FROM feeds WHERE id = ?", [feed_id]))
            reason = rows[0]["disabled_reason"] if rows else None
            if reason is None:
                return None
            db.execute(
                "UPDATE feeds SET disabled_reason = NULL, disabled_at = NULL, next_due_at = ?, "
                "retry_after = NULL, error_count = 0, last_error = NULL, last_error_kind = NULL, "
                "failing_since = NULL WHERE id = ?", [to_iso(now), feed_id])
        return str(reason)

    # --- polling -----------------------------------------------------------------------

    def due_feeds(self, now: datetime, *, ids: Iterable[str] | None = None,
                  force: bool = False) -> list[FeedState]:
        """Active, enabled feeds whose time has come. ``force`` ignores the
        schedule, never a disabled feed nor a server's Retry-After."""
        sql = "SELECT * FROM feeds WHERE active = 1 AND disabled_reason IS NULL"
        params: list[Any] = []
        wanted = list(ids) if ids is not None else None
        if wanted is not None:
            sql += f" AND id IN ({','.join('?' * len(wanted))})"
            params += wanted
        iso = to_iso(now)
        if force:
            sql += " AND (retry_after IS NULL OR retry_after <= ?)"
            params.append(iso)
        else:
            sql += " AND (next_due_at IS NULL OR next_due_at <= ?)"
            params.append(iso)
        sql += " ORDER BY next_due_at IS NOT NULL, next_due_at, id"
        return [_feed_state(r) for r in self.query(sql, params)]

    def feed_state(self, feed_id: str) -> FeedState | None:
        rows = self.query("SELECT * FROM feeds WHERE id = ?", [feed_id])
        return _feed_state(rows[0]) if rows else None

    def existing_hashes(self, feed_id: str, keys: Sequence[str]) -> dict[str, str]:
        """content_hash of the entries of this feed already stored, by key."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(keys), 500):
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

    def commit_poll(self, update: FeedUpdate, *, new: Sequence[Entry] = (),
                    changed: Sequence[Entry] = (), hits: Sequence[Hit] = ()) -> tuple[int, int]:
        """Items, hits, feed state and the fetch log of one poll, in one
        transaction. Returns (items inserted, hits inserted); an item another
        process inserted meanwhile is skipped, with its hits."""
        return self.commit_polls([PollWrite(update, tuple(new), tuple(changed), tuple(hits))])[0]

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
            for part in _chunks(rows, _MAX_VARIABLES // (len(columns) + 1)):
                sets = ", ".join(f"{c} = v.column{i + 2}" for i, c in enumerate(columns))
                marks = ", ".join("(" + ", ".join("?" * (len(columns) + 1)) + ")" for _ in part)
                db.execute(f"UPDATE feeds SET {sets} FROM (VALUES {marks}) AS v "
                           "WHERE feeds.id = v.column1", [x for row in part for x in row])
        logs = [self._fetch_row(u, 0, 0) for u in updates]
        columns = tuple(logs[0]) if logs else ()
        for log_part in _chunks(logs, _MAX_VARIABLES // max(1, len(columns))):
            marks = ", ".join("(" + ", ".join("?" * len(columns)) + ")" for _ in log_part)
            db.execute(f"INSERT INTO fetches ({', '.join(columns)}) VALUES {marks}",
                       [x for row in log_part for x in row.values()])
        for u in updates:
            self._trim_fetch_log(db, u.feed_id)

    def _write_poll(self, db: Database, w: PollWrite) -> tuple[int, int]:
        update = w.update
        ids = self._insert_items(db, update.feed_id, w.new, update.fetched_at)
        ids.update(self._update_items(db, update.feed_id, w.changed))
        n_hits = self._insert_hits(db, ids, w.hits, update.fetched_at)
        inserted = sum(1 for e in w.new if e.key in ids)
        self._update_feed(db, update, inserted)
        self._log_fetch(db, update, inserted, n_hits)
        return inserted, n_hits

    def _insert_items(self, db: Database, feed_id: str, entries: Sequence[Entry],
                      fetched_at: datetime) -> dict[str, int]:
        ids: dict[str, int] = {}
        for e in entries:
            canon = stories.canonical_url(e.url)
            tkey = stories.title_key(e.title)
            row = {"feed_id": feed_id, "key": e.key, "url": e.url, "canonical_url": canon,
                   "story_key": self._story_key(db, canon, tkey, e, feed_id),
                   "title_key": tkey, "title": e.title, "summary": e.summary,
                   "author": e.author, "published_at": to_iso(e.published_at),
                   "updated_at": to_iso(e.updated_at) if e.updated_at else None,
                   "fetched_at": to_iso(fetched_at), "language": e.language,
                   "content_hash": e.content_hash}
            cur = db.execute(
                f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                "ON CONFLICT (feed_id, key) DO NOTHING", list(row.values()))
            if cur.rowcount == 1 and cur.lastrowid is not None:
                ids[e.key] = cur.lastrowid
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
        own = stories.url_key(e.url) or tkey
        if own:
            return own
        return "k:" + hashlib.sha256(f"{feed_id}\n{e.key}".encode()).hexdigest()[:24]

    def _update_items(self, db: Database, feed_id: str,
                      entries: Sequence[Entry]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for e in entries:
            cur = db.execute(
                "UPDATE items SET title = ?, summary = ?, url = ?, author = ?, updated_at = ?, "
                "content_hash = ? WHERE feed_id = ? AND key = ? RETURNING id",
                [e.title, e.summary, e.url, e.author,
                 to_iso(e.updated_at) if e.updated_at else None, e.content_hash, feed_id, e.key])
            row = cur.fetchone()
            if row:
                ids[e.key] = int(row[0])
        return ids

    def _insert_hits(self, db: Database, ids: dict[str, int], hits: Sequence[Hit],
                     now: datetime) -> int:
        count = 0
        for h in hits:
            item_id = ids.get(h.entry_key)
            if item_id is None:
                continue
            cur = db.execute(
                "INSERT INTO hits (item_id, topic_id, matched_at, terms, snippet) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, topic_id) DO NOTHING",
                [item_id, h.topic_id, to_iso(now), json.dumps(list(h.terms), ensure_ascii=False),
                 h.snippet])
            count += cur.rowcount
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

    # --- reports -----------------------------------------------------------------------

    def feeds_report(self) -> list[dict[str, Any]]:
        """Every feed's row and item count; text from servers (titles, errors,
        validators) shown clean, whatever an older version stored."""
        rows = self.query("""
            SELECT f.*, (SELECT count(*) FROM items i WHERE i.feed_id = f.id) AS items
            FROM feeds f ORDER BY f.active DESC, f.id""")
        for row in rows:
            row.update({k: clean_text(v) for k, v in row.items()
                        if isinstance(v, str) and k != "tags"})
        return rows

    def hits(self, *, topics: Sequence[str] = (), since: datetime | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """Recent hits, one row per story: every feed that carried it, every topic
        it matched with the words that matched each, and a snippet."""
        where = ["1 = 1"]
        params: list[Any] = []
        if topics:
            where.append(f"h.topic_id IN ({','.join('?' * len(topics))})")
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

    def _story(self, row: dict[str, Any], where: list[str], params: list[Any]) -> dict[str, Any]:
        first = self.query("SELECT i.title, i.url, h.topic_id, h.snippet FROM hits h "
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
        return _shown_clean({"title": first["title"], "url": first["url"],
                "published_at": row["published_at"], "matched_at": row["matched_at"],
                "topics": list(by_topic), "terms": terms, "matched": by_topic,
                "snippet": first["snippet"], "feeds": [f["feed_id"] for f in feeds],
                "story_key": row["story_key"]})

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("feeds", "items", "hits", "topics", "fetches"):
            out[table] = int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out

    # --- maintenance (daemon) ------------------------------------------------------------

    def prune(self, retention: float, now: datetime, *, batch: int = 2000,
              should_stop: Callable[[], bool] | None = None) -> int:
        """Delete the items no topic hit that were first fetched more than
        ``retention`` seconds before ``now``; returns how many.

        By ``fetched_at``, not ``published_at``: the publication date is the
        feed's word (missing, in the future, or years old on an archive
        re-published today), and an item pruned while its feed still carries it
        would come back at the next poll as new, with new hits. Items with hits
        are kept with their hits; the FTS triggers remove the rest from the
        index. One short transaction per ``batch`` so polls interleave;
        ``should_stop`` ends it early (the next run carries on)."""
        cutoff = to_iso(now - timedelta(seconds=retention))
        total = 0
        while True:
            with self.write() as db:
                cur = db.execute(
                    "DELETE FROM items WHERE id IN (SELECT i.id FROM items i "
                    "WHERE i.fetched_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM hits h WHERE h.item_id = i.id) ORDER BY i.id LIMIT ?)",
                    [cutoff, batch])
            total += cur.rowcount
            if cur.rowcount < batch or (should_stop is not None and should_stop()):
                return total

    def optimize_fts(self, *, pages: int = 1000,
                     should_stop: Callable[[], bool] | None = None) -> bool:
        """Merge the full-text index's b-trees, ``pages`` pages per transaction
        (an FTS5 'merge' with a negative count: the incremental form of
        'optimize', so a large index never holds the write lock for long).
        True when done, False when ``should_stop`` cut it short."""
        while True:
            with self.write() as db:
                before = self.conn.total_changes
                db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('merge', ?)",
                           [-abs(pages)])
                worked = self.conn.total_changes - before >= 2  # per the FTS5 docs
            if not worked:
                self.conn.execute("PRAGMA optimize")
                return True
            if should_stop is not None and should_stop():
                return False

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def checkpoint(self, *, min_wal_bytes: int = 0) -> tuple[int, int, int] | None:
        """``PRAGMA wal_checkpoint(TRUNCATE)`` once the WAL file has grown to
        ``min_wal_bytes``: its pages go into the database and it is cut back to
        zero. Returns SQLite's (busy, wal pages, pages checkpointed), or None
        when the WAL was small enough. A reader in the middle of a transaction
        can make it partial (busy = 1); the next call finishes the job."""
        if min_wal_bytes and self.wal_bytes() < min_wal_bytes:
            return None
        try:
            row = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.path, "checkpoint") from None
        return int(row[0]), int(row[1]), int(row[2])

    _DAEMON_COLUMNS = frozenset({
        "pid", "host", "started_at", "last_tick_at", "stopped_at", "config", "tick",
        "last_maintenance_at", "last_optimize_at", "last_pruned", "last_reload_at",
        "last_reload_error"})

    def daemon_started(self, *, pid: int, host: str, config: str, tick: float,
                       now: datetime) -> None:
        """The heartbeat row of a daemon that just took the lock (housekeeping
        dates of the previous run are kept)."""
        self.daemon_update(pid=pid, host=host, config=config, tick=tick,
                           started_at=to_iso(now), last_tick_at=None, stopped_at=None,
                           last_reload_at=None, last_reload_error=None)

    def daemon_update(self, **values: Any) -> None:
        unknown = set(values) - self._DAEMON_COLUMNS
        if unknown:
            raise ValueError(f"not a daemon column: {', '.join(sorted(unknown))}")
        with self.write() as db:
            db.table("daemon").upsert({"id": 1, **values}, pk="id")

    def daemon_row(self) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM daemon WHERE id = 1")
        return rows[0] if rows else None

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

    def digest_pending(self, digest_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM digest_pending WHERE digest_id = ?", [digest_id])
        return rows[0] if rows else None

    def digest_started(self, digest_id: str, now: datetime) -> None:
        """A digest run begins: until it is sent, the row stays and is due at
        once, so a crash or a kill mid-send is retried at the next start."""
        with self.write() as db:
            db.execute(
                "INSERT INTO digest_pending (digest_id, scheduled_at, attempts, last_attempt_at, "
                "next_attempt_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (digest_id) DO UPDATE "
                "SET last_attempt_at = excluded.last_attempt_at",
                [digest_id, to_iso(now), to_iso(now), to_iso(now)])

    def digest_missed(self, digest_id: str, scheduled_at: datetime, now: datetime,
                      reason: str) -> None:
        """A run that should have happened (while no daemon ran): due at once."""
        with self.write() as db:
            db.execute(
                "INSERT INTO digest_pending (digest_id, scheduled_at, attempts, next_attempt_at, "
                "last_error) VALUES (?, ?, 0, ?, ?) ON CONFLICT (digest_id) DO NOTHING",
                [digest_id, to_iso(scheduled_at), to_iso(now), reason])

    def digest_failed(self, digest_id: str, *, attempts: int, error: str,
                      next_attempt_at: datetime) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE digest_pending SET attempts = ?, last_error = ?, next_attempt_at = ? "
                "WHERE digest_id = ?", [attempts, error, to_iso(next_attempt_at), digest_id])

    def digest_sent(self, digest_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM digest_pending WHERE digest_id = ?", [digest_id])

    def digest_retries_due(self, now: datetime) -> list[str]:
        return [r["digest_id"] for r in self.query(
            "SELECT digest_id FROM digest_pending WHERE next_attempt_at <= ? "
            "ORDER BY next_attempt_at, digest_id", [to_iso(now)])]


# --- helpers -------------------------------------------------------------------------------

def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    if path != ":memory:":
        parent = Path(path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the database folder: {exc.strerror}",
                               db=path) from None
    try:
        # isolation_level=None: no implicit transactions; write() opens them itself.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = _wal_mode(conn, busy_timeout)
        conn.execute("PRAGMA foreign_keys = ON")
        # NORMAL in WAL: a power cut may lose the last polls, never corrupt; their
        # validators are lost with them, so the next poll fetches them again.
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise _storage_error(exc, path, "open") from None
    if path != ":memory:" and str(mode).lower() != "wal":
        conn.close()
        raise StorageError(f"cannot switch the database to WAL mode (got {mode})", db=path)
    return conn


def _wal_mode(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch a connection to WAL; returns the journal mode now in force.

    On a new file, processes opening it at once race to make the switch and
    SQLite may answer the loser "database is locked" at once, without waiting
    for the busy timeout: so retry until that timeout (once the file is in WAL
    mode, the pragma changes nothing and never waits)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _quick_check(conn: sqlite3.Connection, path: str) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise _storage_error(exc, path, "check") from None
    if rows != [("ok",)]:
        first = "; ".join(str(r[0]) for r in rows[:3])
        raise StorageError(
            f"the database is corrupted ({first}); it was left untouched: restore it from a "
            "backup or move it aside to start a new one", db=path)


def _storage_error(exc: sqlite3.Error, path: str, action: str) -> StorageError:
    text = str(exc)
    if "file is not a database" in text or "malformed" in text:
        return StorageError(
            f"the database is corrupted or not a monitor database ({text}); it was left "
            "untouched: restore it from a backup or move it aside", db=path)
    if "readonly" in text or "unable to open" in text:
        return StorageError(f"cannot {action} the database ({text}): check the folder's "
                            "permissions", db=path)
    if "disk is full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_IOERR_WRITE":
        # A file size limit (EFBIG) or a failing disk surfaces as a write I/O
        # error, not SQLITE_FULL; the transaction is rolled back either way.
        return StorageError(f"cannot write while trying to {action} (disk full, file size "
                            f"limit or I/O error: {text}); the transaction was rolled back",
                            db=path)
    return StorageError(f"cannot {action} the database: {text}", db=path)


def _feed_state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        id=row["id"], url=row["url"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], error_count=row["error_count"] or 0,
        failing_since=from_iso(row["failing_since"]), moved_to=row["moved_to"],
        moved_count=row["moved_count"] or 0)


def _shown_clean(story: dict[str, Any]) -> dict[str, Any]:
    """A story row of a report with its feed text cleaned (monitor.clean): new
    items are stored clean, but an archive may hold rows from older versions
    (bidi controls were kept until the parser used monitor.clean)."""
    story["title"] = clean_text(story["title"]) if story["title"] is not None else None
    story["snippet"] = clean_text(story["snippet"]) if story["snippet"] is not None else None
    story["url"] = clean_url(story["url"])
    return story
