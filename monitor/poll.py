"""One polling cycle: due feeds -> fetch (concurrent) -> parse -> match -> store.

Each feed's items, hits and new state are committed in one transaction, after
its fetch and outside any HTTP wait. What happens next to a feed (when it is
due, backoff, moves, disabling) is decided by schedule.py's rules applied to
the fetch outcome; one feed's failure never stops the cycle.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.config import Config
from monitor.errors import MonitorError, ParseError, StorageError
from monitor.fetch import Fetcher
from monitor.match import Matcher
from monitor.parse import parse_feed
from monitor.schedule import next_due
from monitor.store import Store
from monitor.types import (
    FeedState,
    FeedUpdate,
    FetchFailure,
    FetchResult,
    ParsedFeed,
    PollResult,
)

log = logging.getLogger("monitor.poll")

MOVE_CONFIRMATIONS = 3  # polls a 301/308 must be seen before the stored URL changes

# (database path, feed id) -> when the feed is next due, for feeds whose poll
# could not be committed (disk full, I/O error): the database still says "due",
# so without this a daemon would fetch them again at every tick until space
# returns. In memory only: a restart, or `poll --force`, retries at once.
_held: dict[tuple[str, str], datetime] = {}

Progress = Callable[[PollResult], None]


@dataclass(frozen=True)
class PollSummary:
    results: tuple[PollResult, ...]
    started_at: datetime
    duration: float
    due: int

    @property
    def new_items(self) -> int:
        return sum(r.new_items for r in self.results)

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.results)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status == "failed")


def run_poll(config: Config, store: Store, *, feed_ids: Sequence[str] | None = None,
             force: bool = False, progress: Progress | None = None,
             on_start: Callable[[int], None] | None = None,
             rng: random.Random | None = None) -> PollSummary:
    """Poll the due feeds (or ``feed_ids``; all of them with ``force``) once."""
    return asyncio.run(poll_async(config, store, feed_ids=feed_ids, force=force,
                                  progress=progress, on_start=on_start, rng=rng))


async def poll_async(config: Config, store: Store, *, feed_ids: Sequence[str] | None = None,
                     force: bool = False, progress: Progress | None = None,
                     on_start: Callable[[int], None] | None = None,
                     rng: random.Random | None = None,
                     stop: StopFlag | None = None) -> PollSummary:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    states = [s for s in store.due_feeds(started, ids=feed_ids, force=force)
              if force or _held.get((store.path, s.id), started) <= started]
    if on_start:
        on_start(len(states))
    cycle = _Cycle(config, store, Matcher(config.topics), rng or random.Random())
    results: list[PollResult] = []
    # One worker: the store's connection is used by one thread at a time, and
    # parsing there leaves the event loop free to keep downloading.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-ingest") as pool:
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[None]] = []

        # Fetching outruns the single ingest thread: without a bound, every body
        # of a large cycle would wait in memory at once.
        room = asyncio.Semaphore(max(2 * config.settings.concurrency, 8))

        async def fetch_one(fetcher: Fetcher, state: FeedState) -> None:
            try:
                fetched = await fetcher.fetch(state)
            except BaseException:
                room.release()
                raise
            fut = loop.run_in_executor(pool, cycle.ingest, state, fetched)
            pending.append(asyncio.ensure_future(_report(fut, results, progress, room)))

        async def fetch_all() -> None:
            async with Fetcher(config.settings) as fetcher:
                tasks: list[asyncio.Future[None]] = []
                try:
                    for state in states:
                        await room.acquire()
                        tasks.append(asyncio.ensure_future(fetch_one(fetcher, state)))
                    await asyncio.gather(*tasks)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)

        fetching = asyncio.ensure_future(fetch_all())
        watcher = asyncio.ensure_future(_watch(stop, fetching)) if stop is not None else None
        try:
            await fetching
        except asyncio.CancelledError:
            if stop is None or not stop.is_set():
                raise
            log.info("poll interrupted: %d of %d feeds done", len(pending), len(states))
        finally:
            if watcher is not None:
                watcher.cancel()
            # Feeds already fetched are committed (or rolled back) before returning.
            await asyncio.gather(*pending, return_exceptions=True)
    return PollSummary(tuple(results), started, time.monotonic() - t0, len(states))


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


async def _watch(stop: StopFlag, task: asyncio.Future[None]) -> None:
    """Cancel the fetching when ``stop`` is set (by a signal, from another thread)."""
    while not task.done():
        if stop.is_set():
            task.cancel()
            return
        await asyncio.sleep(0.1)


async def _report(fut: asyncio.Future[PollResult], results: list[PollResult],
                  progress: Progress | None, room: asyncio.Semaphore) -> None:
    try:
        result = await fut
    finally:
        room.release()
    results.append(result)
    if progress:
        progress(result)


class _Cycle:
    """The per-feed work of one cycle, run in the ingest thread."""

    def __init__(self, config: Config, store: Store, matcher: Matcher,
                 rng: random.Random) -> None:
        self.config = config
        self.store = store
        self.matcher = matcher
        self.rng = rng

    def ingest(self, state: FeedState, fetched: FetchResult) -> PollResult:
        t0 = time.monotonic()
        try:
            result = self._ingest(state, fetched)
        except MonitorError as exc:
            log.error("feed %s: %s", state.id, exc)
            result = PollResult(state.id, "failed", error=FetchFailure("storage", str(exc)))
        except Exception as exc:  # a bug must not stop the other feeds
            log.exception("feed %s: unexpected error while ingesting", state.id)
            result = PollResult(state.id, "failed",
                                error=FetchFailure("internal", f"{type(exc).__name__}: {exc}"))
        result = replace(result, duration=fetched.duration + (time.monotonic() - t0))
        _log_result(result)
        return result

    def _ingest(self, state: FeedState, fetched: FetchResult) -> PollResult:
        if fetched.failure is not None:
            return self._failed(state, fetched, fetched.failure)
        if fetched.not_modified or fetched.unchanged or fetched.body is None:
            outcome = "not-modified" if fetched.not_modified else "unchanged"
            self._commit(self._update(state, fetched, outcome, None))
            return PollResult(state.id, outcome, http_status=fetched.status)
        try:
            parsed = parse_feed(fetched.body, url=fetched.final_url, headers=fetched.headers,
                                fetched_at=fetched.fetched_at,
                                max_items=self.config.settings.max_items_per_feed)
        except ParseError as exc:
            return self._failed(state, fetched, FetchFailure(exc.kind, exc.message))
        return self._store_entries(state, fetched, parsed)

    def _store_entries(self, state: FeedState, fetched: FetchResult,
                       parsed: ParsedFeed) -> PollResult:
        known = self.store.existing_hashes(state.id, [e.key for e in parsed.entries])
        new = [e for e in parsed.entries if e.key not in known]
        changed = [e for e in parsed.entries if e.key in known and known[e.key] != e.content_hash]
        hits = self.matcher.match(new + changed)
        update = self._update(state, fetched, "new" if new else "unchanged", parsed)
        inserted, n_hits = self._commit(update, new=new, changed=changed, hits=hits)
        return PollResult(state.id, "new" if inserted else "unchanged",
                          http_status=fetched.status, new_items=inserted,
                          updated_items=len(changed), hits=n_hits,
                          bozo_reason=parsed.bozo_reason)

    def _failed(self, state: FeedState, fetched: FetchResult,
                failure: FetchFailure) -> PollResult:
        count = state.error_count + 1
        disabled = None
        if failure.kind == "gone":
            disabled = f"{failure.reason}: the server says this feed is gone for good"
        due = next_due(now=fetched.fetched_at, interval=self._interval(state), error_count=count,
                       retry_after=fetched.retry_after, max_backoff=self.config.settings.max_backoff,
                       rng=self.rng)
        update = FeedUpdate(
            feed_id=state.id, fetched_at=fetched.fetched_at, outcome="failed", next_due_at=due,
            http_status=fetched.status, error_count=count, failure=failure,
            failing_since=state.failing_since or fetched.fetched_at,
            retry_after=fetched.retry_after, disabled_reason=disabled,
            moved_to=state.moved_to, moved_count=state.moved_count,
            bytes_read=fetched.bytes_read, duration=fetched.duration, request_url=fetched.url)
        self._commit(update)
        return PollResult(state.id, "failed", http_status=fetched.status, error=failure)

    def _commit(self, update: FeedUpdate, **items: Any) -> tuple[int, int]:
        key = (self.store.path, update.feed_id)
        try:
            done = self.store.commit_poll(update, **items)
        except StorageError:
            _held[key] = update.next_due_at  # the schedule the rollback lost
            raise
        _held.pop(key, None)
        return done

    def _update(self, state: FeedState, fetched: FetchResult, outcome: str,
                parsed: ParsedFeed | None) -> FeedUpdate:
        due = next_due(now=fetched.fetched_at, interval=self._interval(state), error_count=0,
                       max_age=fetched.max_age, ttl=parsed.ttl if parsed else None,
                       max_backoff=self.config.settings.max_backoff, rng=self.rng)
        url, moved_to, moved_count = _moves(state, fetched)
        return FeedUpdate(
            feed_id=state.id, fetched_at=fetched.fetched_at, outcome=outcome, next_due_at=due,
            http_status=fetched.status, url=url, etag=fetched.etag,
            last_modified=fetched.last_modified, body_hash=fetched.body_hash,
            replace_validators=parsed is not None, moved_to=moved_to, moved_count=moved_count,
            title=parsed.title if parsed else None,
            bozo_reason=parsed.bozo_reason if parsed else None, bytes_read=fetched.bytes_read,
            duration=fetched.duration, request_url=fetched.url)

    def _interval(self, state: FeedState) -> float:
        try:
            return self.config.interval_of(self.config.feed(state.id))
        except MonitorError:
            return self.config.settings.interval


def _moves(state: FeedState, fetched: FetchResult) -> tuple[str | None, str | None, int]:
    """(new stored URL or None, pending move target, times seen) after a fetch.

    A permanent move is trusted at once for http->https on the same host, else
    only once seen on MOVE_CONFIRMATIONS polls in a row: a misconfigured server
    must not lose a feed for good."""
    target = fetched.permanent_redirect
    if not target:
        return None, None, 0
    old, new = urlsplit(state.url), urlsplit(target)
    if old.scheme == "http" and new.scheme == "https" and old.hostname == new.hostname:
        return target, None, 0
    count = state.moved_count + 1 if state.moved_to == target else 1
    if count >= MOVE_CONFIRMATIONS:
        return target, None, 0
    return None, target, count


def _log_result(r: PollResult) -> None:
    if r.error is not None:
        log.warning("feed %s: %s (%s) in %.2fs", r.feed_id, r.error.reason, r.error.kind,
                    r.duration)
    else:
        log.info("feed %s: %s, %d new, %d hits in %.2fs", r.feed_id, r.status, r.new_items,
                 r.hits, r.duration)
