"""Typed read models: what the store's report queries return.

Frozen records built from rows, with the feed text already cleaned. Each has
``as_json()``: exactly the keys, order and JSON types the CLI printed when
these rows were dicts, for the presentation edge; ``row["key"]`` reads the
same value (for callers written against the dicts). Nothing here runs SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.clean import clean_text


class _Keyed:
    """``model["key"]``: the value as_json() gives under that key."""

    __slots__ = ()

    def as_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.as_json()[key]


def shown(text: str | None) -> str | None:
    """Feed text of a report, cleaned (monitor.clean): new items are stored
    clean, but an archive may hold rows from older versions (bidi controls
    were kept until the parser used monitor.clean)."""
    return clean_text(text) if text is not None else None


# The feeds table's columns, in its order (migrations append at the end).
FEED_COLUMNS = (
    "id", "url", "config_url", "name", "tags", "language", "interval", "active", "title",
    "etag", "last_modified", "body_hash", "last_status", "last_fetch_at", "last_success_at",
    "last_new_item_at", "last_error", "last_error_kind", "error_count", "failing_since",
    "next_due_at", "retry_after", "disabled_reason", "moved_to", "moved_count", "bozo_reason",
    "created_at", "disabled_at", "quota_skipped", "quota_limit", "quota_at",
)


@dataclass(frozen=True, slots=True)
class FeedHealth(_Keyed):
    """One row of `monitor feeds`: the feed's stored row and its item count;
    text from servers (titles, errors, validators) cleaned."""

    id: str
    url: str | None
    config_url: str | None
    name: str | None
    tags: str | None  # JSON, as stored
    language: str | None
    interval: int | None
    active: int
    title: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    last_status: int | None
    last_fetch_at: str | None
    last_success_at: str | None
    last_new_item_at: str | None
    last_error: str | None
    last_error_kind: str | None
    error_count: int | None
    failing_since: str | None
    next_due_at: str | None
    retry_after: str | None
    disabled_reason: str | None
    moved_to: str | None
    moved_count: int | None
    bozo_reason: str | None
    created_at: str | None
    disabled_at: str | None
    quota_skipped: int | None
    quota_limit: int | None
    quota_at: str | None
    items: int
    extra: tuple[tuple[str, Any], ...] = ()  # columns a later migration added

    @classmethod
    def from_row(cls, names: Sequence[str], row: Sequence[Any]) -> FeedHealth:
        values = {k: clean_text(v) if isinstance(v, str) and k != "tags" else v
                  for k, v in zip(names, row, strict=True)}
        known: dict[str, Any] = {k: values.pop(k) for k in (*FEED_COLUMNS, "items")}
        return cls(**known, extra=tuple(values.items()))

    def as_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in FEED_COLUMNS}
        out.update(self.extra)
        out["items"] = self.items
        return out


@dataclass(frozen=True, slots=True)
class StoryHit(_Keyed):
    """One story of `monitor hits`: every feed that carried it, every topic it
    matched with the words that matched each, and a snippet."""

    title: str | None
    url: str | None
    published_at: str | None
    matched_at: str | None
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    matched: Mapping[str, tuple[str, ...]]  # topic id -> its words, in hit order
    snippet: str | None
    feeds: tuple[str, ...]
    story_key: str | None
    # Where the snippet's hit found its words: title, summary, article.
    found_in: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "published_at": self.published_at,
                "matched_at": self.matched_at, "topics": list(self.topics),
                "terms": list(self.terms),
                "matched": {k: list(v) for k, v in self.matched.items()},
                "snippet": self.snippet, "found_in": list(self.found_in),
                "feeds": list(self.feeds), "story_key": self.story_key}


@dataclass(frozen=True, slots=True)
class SearchResult(_Keyed):
    """One story of `monitor search`, best first, with the feeds that carried it."""

    id: int
    title: str | None
    url: str | None
    feed_id: str
    published_at: str | None
    story_key: str | None
    snippet: str | None
    score: float  # bm25 (title 3x) before the age discount, rounded to 4 places
    feeds: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "url": self.url, "feed_id": self.feed_id,
                "published_at": self.published_at, "story_key": self.story_key,
                "snippet": self.snippet, "score": self.score, "feeds": list(self.feeds)}


# --- the digest's reads ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Carrier:
    """An item of a story: which feed carried it, where, and when."""

    item_id: int
    story_key: str | None
    feed_id: str
    url: str | None
    published_at: str


@dataclass(frozen=True, slots=True)
class DigestHit(Carrier):
    """A hit of the digest's period with its item (text as stored)."""

    topic_id: str
    terms: str | None  # JSON list, as stored
    snippet: str | None
    title: str | None


# The columns DigestFeed is built from, in its field order.
DIGEST_FEED_COLUMNS = ("id", "name", "title", "url", "active", "disabled_reason", "last_error",
                       "last_error_kind", "failing_since", "error_count", "last_success_at",
                       "created_at")


@dataclass(frozen=True, slots=True)
class DigestFeed:
    """What the digest shows of a feed: its names and its health."""

    id: str
    name: str | None
    title: str | None
    url: str | None
    active: int
    disabled_reason: str | None
    last_error: str | None
    last_error_kind: str | None
    failing_since: str | None
    error_count: int | None
    last_success_at: str | None
    created_at: str | None

    @property
    def names(self) -> dict[str, Any]:
        """The row health.feed_name reads."""
        return {"id": self.id, "name": self.name, "title": self.title}
