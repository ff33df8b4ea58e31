"""Feed health as the reports show it (`monitor feeds`, `monitor status`, the
digest's sources): each feed's state and the name it goes by, and the feeds of
feeds.yaml merged with the stored ones, so a feed is listed from the moment
the file names it, before any poll has synced it into the database.

Pure: rows in, rows out. Nothing here reads the database or writes anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.types import FeedConfig

# What a feed is, for a reader: never polled, last poll fine, last poll failed,
# disabled for good (HTTP 410) until re-enabled, gone from feeds.yaml.
STATES = ("new", "ok", "failing", "disabled", "removed")

# The columns of a stored feed, for the row of a feed not stored yet.
_COLUMNS = (
    "id", "url", "config_url", "name", "tags", "language", "interval", "active", "title",
    "etag", "last_modified", "body_hash", "last_status", "last_fetch_at", "last_success_at",
    "last_new_item_at", "last_error", "last_error_kind", "error_count", "failing_since",
    "next_due_at", "retry_after", "disabled_reason", "disabled_at", "moved_to", "moved_count",
    "bozo_reason", "created_at",
)


def feed_name(row: Mapping[str, Any]) -> str:
    """The name of feeds.yaml, else the feed's own title once fetched, else its id."""
    return str(row.get("name") or row.get("title") or row["id"])


def feed_state(row: Mapping[str, Any]) -> str:
    if not row.get("active"):
        return "removed"
    if row.get("disabled_reason"):
        return "disabled"
    if row.get("last_error_kind"):
        return "failing"
    if row.get("last_success_at"):
        return "ok"
    return "new"


def merged(stored: Iterable[Mapping[str, Any]], configured: Sequence[FeedConfig] | None, *,
           defaults: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The stored feed rows as the next sync with ``configured`` (feeds.yaml)
    would leave them, plus ``state``, the display ``name`` and the configured
    ``name_given``; None for ``configured`` takes the database's word alone.
    Active feeds first, then by id. A disabled or removed feed has no next due
    time: it is not polled. ``defaults`` fill the columns a report adds
    (items: 0) in the row of a feed not stored yet."""
    rows = {r["id"]: dict(r) for r in stored}
    extra = sorted({k for r in rows.values() for k in r} - set(_COLUMNS))
    fill = dict(defaults or {})
    if configured is not None:
        wanted = {f.id for f in configured}
        for r in rows.values():
            if r["id"] not in wanted:
                r["active"] = 0
        for feed in configured:
            rows[feed.id] = _as_synced(rows.get(feed.id), feed, extra, fill)
    out = []
    for r in rows.values():
        r["name_given"] = r.get("name") or None
        r["state"] = feed_state(r)
        r["name"] = feed_name(r)
        if r["state"] in ("disabled", "removed"):
            r["next_due_at"] = None
        out.append(r)
    out.sort(key=lambda r: (not r["active"], r["id"]))
    return out


def _as_synced(row: dict[str, Any] | None, feed: FeedConfig, extra: Sequence[str],
               fill: Mapping[str, Any]) -> dict[str, Any]:
    """What Store.sync_feeds makes of ``row`` for ``feed`` (None: a new feed)."""
    values = {"name": feed.name or "", "tags": json.dumps(list(feed.tags)),
              "language": feed.language, "interval": feed.interval, "active": 1}
    if row is None:
        row = {**dict.fromkeys((*_COLUMNS, *extra)), **fill, "error_count": 0,
               "moved_count": 0, "id": feed.id, "url": feed.url, "config_url": feed.url}
    elif row.get("config_url") != feed.url:
        row = {**row, "url": feed.url, "config_url": feed.url, "etag": None,
               "last_modified": None, "body_hash": None, "moved_to": None, "moved_count": 0,
               "disabled_reason": None, "disabled_at": None, "error_count": 0,
               "next_due_at": None, "retry_after": None}
    return {**row, **values}


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Feeds per state (every state, zeros included)."""
    out = dict.fromkeys(STATES, 0)
    for r in rows:
        out[r["state"]] += 1
    return out


def next_due(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The feed polled next: a feed never polled first (it is due now)."""
    polled = [r for r in rows if r["state"] in ("new", "ok", "failing")]
    if not polled:
        return None
    first = min(polled, key=lambda r: (r["next_due_at"] is not None, r["next_due_at"] or "",
                                       r["id"]))
    return {"id": first["id"], "next_due_at": first["next_due_at"]}
