"""The store on real SQLite files: schema, transactions, locking, corruption."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import StorageError
from monitor.store import PollWrite, Store, from_iso, to_iso
from monitor.types import Entry, FeedConfig, FeedUpdate, FetchFailure, Hit, Topic

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FEED = FeedConfig(id="f1", url="https://example.org/feed", name="F1")
TOPIC = Topic(id="t1", name="T1", query="kazakhstan", fts_query="kazakhstan")


def entry(key: str, title: str = "Kazakhstan news") -> Entry:
    return Entry(key=key, title=title, summary="s", url=f"https://example.org/{key}",
                 published_at=NOW, content_hash=key + title)


def update(**kw: object) -> FeedUpdate:
    base: dict[str, object] = {"feed_id": "f1", "fetched_at": NOW, "outcome": "new",
                               "next_due_at": NOW + timedelta(minutes=15), "http_status": 200,
                               "etag": '"v1"', "replace_validators": True}
    base.update(kw)
    return FeedUpdate(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "m.db") as s:
        s.sync_feeds([FEED], NOW)
        s.sync_topics([TOPIC], NOW)
        yield s


def test_pragmas_and_schema(store: Store):
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"feeds", "items", "items_fts", "topics", "hits", "fetches"} <= tables


def test_the_wal_is_not_checkpointed_inside_a_poll(store: Store):
    # The checkpoint a commit would run past SQLite's default 1,000 pages is
    # left to the daemon between cycles (decide.WAL_LIMIT) or to the close;
    # SQLite runs one itself only past four times that limit.
    from monitor.decide import WAL_LIMIT
    from monitor.store.db import AUTOCHECKPOINT_PAGES

    conn = store.conn
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
    assert AUTOCHECKPOINT_PAGES * conn.execute("PRAGMA page_size").fetchone()[0] == 4 * WAL_LIMIT
    words = " ".join(f"word{i}" for i in range(1500))
    for n in range(12):  # 12 commits of ~1 MB of text and its index
        batch = [Entry(key=f"k{n}-{i}", title=f"title {n} {i}", summary=words,
                       url=f"https://example.org/{n}/{i}", published_at=NOW,
                       content_hash=f"h{n}-{i}") for i in range(60)]
        store.commit_polls([PollWrite(update(), new=batch)])
    default_bound = 1000 * conn.execute("PRAGMA page_size").fetchone()[0]
    assert store.wal_bytes() > 2 * default_bound  # grown past it: never wrapped by a checkpoint
    busy, _, _ = store.checkpoint() or (1, 0, 0)
    assert busy == 0 and store.wal_bytes() == 0
    assert store.query("SELECT count(*) AS n FROM items")[0]["n"] == 720


def test_reopen_applies_no_migration_twice(tmp_path: Path):
    Store(tmp_path / "m.db").close()
    with Store(tmp_path / "m.db") as s:
        names = [r["name"] for r in s.query("SELECT name FROM _sqlite_migrations")]
    assert names == sorted(set(names)) and names


def test_commit_poll_writes_items_hits_state_and_log_together(store: Store):
    hits = [Hit("t1", "a", ("kazakhstan",), "[[Kazakhstan]] news")]
    write = PollWrite(update(), new=[entry("a"), entry("b")], hits=hits)
    inserted, n_hits = store.commit_polls([write])[0]
    assert (inserted, n_hits) == (2, 1)
    feed = store.query("SELECT * FROM feeds")[0]
    assert feed["etag"] == '"v1"' and feed["error_count"] == 0 and feed["last_new_item_at"]
    assert store.query("SELECT outcome FROM fetches")[0]["outcome"] == "new"
    # the FTS index follows the items table
    found = store.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'kazakhstan'")
    assert len(found) == 2
    # the same entries again: nothing new, no duplicate
    assert store.commit_polls([PollWrite(update(), new=[entry("a")], hits=hits)])[0] == (0, 0)
    assert store.counts()["items"] == 2


def test_failure_rolls_back_everything(store: Store):
    bad = Entry(key="x", title="t", summary=None, url=None, published_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        store.commit_polls([PollWrite(update(), new=[entry("a"), bad])])
    assert store.counts()["items"] == 0
    assert store.query("SELECT etag FROM feeds")[0]["etag"] is None
    assert store.counts()["fetches"] == 0


def test_failure_update_keeps_validators_and_counts(store: Store):
    store.commit_polls([PollWrite(update(), new=[entry("a")])])
    fail = FetchFailure("timeout", "timed out after 30 s")
    store.commit_polls([PollWrite(update(outcome="failed", failure=fail, error_count=1, etag=None,
                                         replace_validators=False, failing_since=NOW))])
    feed = store.query("SELECT * FROM feeds")[0]
    assert feed["etag"] == '"v1"'
    assert feed["last_error"] == "timed out after 30 s" and feed["last_error_kind"] == "timeout"
    assert feed["error_count"] == 1 and feed["failing_since"] == to_iso(NOW)


def test_writer_waits_for_another_writer_instead_of_failing(tmp_path: Path):
    """Catalogue C2: another process holds BEGIN IMMEDIATE for a while; our
    write waits (busy timeout) and succeeds rather than 'database is locked'."""
    path = tmp_path / "m.db"
    with Store(path) as s:
        s.sync_feeds([FEED], NOW)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(1.0)
        blocker.execute("COMMIT")
        released.set()

    threading.Thread(target=release).start()
    with Store(path, busy_timeout=10) as s:
        known = s.existing_hashes("f1", ["a"])  # a read first, then the write
        assert known == {}
        assert s.commit_polls([PollWrite(update(), new=[entry("a")])])[0] == (1, 0)
    assert released.is_set()
    blocker.close()


def test_corrupted_database_is_refused_and_left_alone(tmp_path: Path):
    path = tmp_path / "m.db"
    with Store(path) as s:
        s.sync_feeds([FEED], NOW)
        s.commit_polls([PollWrite(update(), new=[entry(str(i)) for i in range(200)])])
    size = path.stat().st_size
    data = bytearray(path.read_bytes())
    for page in range(1, len(data) // 4096):  # smash every b-tree page header but the first
        data[page * 4096: page * 4096 + 12] = b"\x0d\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError) as info:
        Store(path)
    assert "corrupt" in str(info.value) and str(path) in str(info.value)
    assert path.stat().st_size == size


def test_not_a_database(tmp_path: Path):
    path = tmp_path / "m.db"
    path.write_text("hello, I am not SQLite" * 100)
    with pytest.raises(StorageError, match="corrupted or not a monitor database"):
        Store(path)


def test_changed_config_url_resets_validators(store: Store):
    store.commit_polls([PollWrite(update(), new=[entry("a")])])
    moved = FeedConfig(id="f1", url="https://example.org/new-feed", name="F1")
    store.sync_feeds([moved], NOW)
    feed = store.query("SELECT * FROM feeds")[0]
    assert feed["url"] == moved.url and feed["etag"] is None and feed["next_due_at"] is None


def test_removed_feed_is_kept_inactive_and_not_due(store: Store):
    store.sync_feeds([], NOW)
    assert store.due_feeds(NOW, force=True) == []
    assert store.query("SELECT active FROM feeds")[0]["active"] == 0


def test_due_feeds_respects_schedule_and_force(store: Store):
    store.commit_polls([PollWrite(update(next_due_at=NOW + timedelta(hours=1)))])
    assert store.due_feeds(NOW) == []
    assert [f.id for f in store.due_feeds(NOW, force=True)] == ["f1"]
    store.commit_polls([PollWrite(update(outcome="failed",
                                         failure=FetchFailure("rate-limited", "429"),
                                         retry_after=NOW + timedelta(hours=2), error_count=1))])
    assert store.due_feeds(NOW + timedelta(hours=1, minutes=30), force=True) == []
    store.commit_polls([PollWrite(update(outcome="failed", failure=FetchFailure("gone", "410"),
                                         disabled_reason="gone"))])
    assert store.due_feeds(NOW + timedelta(days=30), force=True) == []


def test_topic_change_is_reported(store: Store):
    changed = store.sync_topics([Topic(id="t1", name="T1", query="x", fts_query="x")], NOW)
    assert changed == ["t1"]
    # still reported on every sync until re-applied
    assert store.sync_topics([Topic(id="t1", name="T1", query="x", fts_query="x")], NOW) == ["t1"]
    store.mark_applied("t1", "x")
    assert store.sync_topics([Topic(id="t1", name="T1", query="x", fts_query="x")], NOW) == []


@pytest.mark.parametrize("when", [datetime(1, 1, 1, tzinfo=UTC),
                                  datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), NOW])
def test_iso_round_trip_and_order(when: datetime):
    text = to_iso(when)
    assert len(text) == 20 and from_iso(text) == when
    assert to_iso(datetime(1, 1, 1, tzinfo=UTC)) < text or when.year == 1


def test_fetch_log_stays_near_its_limit_per_feed(tmp_path: Path) -> None:
    from monitor.store import FETCH_LOG_PER_FEED, PollWrite

    feeds = [FeedConfig(id=f"f{i}", url=f"https://example.org/{i}.xml", name=f"F{i}")
             for i in range(8)]
    with Store(tmp_path / "m.db") as s:
        s.sync_feeds(feeds, NOW)
        # 8 feeds polled in a fixed order, 400 rounds: an order-based trim
        # (by row id modulo 8) would trim one feed and let 7 grow.
        for _ in range(400):
            s.commit_polls([PollWrite(update(feed_id=f.id, outcome="not-modified",
                                             replace_validators=False)) for f in feeds])
        per_feed = dict(s.conn.execute("SELECT feed_id, count(*) FROM fetches GROUP BY feed_id"))
    assert set(per_feed) == {f.id for f in feeds}
    assert all(FETCH_LOG_PER_FEED <= n <= FETCH_LOG_PER_FEED + 100 for n in per_feed.values())


def test_grouped_states_write_what_one_by_one_writes(tmp_path: Path) -> None:
    from monitor.store import PollWrite

    feeds = [FeedConfig(id=f"f{i}", url=f"https://example.org/{i}.xml", name=f"F{i}")
             for i in range(5)]
    later = NOW + timedelta(minutes=3)
    updates = [
        update(feed_id="f0", outcome="not-modified", replace_validators=False, etag=None,
               http_status=304),
        update(feed_id="f1", outcome="unchanged", replace_validators=False, body_hash="abc"),
        update(feed_id="f2", outcome="failed", http_status=503, error_count=2,
               failure=FetchFailure("http-status", "HTTP 503"), failing_since=NOW,
               retry_after=later, replace_validators=False, etag=None),
        update(feed_id="f3", outcome="failed", failure=FetchFailure("gone", "HTTP 410"),
               disabled_reason="gone for good", replace_validators=False, etag=None),
        update(feed_id="f4", outcome="not-modified", replace_validators=False, etag='"e"',
               url="https://example.org/moved.xml", moved_to=None),
    ]
    tables = []
    for name, grouped in (("a.db", True), ("b.db", False)):
        with Store(tmp_path / name) as s:
            s.sync_feeds(feeds, NOW)
            if grouped:
                s.commit_polls([PollWrite(u) for u in updates])
            else:
                for u in updates:
                    s.commit_polls([PollWrite(u)])
            tables.append((s.query("SELECT * FROM feeds ORDER BY id"),
                           s.query("SELECT feed_id, started_at, duration, url, http_status, "
                                   "outcome, bytes, new_items, hits, error_kind, error "
                                   "FROM fetches ORDER BY feed_id")))
    assert tables[0] == tables[1]
    assert tables[0][0][2]["last_error_kind"] == "http-status"  # the values did land


def _fts_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM items_fts_docsize").fetchone()[0])


def test_new_items_are_indexed_once_each_by_the_store(store: Store):
    # No insert trigger since m011: the store indexes a transaction's new
    # items itself, skipping the ones ON CONFLICT left out.
    assert not store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'items_ai'").fetchone()
    first = [entry(f"k{i}", f"Kazakhstan word{i} news") for i in range(30)]
    store.commit_polls([PollWrite(update(), new=first)])
    again = [entry("k3", "Kazakhstan word3 news"), entry("k99", "Kazakhstan word99 news")]
    assert store.commit_polls([PollWrite(update(), new=again)])[0] == (1, 0)
    assert _fts_rows(store.conn) == store.counts()["items"] == 31
    for i in (0, 3, 29, 99):
        ids = store.query("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [f"word{i}"])
        key = store.query("SELECT key FROM items WHERE id = ?", [ids[0]["rowid"]])[0]["key"]
        assert len(ids) == 1 and key == f"k{i}"
    # integrity-check with rank 1 compares the index with the content table.
    store.conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")


def test_migration_m011_drops_the_trigger_and_keeps_indexing(tmp_path: Path):
    from sqlite_utils import Database

    from monitor.migrations import m011_fts_insert_by_store, migrations

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before=m011_fts_insert_by_store.__name__)
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items_ai'").fetchone()
    db.close()
    with Store(path) as s:
        s.sync_feeds([FEED], NOW)
        s.commit_polls([PollWrite(update(), new=[entry("a", "Kazakhstan alpha")])])
        assert not s.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'items_ai'"
                                  ).fetchone()
        assert _fts_rows(s.conn) == 1
        assert s.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'alpha'")


def test_migration_m012_sets_fts_automerge_on_old_and_new_databases(tmp_path: Path):
    from sqlite_utils import Database

    from monitor.migrations import FTS_AUTOMERGE, m012_fts_automerge, migrations

    def automerge(conn: Any) -> int | None:
        row = conn.execute("SELECT v FROM items_fts_config WHERE k = 'automerge'").fetchone()
        return None if row is None else int(row[0])

    old = tmp_path / "old.db"
    db = Database(old)
    migrations.apply(db, stop_before=m012_fts_automerge.__name__)
    assert automerge(db.conn) is None  # FTS5's default, not stored
    db.close()
    for path in (old, tmp_path / "new.db"):
        with Store(path) as s:
            assert automerge(s.conn) == FTS_AUTOMERGE
            s.sync_feeds([FEED], NOW)
            s.commit_polls([PollWrite(update(), new=[entry(f"k{i}", f"Kazakhstan item {i}")
                                                     for i in range(40)])])
            assert len(s.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'kazakhstan'"
                               )) == 40
            s.conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
