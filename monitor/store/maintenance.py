"""Housekeeping the daemon runs: pruning old items nobody matched, merging the
full-text index, giving freed pages back to the file system (incremental
auto-vacuum, and the one-off conversion of a file created without it), the
WAL file's size and checkpoint, and the backfill of the ``norm`` column of
items stored before it existed."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from monitor.normalize import norm_document
from monitor.store.db import StoreBase, storage_error, to_iso

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
# Pages per incremental_vacuum transaction: ~0.15 s of write lock each at 200k
# real-size items on a busy 2-core machine (benchmarks/storage.py; 2,000: 0.28 s
# median, 0.5 s worst; 8,000: over 1 s).
VACUUM_PAGES = 1000
PROGRESS_EVERY = 5.0  # seconds between two progress reports of a VACUUM
# Items normalised per write transaction of the backfill. The normal forms
# are computed before the transaction opens; what holds the write lock is the
# FTS triggers re-indexing each row's four columns: ~0.35 s median per 500
# items at 200k real-size items on a busy 2-core machine (2,000: 1.5 s).
NORM_BATCH = 500


class MaintenanceMixin(StoreBase):
    def norm_backlog(self) -> int:
        """Items whose ``norm`` is not filled yet (stored before the column
        existed): the backfill's queue, counted on its partial index."""
        return int(self._read("SELECT count(*) FROM items WHERE norm IS NULL").fetchone()[0])

    def backfill_norm(self, *, batch: int = NORM_BATCH,
                      should_stop: Callable[[], bool] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Fill ``norm`` for the items without it, newest first, ``batch`` per
        transaction; returns how many. Resumable and idempotent: the queue is
        ``norm IS NULL`` itself, so a crash loses at most the batch in flight
        and a second run finds nothing to do. A row another writer fills
        meanwhile (an article's text, a changed entry) is left as it wrote it.
        ``progress(done, total)`` after each batch; ``should_stop`` ends it
        early (the next run carries on)."""
        total, done = self.norm_backlog(), 0
        while True:
            rows = self._rows("SELECT id, title, summary, article FROM items "
                              "WHERE norm IS NULL ORDER BY id DESC LIMIT ?", [batch])
            if not rows:
                return done
            values = [(norm_document(t or "", s or "", a or ""), i) for i, t, s, a in rows]
            with self.write() as db:
                db.conn.executemany("UPDATE items SET norm = ? WHERE id = ? AND norm IS NULL",
                                    values)
            done += len(rows)
            if progress is not None:
                progress(done, max(total, done))
            if len(rows) < batch or (should_stop is not None and should_stop()):
                return done

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
            raise storage_error(exc, self.path, "checkpoint") from None
        return int(row[0]), int(row[1]), int(row[2])

    def auto_vacuum(self) -> int:
        """0 none, 1 full, 2 incremental (``INCREMENTAL``)."""
        return int(self._read("PRAGMA auto_vacuum").fetchone()[0])

    def free_pages(self) -> int:
        return int(self._read("PRAGMA freelist_count").fetchone()[0])

    def return_free_pages(self, *, pages: int = VACUUM_PAGES,
                          should_stop: Callable[[], bool] | None = None) -> int:
        """Give the free pages (left by pruning, by merging the index) back to
        the file system, ``pages`` per write transaction so polls interleave;
        returns how many. The file shrinks at the next checkpoint. Nothing on
        a file not yet converted to incremental auto-vacuum."""
        if self.auto_vacuum() != INCREMENTAL:
            return 0
        total = 0
        while (free := self.free_pages()) > 0:
            self._vacuum_batch(pages)
            freed = free - self.free_pages()
            total += freed
            if freed <= 0 or (should_stop is not None and should_stop()):
                break
        return total

    def _vacuum_batch(self, pages: int) -> None:
        # executescript, not execute: Python's sqlite3 steps a PRAGMA once, and
        # incremental_vacuum frees one page per step.
        try:
            self.conn.executescript(
                f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({max(1, int(pages))}); COMMIT;")
        except sqlite3.Error as exc:
            self._rollback()
            raise storage_error(exc, self.path, "return free pages") from None

    def convert_to_incremental(self, *,
                               progress: Callable[[float], None] | None = None) -> bool:
        """Convert a file created without incremental auto-vacuum: one VACUUM
        (it rewrites the whole file, under the write lock: ~6 s per GB, and
        needs as much free disk). Not a migration: VACUUM cannot run inside a
        transaction. ``progress`` gets the seconds so far every few seconds.
        False when the file was already incremental."""
        if self.auto_vacuum() == INCREMENTAL:
            return False
        t0 = last = time.monotonic()

        def tick() -> int:
            nonlocal last
            now = time.monotonic()
            if progress is not None and now - last >= PROGRESS_EVERY:
                last = now
                progress(now - t0)
            return 0  # go on

        self.conn.set_progress_handler(tick, 100_000)
        try:
            self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self.conn.execute("VACUUM")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "vacuum") from None
        finally:
            self.conn.set_progress_handler(None, 0)
        return True
