"""The feeds table: the config's feeds synced in, the feeds due for a poll,
re-enabling a disabled feed, and the raw feed rows the reports merge with
feeds.yaml. The poll's writes to a feed's row are items.py's."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from monitor.store.db import StoreBase, from_iso, marks, to_iso
from monitor.store.models import DIGEST_FEED_COLUMNS, DigestFeed
from monitor.types import FeedConfig, FeedState


class FeedsMixin(StoreBase):
    def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the feeds table reflect the config; a changed config URL resets the
        feed's validators and moves, a feed gone from the config is kept inactive."""
        with self.write() as db:
            known = {r["id"]: r for r in db.query(
                "SELECT id, config_url, name, tags, language, interval, active FROM feeds")}
            for feed in feeds:
                row = known.get(feed.id)
                # '' when feeds.yaml gives no name (the column is NOT NULL):
                # reports then show the feed's title, else its id (feed_name).
                values = {"name": feed.name or "", "tags": json.dumps(list(feed.tags)),
                          "language": feed.language, "interval": feed.interval, "active": 1}
                if row is None:
                    db.table("feeds").insert({"id": feed.id, "url": feed.url, "config_url": feed.url,
                                        "created_at": to_iso(now), **values})
                elif row["config_url"] != feed.url:
                    db.table("feeds").update(feed.id, {
                        **values, "url": feed.url, "config_url": feed.url, "etag": None,
                        "last_modified": None, "body_hash": None, "moved_to": None,
                        "moved_count": 0, "disabled_reason": None, "disabled_at": None,
                        "error_count": 0,
                        "next_due_at": None, "retry_after": None})
                elif any(row[k] != v for k, v in values.items()):
                    # Only what changed: sqlite-utils' update introspects the
                    # table on every call, seconds for a few thousand feeds.
                    db.execute(f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)} "
                               "WHERE id = ?", [*values.values(), feed.id])
            gone = set(known) - {f.id for f in feeds}
            for feed_id in gone:
                if known[feed_id]["active"]:
                    db.execute("UPDATE feeds SET active = 0 WHERE id = ?", [feed_id])

    def enable_feed(self, feed_id: str, now: datetime) -> str | None:
        """Bring back a feed disabled (HTTP 410): due now, its errors forgotten.
        The reason it was disabled, or None when it was not disabled."""
        with self.write() as db:
            rows = list(db.query("SELECT disabled_reason FROM feeds WHERE id = ?", [feed_id]))
            reason = rows[0]["disabled_reason"] if rows else None
            if reason is None:
                return None
            db.execute(
                "UPDATE feeds SET disabled_reason = NULL, disabled_at = NULL, next_due_at = ?, "
                "retry_after = NULL, error_count = 0, last_error = NULL, last_error_kind = NULL, "
                "failing_since = NULL WHERE id = ?", [to_iso(now), feed_id])
        return str(reason)

    def due_feeds(self, now: datetime, *, ids: Iterable[str] | None = None,
                  force: bool = False) -> list[FeedState]:
        """Active, enabled feeds whose time has come. ``force`` ignores the
        schedule, never a disabled feed nor a server's Retry-After."""
        sql = "SELECT * FROM feeds WHERE active = 1 AND disabled_reason IS NULL"
        params: list[Any] = []
        wanted = list(ids) if ids is not None else None
        if wanted is not None:
            sql += f" AND id IN ({marks(wanted)})"
            params += wanted
        iso = to_iso(now)
        if force:
            sql += " AND (retry_after IS NULL OR retry_after <= ?)"
            params.append(iso)
        else:
            sql += " AND (next_due_at IS NULL OR next_due_at <= ?)"
            params.append(iso)
        sql += " ORDER BY next_due_at IS NOT NULL, next_due_at, id"
        return [_feed_state(r) for r in self.query(sql, params)]

    def feed_rows(self) -> list[dict[str, Any]]:
        """Every stored feed's row as it is (for health.merged: `monitor status`)."""
        return self.query("SELECT * FROM feeds")

    def digest_feeds(self) -> dict[str, DigestFeed]:
        """Every stored feed as the digest shows it, by id (in id order)."""
        return {r[0]: DigestFeed(*r) for r in self._rows(
            f"SELECT {', '.join(DIGEST_FEED_COLUMNS)} FROM feeds ORDER BY id")}


def _feed_state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        id=row["id"], url=row["url"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], error_count=row["error_count"] or 0,
        failing_since=from_iso(row["failing_since"]), moved_to=row["moved_to"],
        moved_count=row["moved_count"] or 0)
