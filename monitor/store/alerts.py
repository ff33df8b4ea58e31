"""The alert outbox: rows written with the poll's hits (``enqueue_alerts``, in
the poll's own transaction), read and settled by delivery, and each target's
health for `monitor alerts`, `status` and the digest. Secrets never reach it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from monitor.store.db import StoreBase, chunks, marks, to_iso
from monitor.types import AlertConfig, Entry, Hit


@dataclass(frozen=True)
class OutboxRow:
    id: int
    alert_id: str
    story_key: str
    key: str
    kind: str
    payload: dict[str, Any]
    created_at: str
    attempts: int
    summary_key: str | None


def alert_key(alert_id: str, story_key: str) -> str:
    """The idempotency key of (alert, story): the same across retries and restarts."""
    return "a-" + hashlib.sha256(f"{alert_id}\n{story_key}".encode()).hexdigest()[:32]


def enqueue_alerts(db: Database, alerts: Sequence[AlertConfig], feed_id: str,
                   fresh: Sequence[tuple[int, Hit, Entry]], now: datetime) -> int:
    """One outbox row per (alert, story) for the hits just inserted; a story
    already queued or alerted for that alert keeps its row (ON CONFLICT).
    The caller skips a feed's first poll (its backlog). Returns rows added."""
    if not alerts or not fresh:
        return 0
    names = _topic_names(db, {h.topic_id for _, h, _ in fresh})
    stories: dict[tuple[str, str], dict[str, Any]] = {}
    for item_id, hit, entry in fresh:
        story_key = _story_of(db, item_id)
        for a in alerts:
            if (not a.covers(hit.topic_id) or not a.accepts_language(entry.language)
                    or entry.published_at < now - timedelta(seconds=a.window)):
                continue
            payload = stories.setdefault((a.id, story_key), {
                "item_id": item_id, "feed_id": feed_id, "title": entry.title,
                "url": entry.url or "", "language": entry.language,
                "published_at": to_iso(entry.published_at), "topics": []})
            if all(t["id"] != hit.topic_id for t in payload["topics"]):
                payload["topics"].append({"id": hit.topic_id,
                                          "name": names.get(hit.topic_id, hit.topic_id),
                                          "terms": list(hit.terms), "snippet": hit.snippet})
    added = 0
    for (alert_id, story_key), payload in stories.items():
        cur = db.execute(
            "INSERT INTO alert_outbox (alert_id, story_key, key, kind, payload, created_at, "
            "next_try_at) VALUES (?, ?, ?, 'story', ?, ?, ?) "
            "ON CONFLICT (alert_id, story_key) DO NOTHING",
            [alert_id, story_key, alert_key(alert_id, story_key),
             json.dumps(payload, ensure_ascii=False), to_iso(now), to_iso(now)])
        added += cur.rowcount
    return added


def _story_of(db: Database, item_id: int) -> str:
    row = db.execute("SELECT story_key FROM items WHERE id = ?", [item_id]).fetchone()
    return str(row[0]) if row and row[0] else f"item:{item_id}"


def _topic_names(db: Database, topic_ids: set[str]) -> dict[str, str]:
    ids = sorted(topic_ids)
    rows = db.execute(f"SELECT id, name FROM topics WHERE id IN ({marks(ids)})", ids).fetchall()
    return {str(r[0]): str(r[1] or r[0]) for r in rows}


def had_success(db: Database, feed_id: str) -> bool:
    """Whether the feed was ever polled successfully before: if not, what this
    poll finds is its backlog."""
    row = db.execute("SELECT last_success_at FROM feeds WHERE id = ?", [feed_id]).fetchone()
    return bool(row and row[0])


class AlertsMixin(StoreBase):
    def alert_due(self, alert_id: str, now: datetime) -> list[OutboxRow]:
        """Unsent rows of one alert whose time has come, oldest first."""
        rows = self._rows(
            "SELECT id, alert_id, story_key, key, kind, payload, created_at, attempts, "
            "summary_key FROM alert_outbox WHERE alert_id = ? AND sent_at IS NULL "
            "AND next_try_at <= ? ORDER BY id", [alert_id, to_iso(now)])
        return [OutboxRow(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"), r[6],
                          int(r[7]), r[8]) for r in rows]

    def story_feed_names(self, story_key: str) -> list[str]:
        """The display names of the feeds carrying a story, in the order they got it."""
        rows = self._rows(
            "SELECT coalesce(f.name, f.title, f.id) FROM items i JOIN feeds f ON f.id = i.feed_id "
            "WHERE i.story_key = ? GROUP BY f.id ORDER BY min(i.id)", [story_key])
        return [str(r[0]) for r in rows]

    def alert_messages_since(self, alert_id: str, since: datetime) -> int:
        """Messages sent since ``since``: a summary counts once."""
        rows = self._rows(
            "SELECT count(DISTINCT coalesce(summary_key, key)) FROM alert_outbox "
            "WHERE alert_id = ? AND sent_at >= ?", [alert_id, to_iso(since)])
        return int(rows[0][0])

    def alert_fold(self, ids: Sequence[int], summary_key: str) -> None:
        """Bind rows to one summary before it is sent, so a retry after a kill
        sends the same summary under the same key."""
        with self.write() as db:
            for part in chunks(list(ids), 500):
                db.execute(f"UPDATE alert_outbox SET summary_key = ? WHERE id IN ({marks(part)}) "
                           "AND summary_key IS NULL", [summary_key, *part])

    def alert_drop(self, ids: Sequence[int]) -> None:
        """Rows that never reached their min_sources within the window."""
        with self.write() as db:
            for part in chunks(list(ids), 500):
                db.execute(f"DELETE FROM alert_outbox WHERE id IN ({marks(part)}) "
                           "AND sent_at IS NULL", part)

    def alert_delivered(self, alert_id: str, ids: Sequence[int], now: datetime) -> None:
        with self.write() as db:
            for part in chunks(list(ids), 500):
                db.execute(f"UPDATE alert_outbox SET sent_at = ?, last_error = NULL "
                           f"WHERE id IN ({marks(part)})", [to_iso(now), *part])
            self._state_ok(db, alert_id, now)

    def alert_failed(self, alert_id: str, ids: Sequence[int], error: str, now: datetime,
                     next_try: datetime) -> None:
        with self.write() as db:
            for part in chunks(list(ids), 500):
                db.execute(f"UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, "
                           f"next_try_at = ? WHERE id IN ({marks(part)})",
                           [error, to_iso(next_try), *part])
            self._state_failed(db, alert_id, error, now)

    def alert_tested(self, alert_id: str, error: str | None, now: datetime) -> None:
        """A `monitor alerts test` outcome, counted in the target's health."""
        with self.write() as db:
            if error is None:
                self._state_ok(db, alert_id, now)
            else:
                self._state_failed(db, alert_id, error, now)

    @staticmethod
    def _state_ok(db: Database, alert_id: str, now: datetime) -> None:
        db.execute(
            "INSERT INTO alert_state (alert_id, last_sent_at, last_attempt_at, failures) "
            "VALUES (?, ?, ?, 0) ON CONFLICT (alert_id) DO UPDATE SET "
            "last_sent_at = excluded.last_sent_at, last_attempt_at = excluded.last_attempt_at, "
            "failures = 0, failing_since = NULL, last_error = NULL",
            [alert_id, to_iso(now), to_iso(now)])

    @staticmethod
    def _state_failed(db: Database, alert_id: str, error: str, now: datetime) -> None:
        db.execute(
            "INSERT INTO alert_state (alert_id, last_attempt_at, failures, failing_since, "
            "last_error) VALUES (?, ?, 1, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET "
            "last_attempt_at = excluded.last_attempt_at, failures = failures + 1, "
            "failing_since = coalesce(failing_since, excluded.failing_since), "
            "last_error = excluded.last_error",
            [alert_id, to_iso(now), to_iso(now), error])

    def alert_forget(self, keep: Sequence[str]) -> None:
        """Drop the health of alerts no longer configured (a removed target
        must not stay "failing" in status and the digest); their outbox rows
        stay, should the alert come back."""
        stale = [r[0] for r in self._rows("SELECT alert_id FROM alert_state")
                 if r[0] not in set(keep)]
        if stale:
            with self.write() as db:
                db.execute(f"DELETE FROM alert_state WHERE alert_id IN ({marks(stale)})", stale)

    def alert_states(self) -> dict[str, dict[str, Any]]:
        """Per alert id: pending rows, sent rows, and its target's health."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.query(
                "SELECT alert_id, sum(sent_at IS NULL) AS pending, "
                "sum(sent_at IS NOT NULL) AS sent FROM alert_outbox GROUP BY alert_id"):
            out[r["alert_id"]] = {"pending": int(r["pending"] or 0), "sent": int(r["sent"] or 0)}
        for r in self.query("SELECT alert_id, last_sent_at, last_attempt_at, failures, "
                            "failing_since, last_error FROM alert_state"):
            out.setdefault(r["alert_id"], {"pending": 0, "sent": 0}).update(
                {k: v for k, v in r.items() if k != "alert_id"})
        return out
