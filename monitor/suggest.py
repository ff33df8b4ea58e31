"""`monitor topics suggest`: near misses of a topic in the stored archive.

Walks stored items in bounded batches (as a re-apply does, but read-only),
keeps those that satisfy every top-level AND clause of the topic's query but
one, and groups them by the missing clause with the words that might have
completed it: the item's most frequent tokens that are neither stopwords nor
already in the topic. A user extends a term list from that evidence.

Also lists, for review, the items the topic matches only through a stemmed or
folded form (its normalised query matches them, its exact one does not), each
with the raw words that carried the match: where normalisation joined words
that should stay apart, the user quotes the term to keep it exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from monitor.match import folded_matches, near_misses, ordered_tokens, text_tokens
from monitor.match.norm import entry_norm
from monitor.reapply import BATCH, _entry
from monitor.store import Store
from monitor.types import Topic

WORDS_PER_ITEM = 8
WORDS_PER_CLAUSE = 15

# Function words of the archive's main languages: never a useful list entry.
_STOPWORDS = """
a about after all also an and are as at be been but by can could for from had has have he her
his i if in into is it its more new not of on one or our over said says she so than that the
their them there they this to up was we were what when which who will with would you
и в во на не что он она они оно с со как а то все по но из за от к ко до для же бы ли
это его ее её их о об при так уже или был была были быть также только мы вы я
"""
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass
class Suggestion:
    """The near misses of one missing clause: the items and the words."""

    missing: str
    count: int = 0
    items: list[dict[str, object]] = field(default_factory=list)
    words: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {"missing": self.missing, "count": self.count,
                "words": [w for w, _ in self.words.most_common(WORDS_PER_CLAUSE)],
                "items": self.items}


@dataclass
class Folded:
    """The items matched only through normal forms, and the raw words that did."""

    count: int = 0
    items: list[dict[str, object]] = field(default_factory=list)
    words: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {"count": self.count,
                "words": [w for w, _ in self.words.most_common(WORDS_PER_CLAUSE)],
                "items": self.items}


@dataclass
class Review:
    """What ``monitor topics suggest`` shows: near misses by missing clause,
    most items first, and the folded-only matches."""

    missing: list[Suggestion]
    folded: Folded


def suggest(store: Store, topic: Topic, *, since: datetime | None, limit: int,
            batch: int = BATCH,
            progress: Callable[[int, int], None] | None = None) -> list[Suggestion]:
    """The topic's near misses by missing clause, most items first; at most
    ``limit`` items listed per clause (all of them count towards the words)."""
    return review(store, topic, since=since, limit=limit, batch=batch,
                  progress=progress).missing


def review(store: Store, topic: Topic, *, since: datetime | None, limit: int,
           batch: int = BATCH, progress: Callable[[int, int], None] | None = None) -> Review:
    """suggest()'s near misses and the folded-only matches (at most ``limit``
    items listed, all counted), in one walk over the stored items."""
    known = text_tokens(topic.fts_query)
    total = store.count_items(since)
    groups: dict[str, Suggestion] = {}
    folded = Folded()
    after, done = 0, 0
    while rows := store.item_batch(after_id=after, since=since, limit=batch):
        by_id = {str(r["id"]): r for r in rows}
        entries = [_entry(r) for r in rows]
        norms = {i + 1: entry_norm(e) for i, e in enumerate(entries)}
        for match in folded_matches(topic, entries, norms=norms):
            row = by_id[match.entry_key]
            folded.count += 1
            folded.words.update(match.words)
            if len(folded.items) < limit:
                folded.items.append({"id": row["id"], "feed": row["feed_id"],
                                     "title": row["title"], "url": row["url"],
                                     "published_at": row["published_at"],
                                     "words": list(match.words), "snippet": match.snippet})
        for miss in near_misses(topic, entries, norms=norms):
            row = by_id[miss.entry_key]
            words = candidate_words(row, known)
            group = groups.setdefault(miss.missing, Suggestion(miss.missing))
            group.count += 1
            group.words.update(words)  # once per item: how many items offer the word
            if len(group.items) < limit:
                group.items.append({"id": row["id"], "feed": row["feed_id"],
                                    "title": row["title"], "url": row["url"],
                                    "published_at": row["published_at"], "words": words})
        after = rows[-1]["id"]
        done += len(rows)
        if progress:
            progress(done, total)
    return Review(sorted(groups.values(), key=lambda g: -g.count), folded)


def candidate_words(row: dict[str, object], known: set[str]) -> list[str]:
    """The item's most frequent tokens that are not stopwords, numbers or the
    topic's own tokens."""
    text = " ".join(str(row.get(k) or "") for k in ("title", "summary", "article"))
    counts = Counter(t for t in ordered_tokens(text)
                     if len(t) > 2 and not t.isdigit() and t not in STOPWORDS and t not in known)
    return [w for w, _ in counts.most_common(WORDS_PER_ITEM)]
