"""Housekeeping the daemon runs: pruning old items nobody matched, merging the
full-text index, and the WAL file's size and checkpoint."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from monitor.store.db import StoreBase, storage_error, to_iso


class MaintenanceMixin(StoreBase):
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
