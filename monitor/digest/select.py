"""Selecting a digest: the hits of a period through the store (no SQL here),
grouped by topic and story, every feed that carried each story, and the
counts of this period, the one before and the last 14 days; ``build``
assembles the Digest from them and the sources' health (sources.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.digest.model import (
    DEFAULT_LIMIT,
    MAX_NAME,
    VOLUME_DAYS,
    Digest,
    Link,
    SourcesHealth,
    TopicSection,
    clean,
    safe_url,
)
from monitor.digest.rank import Candidate, entry, rank
from monitor.digest.sources import sources_health
from monitor.health import feed_name
from monitor.store import Carrier, DigestFeed, DigestHit, Store
from monitor.types import Topic


def build(store: Store, *, topics: Sequence[Topic], since: datetime, until: datetime,
          now: datetime | None = None, name: str = "default",
          limit: int = DEFAULT_LIMIT, with_sources: bool = True) -> Digest:
    """The digest of the hits matched in ``[since, until)`` for ``topics``
    (in their order). ``limit`` caps the stories shown per topic (0: all).
    ``with_sources=False`` leaves the sources' health empty (``ok=0``): a
    desk page showing one topic does not read every feed's recent dates."""
    now = now or datetime.now(UTC)
    since = min(since, until)
    ids = [t.id for t in topics]
    feeds = store.digest_feeds()
    by_topic = _hits_by_topic_and_story(store, ids, since, until)
    keys = {key for stories in by_topic.values() for key in stories}
    carriers = _carriers(store, keys, until, by_topic, feeds)

    shown: dict[str, list[Candidate]] = {}
    for t in topics:
        ranked = rank(by_topic.get(t.id, {}), carriers, until)
        shown[t.id] = ranked[:limit] if limit else ranked
    first_shown: dict[str, str] = {}
    for t in topics:
        for c in shown[t.id]:
            first_shown.setdefault(c.key, t.id)
    topics_of: dict[str, list[str]] = {}
    for t in topics:
        for key in by_topic.get(t.id, {}):
            topics_of.setdefault(key, []).append(t.id)

    span = until - since
    previous = store.story_counts(ids, since - span, since) if span else {}
    volume = _volume(store, ids, until)
    sections = []
    for t in topics:
        stories = tuple(
            entry(c, t.id, carriers[c.key], topics_of[c.key], first_shown[c.key])
            for c in shown[t.id])
        count = len(by_topic.get(t.id, {}))
        sections.append(TopicSection(
            id=t.id, name=clean(t.name, MAX_NAME), description=clean(t.description, 500),
            count=count, previous_count=previous.get(t.id, 0),
            volume=tuple(volume.get(t.id, [0] * VOLUME_DAYS)), stories=stories,
            omitted=count - len(stories)))
    sources = sources_health(store, feeds, now) if with_sources else SourcesHealth(ok=0)
    return Digest(name=clean(name, MAX_NAME) or "default", generated_at=now, since=since,
                  until=until, topics=tuple(sections), sources=sources, story_count=len(keys))


def _hits_by_topic_and_story(store: Store, topic_ids: Sequence[str], since: datetime,
                             until: datetime) -> dict[str, dict[str, list[DigestHit]]]:
    out: dict[str, dict[str, list[DigestHit]]] = {}
    for r in store.digest_hits(topic_ids, since, until):
        key = r.story_key or f"i:{r.item_id}"
        out.setdefault(r.topic_id, {}).setdefault(key, []).append(r)
    return out


def _carriers(store: Store, keys: Iterable[str], until: datetime,
              by_topic: dict[str, dict[str, list[DigestHit]]],
              feeds: dict[str, DigestFeed]) -> dict[str, list[Link]]:
    """Every feed that carried each story before ``until``: first carrier first,
    each feed once with its earliest item's URL."""
    items: dict[str, dict[int, Carrier]] = {}
    wanted = sorted(k for k in keys if not k.startswith("i:"))
    for r in store.story_carriers(wanted, until):
        items.setdefault(r.story_key or "", {})[r.item_id] = r
    for stories in by_topic.values():  # the matched items themselves, whatever their fetch time
        for key, rows in stories.items():
            for h in rows:
                items.setdefault(key, {}).setdefault(h.item_id, h)
    out: dict[str, list[Link]] = {}
    for key, found in items.items():
        links: dict[str, Link] = {}
        for r in sorted(found.values(), key=lambda r: (r.published_at, r.item_id)):
            if r.feed_id not in links:
                feed = feeds.get(r.feed_id)
                names = feed.names if feed is not None else {"id": r.feed_id}
                links[r.feed_id] = Link(feed_id=r.feed_id, name=clean(feed_name(names), MAX_NAME),
                                        url=safe_url(r.url))
        out[key] = list(links.values())
    return out


def _volume(store: Store, topic_ids: Sequence[str], until: datetime) -> dict[str, list[int]]:
    """Distinct stories per 24 h window for the VOLUME_DAYS windows ending at `until`."""
    if not topic_ids:
        return {}
    out = {t: [0] * VOLUME_DAYS for t in topic_ids}
    for topic_id, ago, n in store.daily_story_counts(topic_ids, until, VOLUME_DAYS):
        if 0 <= ago < VOLUME_DAYS:
            out[topic_id][VOLUME_DAYS - 1 - ago] = n
    return out
