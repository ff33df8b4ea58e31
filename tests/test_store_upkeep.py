"""The store's upkeep on real SQLite files: where the integrity check runs,
incremental auto-vacuum (new files, converted files, pages given back after
pruning), and every index on ``items`` used by a named store query."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import polled_archive, run_cli, write_config

from monitor.app import open_monitor
from monitor.errors import StorageError
from monitor.store import PollWrite, Store
from monitor.store.db import CACHE_KIB, MMAP_BYTES
from monitor.types import Entry, FeedConfig, FeedUpdate

OLD = datetime(2020, 1, 5, 12, 0, tzinfo=UTC)  # long past any retention
FEEDS = [FeedConfig(id=f"f{i}", url=f"https://example.org/{i}", name=f"F{i}") for i in range(3)]


def entry(key: str, rng: random.Random, when: datetime = OLD) -> Entry:
    # real-size items: ~2 KB of summary that does not compress into few pages
    words = " ".join(f"w{rng.randrange(10**6)}" for _ in range(300))
    return Entry(key=key, title=f"Story {key} about Astana", summary=words,
                 url=f"https://example.org/{key}", published_at=when, content_hash=key)


def poll_write(feed_id: str, entries: list[Entry], when: datetime = OLD) -> PollWrite:
    upd = FeedUpdate(feed_id=feed_id, fetched_at=when, outcome="new",
                     next_due_at=when + timedelta(minutes=15), http_status=200)
    return PollWrite(upd, new=entries)


def fill(path: Path, n: int, when: datetime = OLD) -> None:
    rng = random.Random(7)
    with Store(path) as s:
        s.sync_feeds(FEEDS, when)
        for start in range(0, n, 200):
            s.commit_polls([poll_write(f"f{start % 3}", [entry(f"{start}-{i}", rng, when)
                                                          for i in range(200)], when)])


def pragma(path: Path, name: str) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


# --- the integrity check: at daemon start, `monitor check`, maintenance; not every poll ---

def smash_index(db: Path, index: str) -> None:
    """Break the root page of one index of ``items``, which a poll with
    nothing due never reads (the quick check reads every page)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [index]).fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    assert root is not None, index
    data = bytearray(db.read_bytes())
    at = (root[0] - 1) * page_size
    data[at: at + 12] = b"\x0a" + b"\xff" * 11
    db.write_bytes(bytes(data))


def test_poll_skips_the_integrity_check_that_check_and_maintenance_run(tmp_path: Path):
    with polled_archive(tmp_path, {"bbc": "bbc-world.xml"}) as (config, db):
        smash_index(db, "idx_items_title_key_published_at")
        # Moved: a poll with nothing due no longer reads the whole file
        # (it used to refuse this file with exit 1).
        polled = run_cli("poll", config=config, db=db)
        assert polled.exit_code == 0, polled.output
        checked = run_cli("check", config=config, db=db)
        assert checked.exit_code == 1, checked.output
        assert "corrupt" in checked.output and str(db) in checked.output
        with open_monitor(str(config), str(db)) as m, pytest.raises(StorageError,
                                                                     match="corrupt"):
            m.maintain(lambda: False)


def test_check_reports_the_integrity_of_a_sound_database(tmp_path: Path):
    with polled_archive(tmp_path, {"bbc": "bbc-world.xml"}) as (config, db):
        result = run_cli("check", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert "integrity check ok" in result.output


# --- incremental auto-vacuum ------------------------------------------------------------

def test_new_database_uses_incremental_auto_vacuum(tmp_path: Path):
    Store(tmp_path / "m.db").close()
    assert pragma(tmp_path / "m.db", "auto_vacuum") == 2


def test_page_cache_and_mmap_sizes_are_set_on_open(tmp_path: Path):
    with Store(tmp_path / "m.db") as s:
        assert s.conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        assert s.conn.execute("PRAGMA mmap_size").fetchone()[0] == MMAP_BYTES


def maintain(tmp_path: Path, db: Path, lines: list[str] | None = None) -> Any:
    config = write_config(tmp_path / "feeds.yaml", [], settings={"retention": "1d"})
    on_line: Callable[[str], None] | None = None if lines is None else lines.append
    with open_monitor(str(config), str(db)) as m:
        return m.maintain(lambda: False, on_line=on_line)


def test_maintenance_gives_pruned_pages_back_and_the_file_shrinks(tmp_path: Path):
    db = tmp_path / "m.db"
    fill(db, 1200)
    with Store(db) as s:
        s.checkpoint()
    before = db.stat().st_size
    done = maintain(tmp_path, db)
    assert done.pruned == 1200 and done.freed_pages > 100
    # (the daemon row written afterwards may free a page or two)
    assert pragma(db, "freelist_count") < done.freed_pages / 10
    assert db.stat().st_size < before / 2, (before, db.stat().st_size)


def test_free_pages_go_back_in_batches(tmp_path: Path):
    db = tmp_path / "m.db"
    fill(db, 600)
    with Store(db) as s:
        s.prune(86400, datetime.now(UTC))
        free = s.free_pages()
        assert free > 60
        statements: list[str] = []
        s.conn.set_trace_callback(statements.append)
        assert s.return_free_pages(pages=20) == free
        s.conn.set_trace_callback(None)
        assert s.free_pages() == 0
        # one short write transaction per 20 pages, not one long one
        assert sum(sql.strip() == "BEGIN IMMEDIATE;" for sql in statements) >= free // 20


def test_existing_file_without_auto_vacuum_is_converted_by_maintenance(tmp_path: Path):
    db = tmp_path / "m.db"
    fill(db, 400)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")  # as a file made before this release
    conn.close()
    assert pragma(db, "auto_vacuum") == 0
    with Store(db) as s:  # opening alone changes nothing
        assert s.auto_vacuum() == 0
    before = db.stat().st_size
    lines: list[str] = []
    done = maintain(tmp_path, db, lines)
    assert done.converted and pragma(db, "auto_vacuum") == 2
    assert any("incremental auto-vacuum" in line for line in lines)
    # converted after pruning: the VACUUM took the pruned pages (the daemon
    # row written afterwards may free one)
    assert done.pruned == 400 and pragma(db, "freelist_count") <= 2
    assert db.stat().st_size < before / 2, (before, db.stat().st_size)
    assert maintain(tmp_path, db).converted is False


# --- every index on items used by a named store query -----------------------------------

def plans(store: Store, call: Callable[[], object]) -> set[str]:
    """The indexes of ``items`` that the statements ``call`` runs use."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.conn.set_trace_callback(None)
    used: set[str] = set()
    for sql in statements:
        if "items" not in sql or not sql.lstrip().upper().startswith(("SELECT", "DELETE")):
            continue
        for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql):
            detail = str(row[3])
            used |= {w for w in detail.replace("(", " ").split() if w.startswith("idx_items")}
            if "sqlite_autoindex_items" in detail:
                used.add(detail.split("INDEX ")[1].split()[0])
    return used


def test_every_index_on_items_is_used_by_a_store_query(tmp_path: Path):
    db = tmp_path / "m.db"
    now = datetime.now(UTC)
    fill(db, 400, when=now)
    with Store(db) as s:
        s.conn.execute("ANALYZE")  # plans as on a real archive, after PRAGMA optimize
        by_query: dict[str, Callable[[], object]] = {
            "existing_hashes": lambda: s.existing_hashes("f0", ["0-1", "0-2"]),
            "items_fetched_since": lambda: s.items_fetched_since("f0", now),
            "recent_published": lambda: s.recent_published("f0", now, 20),
            "count_items": lambda: s.count_items(now - timedelta(days=1)),
            "story_carriers": lambda: s.story_carriers(["k1"], now),
            # the story key of a new item: by canonical URL, then title and date
            "commit_polls": lambda: s.commit_polls([poll_write(
                "f1", [Entry(key="n1", title="Story x about Astana", summary="s",
                             url="https://example.org/new", published_at=now,
                             content_hash="n1")], now)]),
            "backfill_norm": lambda: s.backfill_norm(),
        }
        used = {name: plans(s, call) for name, call in by_query.items()}
        indexes = [r[1] for r in s.conn.execute("PRAGMA index_list('items')")
                   if r[3] == "c" or r[1].startswith("idx_")]
    expected = {
        "idx_items_feed_id_key": "existing_hashes",
        "idx_items_feed_id_fetched_at": "items_fetched_since",
        "idx_items_feed_id_published_at": "recent_published",
        "idx_items_published_at": "count_items",
        "idx_items_story_key": "story_carriers",
        "idx_items_canonical_url": "commit_polls",
        "idx_items_title_key_published_at": "commit_polls",
        # the backfill's queue (items stored before the norm column)
        "idx_items_norm_queue": "backfill_norm",
    }
    assert sorted(indexes) == sorted(expected), indexes
    for index, query in expected.items():
        assert index in used[query], (index, query, used)
