"""`monitor topics apply`: re-run topics over the stored archive.

After a topic is added or its query changes, its stored hits no longer say what
the query implies. This walks the stored items in bounded batches (one short
write transaction each, so the daemon keeps polling meanwhile), matches each
batch with the same percolator as a poll, and adds and removes hits until the
topic's hits are exactly what its current query finds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.match import Matcher
from monitor.store import Store, from_iso
from monitor.types import Entry, Topic

BATCH = 1000


@dataclass(frozen=True)
class ApplyResult:
    topic_id: str
    items: int
    added: int
    removed: int


def reapply(store: Store, topics: Sequence[Topic], *, since: datetime | None = None,
            batch: int = BATCH,
            progress: Callable[[str, int, int], None] | None = None) -> list[ApplyResult]:
    """Re-apply each topic; ``progress(topic_id, done, total)`` after each batch."""
    total = store.count_items(since)
    results = []
    for topic in topics:
        results.append(_apply_one(store, topic, since, batch, total, progress))
        if since is None:
            store.mark_applied(topic.id, topic.fts_query)
    return results


def _apply_one(store: Store, topic: Topic, since: datetime | None, batch: int, total: int,
               progress: Callable[[str, int, int], None] | None) -> ApplyResult:
    matcher = Matcher([topic])
    after, done, added, removed = 0, 0, 0, 0
    now = datetime.now(UTC)
    while rows := store.item_batch(after_id=after, since=since, limit=batch):
        entries = [_entry(r) for r in rows]
        hits = {int(h.entry_key): h for h in matcher.match(entries)}
        a, r = store.replace_hits(topic.id, [row["id"] for row in rows], hits, now)
        added, removed = added + a, removed + r
        after = rows[-1]["id"]
        done += len(rows)
        if progress:
            progress(topic.id, done, total)
    return ApplyResult(topic.id, done, added, removed)


def _entry(row: dict[str, object]) -> Entry:
    # The item id stands in as the key: hits come back keyed by it.
    published = from_iso(str(row["published_at"])) or datetime.now(UTC)
    return Entry(key=str(row["id"]), title=str(row["title"]), summary=str(row["summary"]),
                 url=str(row["url"]) if row["url"] else None, published_at=published,
                 article=str(row.get("article") or ""),
                 language=str(row["language"]) if row.get("language") else None)
