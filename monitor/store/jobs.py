"""The daemon's rows: its heartbeat (who runs, since when, last tick, last
housekeeping and reload), the digests waiting to be sent or retried, and the
record of the digests made (where the next one of a name starts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.db import StoreBase, from_iso, to_iso


class JobsMixin(StoreBase):
    _DAEMON_COLUMNS = frozenset({
        "pid", "host", "started_at", "last_tick_at", "stopped_at", "config", "tick",
        "last_maintenance_at", "last_optimize_at", "last_pruned", "last_reload_at",
        "last_reload_error"})

    def daemon_started(self, *, pid: int, host: str, config: str, tick: float,
                       now: datetime) -> None:
        """The heartbeat row of a daemon that just took the lock (housekeeping
        dates of the previous run are kept)."""
        self.daemon_update(pid=pid, host=host, config=config, tick=tick,
                           started_at=to_iso(now), last_tick_at=None, stopped_at=None,
                           last_reload_at=None, last_reload_error=None)

    def daemon_update(self, **values: Any) -> None:
        unknown = set(values) - self._DAEMON_COLUMNS
        if unknown:
            raise ValueError(f"not a daemon column: {', '.join(sorted(unknown))}")
        with self.write() as db:
            db.table("daemon").upsert({"id": 1, **values}, pk="id")

    def daemon_row(self) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM daemon WHERE id = 1")
        return rows[0] if rows else None
    def digest_pending(self, digest_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM digest_pending WHERE digest_id = ?", [digest_id])
        return rows[0] if rows else None

    def digest_started(self, digest_id: str, now: datetime) -> None:
        """A digest run begins: until it is sent, the row stays and is due at
        once, so a crash or a kill mid-send is retried at the next start."""
        with self.write() as db:
            db.execute(
                "INSERT INTO digest_pending (digest_id, scheduled_at, attempts, last_attempt_at, "
                "next_attempt_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (digest_id) DO UPDATE "
                "SET last_attempt_at = excluded.last_attempt_at",
                [digest_id, to_iso(now), to_iso(now), to_iso(now)])

    def digest_missed(self, digest_id: str, scheduled_at: datetime, now: datetime,
                      reason: str) -> None:
        """A run that should have happened (while no daemon ran): due at once."""
        with self.write() as db:
            db.execute(
                "INSERT INTO digest_pending (digest_id, scheduled_at, attempts, next_attempt_at, "
                "last_error) VALUES (?, ?, 0, ?, ?) ON CONFLICT (digest_id) DO NOTHING",
                [digest_id, to_iso(scheduled_at), to_iso(now), reason])

    def digest_failed(self, digest_id: str, *, attempts: int, error: str,
                      next_attempt_at: datetime) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE digest_pending SET attempts = ?, last_error = ?, next_attempt_at = ? "
                "WHERE digest_id = ?", [attempts, error, to_iso(next_attempt_at), digest_id])

    def digest_sent(self, digest_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM digest_pending WHERE digest_id = ?", [digest_id])

    def digest_retries_due(self, now: datetime) -> list[str]:
        return [r["digest_id"] for r in self.query(
            "SELECT digest_id FROM digest_pending WHERE next_attempt_at <= ? "
            "ORDER BY next_attempt_at, digest_id", [to_iso(now)])]

    def last_digest_until(self, name: str) -> datetime | None:
        """Where the last recorded digest of ``name`` ended."""
        rows = self.query("SELECT max(until) AS until FROM digests WHERE name = ?", [name])
        return from_iso(rows[0]["until"]) if rows else None

    def record_digest(self, *, name: str, since: datetime, until: datetime,
                      generated_at: datetime, fmt: str, stories: int, output: str | None,
                      sent_to: Sequence[str]) -> None:
        """Remember a digest: the next one of the same name starts at its ``until``."""
        with self.write() as db:
            db.table("digests").insert({
                "name": name, "since": to_iso(since), "until": to_iso(until),
                "generated_at": to_iso(generated_at), "format": fmt, "stories": stories,
                "output": output,
                "sent_to": json.dumps(list(sent_to)) if sent_to else None,
                "sent_at": to_iso(generated_at) if sent_to else None,
            })
