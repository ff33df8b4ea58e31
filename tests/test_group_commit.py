"""Store.commit_polls: the polls of several feeds in one transaction, all or
none (the poller falls back to one transaction per feed when a group fails)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StorageError
from monitor.store import PollWrite, Store
from monitor.types import Entry, FeedConfig, FeedUpdate

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FEEDS = [FeedConfig(id=f"f{i}", url=f"https://example.org/{i}", name=f"F{i}") for i in range(3)]


def entry(key: str) -> Entry:
    return Entry(key=key, title=f"title {key}", summary="s", url=f"https://example.org/{key}",
                 published_at=NOW, content_hash=key)


def write(feed_id: str, *entries: Entry, outcome: str = "new") -> PollWrite:
    update = FeedUpdate(feed_id=feed_id, fetched_at=NOW, outcome=outcome,
                        next_due_at=NOW + timedelta(minutes=15), http_status=200,
                        etag=f'"{feed_id}"', replace_validators=True)
    return PollWrite(update, tuple(entries))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "m.db") as s:
        s.sync_feeds(FEEDS, NOW)
        yield s


def test_a_group_writes_every_feed_and_counts_each(store: Store) -> None:
    counts = store.commit_polls([write("f0", entry("a"), entry("b")),
                                 write("f1", outcome="not-modified"),
                                 write("f2", entry("c"))])
    assert counts == [(2, 0), (0, 0), (1, 0)]
    rows = store.query("SELECT id, etag, next_due_at FROM feeds ORDER BY id")
    assert [r["etag"] for r in rows] == ['"f0"', '"f1"', '"f2"']
    assert all(r["next_due_at"] for r in rows)
    assert store.counts()["fetches"] == 3


def test_one_bad_write_rolls_back_the_whole_group(store: Store) -> None:
    bad = Entry(key="x", title="t", summary=None, url=None, published_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        store.commit_polls([write("f0", entry("a")), write("f1", bad), write("f2")])
    # Nothing of the group is stored: no validators ahead of their items.
    assert store.counts()["items"] == 0 and store.counts()["fetches"] == 0
    assert [r["etag"] for r in store.query("SELECT etag FROM feeds")] == [None, None, None]
    # One by one, the good ones go through.
    assert store.commit_polls([write("f0", entry("a"))]) == [(1, 0)]
    assert store.commit_polls([write("f2")]) == [(0, 0)]
    assert store.counts()["fetches"] == 2
