"""One polling cycle: due feeds -> fetch (concurrent) -> parse -> match -> store.

Bodies are parsed in worker processes when the cycle is large enough to repay
them (monitor.parsepool), else in the ingest thread, which matches and stores.
Each feed's items, hits and new state are committed together, after its fetch
and outside any HTTP wait; the feeds the ingest thread finishes back to back
share one transaction (a small, bounded group, committed as soon as nothing
else is waiting), and a feed's result is reported only once it is committed.
What happens next to a feed (when it is due, backoff, moves, disabling, the
quota) is decided by decide.py from the fetch and parse outcome, and applied
here; one feed's failure never stops the cycle.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from monitor.articles import fetch_articles
from monitor.config import Config
from monitor.decide import (
    QUOTA_WINDOW,
    Decision,
    HeldFeeds,
    decide,
    wants_article_text,
    within_quota,
)
from monitor.errors import MonitorError, ParseError, StorageError
from monitor.fetch import Fetcher, Network
from monitor.language import loaded as language_loaded
from monitor.language import warm_up, with_languages
from monitor.match import Matcher, shared_matcher
from monitor.parse import parse_feed
from monitor.parsepool import MIN_FEEDS, ParsePool, inline_limit, worth_a_pool
from monitor.store import PollWrite, Store
from monitor.types import (
    ArticleSummary,
    Entry,
    FeedState,
    FeedUpdate,
    FetchFailure,
    FetchResult,
    ParsedFeed,
    PollResult,
    PollSummary,
    Topic,
)

log = logging.getLogger("monitor.poll")

# Bounds of one commit group of feeds without items (304, unchanged, failed):
# a few rows each, so a group holds the write lock briefly, and a finished
# feed never waits long for its commit. A feed with new or changed items ends
# its group: its own transaction is large already (items, FTS index, hits),
# so sharing it saves little, and a crash loses at most that one's work.
GROUP_FEEDS = 100
GROUP_SECONDS = 0.2  # since the group's first feed was ready

Progress = Callable[[PollResult], None]


def run_poll(config: Config, store: Store, *, feed_ids: Sequence[str] | None = None,
             force: bool = False, progress: Progress | None = None,
             on_start: Callable[[int], None] | None = None,
             rng: random.Random | None = None,
             network: Network | None = None,
             held: HeldFeeds | None = None) -> PollSummary:
    """Poll the due feeds (or ``feed_ids``; all of them with ``force``) once.
    ``network`` is where names are resolved and connections made (the
    system's by default); ``held``: see poll_async."""
    return asyncio.run(poll_async(config, store, feed_ids=feed_ids, force=force,
                                  progress=progress, on_start=on_start, rng=rng,
                                  network=network, held=held))


async def poll_async(config: Config, store: Store, *, feed_ids: Sequence[str] | None = None,
                     force: bool = False, progress: Progress | None = None,
                     on_start: Callable[[int], None] | None = None,
                     rng: random.Random | None = None,
                     stop: StopFlag | None = None,
                     parsers: ParsePool | None = None,
                     network: Network | None = None,
                     held: HeldFeeds | None = None) -> PollSummary:
    """One cycle. ``parsers`` parse bodies in worker processes; without it, a
    cycle with many feeds starts its own for its duration (see
    parsepool.worth_a_pool) and a small one parses in the ingest thread, so
    a daemon's steady ticks of a few feeds cost no extra processes. ``held``:
    the feeds of this database whose last poll could not be committed, kept
    by a caller that runs cycle after cycle (the daemon); they wait for their
    next due time, and the cycle updates it."""
    started = datetime.now(UTC)
    held = HeldFeeds() if held is None else held
    states = [s for s in store.due_feeds(started, ids=feed_ids, force=force)
              if force or held.ready(s.id, started)]
    if on_start:
        on_start(len(states))
    own = None
    setting = config.settings.parse_workers
    workers = worth_a_pool(len(states), setting)
    pooled = parsers is not None or workers > 0
    if parsers is None and setting != 0:
        # Even a small cycle may need one worker, for a body too large to
        # parse in-process under the budget; no process starts until then.
        parsers = own = ParsePool(workers or 1, languages=_workers_detect(config, states))
    try:
        return await _poll(config, store, states, started, progress=progress, rng=rng,
                           stop=stop, parsers=parsers, pooled=pooled,
                           matcher=_Matchers(config.topics), network=network, held=held)
    finally:
        if own is not None:
            own.close()


async def _poll(config: Config, store: Store, states: Sequence[FeedState], started: datetime, *,
                progress: Progress | None, rng: random.Random | None, stop: StopFlag | None,
                parsers: ParsePool | None, pooled: bool, matcher: _Matchers,
                network: Network | None = None, held: HeldFeeds | None = None) -> PollSummary:
    t0 = time.monotonic()
    budget = config.settings.parse_timeout
    inline_max = inline_limit(budget)
    cycle = _Cycle(config, store, matcher, rng or random.Random(),
                   HeldFeeds() if held is None else held)
    results: list[PollResult] = []

    def committed(batch: list[PollResult]) -> None:
        results.extend(batch)  # first: a failing progress callback loses no result
        if progress:
            for result in batch:
                progress(result)

    # Fetching outruns the single ingest thread: without a bound, every body
    # of a large cycle would wait in memory at once. A slot is free again once
    # the ingest thread has parsed the body (see _Ingest).
    room = asyncio.Semaphore(max(2 * config.settings.concurrency, 8))
    # One ingest thread: the store's connection is used by one thread at a
    # time, and parsing there leaves the event loop free to keep downloading.
    ingest = _Ingest(cycle, asyncio.get_running_loop(), room.release, committed)
    languages = {f.id: f.language for f in config.feeds}
    # The language model (~0.03 s, ~6 MB) loads only once a body is
    # to be parsed, in the background while the rest are fetched: a cycle of
    # 304s and failures, most of a daemon's, never pays for it.
    detects = any(lang is None for lang in languages.values())

    bodies = 0  # bodies to parse so far in this cycle
    # A cycle with workers that detect languages sends them every body: the
    # model is then loaded in the workers only, and the main process, the one
    # bound by the GIL, keeps only fetching, matching and storing (measured on
    # 300 real feeds with py3langid, a model 4x slower than today's: main 4.4
    # -> 3.7 s CPU, worker 2.6 -> 3.7 s). Else the first MIN_FEEDS bodies are
    # parsed in the ingest thread while a worker starts.
    inline_first = 0 if parsers is not None and parsers.languages else MIN_FEEDS

    async def fetch_one(fetcher: Fetcher, state: FeedState) -> None:
        nonlocal bodies, detects
        try:
            fetched = await fetcher.fetch(state)
            parsed: Parsed | None = None
            to_parse = fetched.ok and fetched.body is not None \
                and not (fetched.not_modified or fetched.unchanged)
            bodies += to_parse
            # The first inline_first bodies are parsed in the ingest thread;
            # only a cycle with a body starts a worker: a cycle of 304s never
            # starts one it cannot repay. A body too large to parse there
            # within the budget goes to a worker, which the budget can kill.
            if to_parse and parsers is not None and (
                    (pooled and bodies > inline_first) or len(fetched.body or b"") > inline_max):
                try:
                    parsed = await parsers.parse(
                        fetched, max_items=config.settings.max_items_per_feed, timeout=budget,
                        language=languages.get(state.id))
                except ParseError as exc:
                    parsed = exc
            if to_parse and parsed is None and detects:
                detects = False
                warm_up()  # this body's entries get their languages in the ingest thread
        except BaseException:
            room.release()
            raise
        ingest.submit(state, fetched, parsed,
                      detected=parsed is not None and parsers is not None and parsers.languages)

    async def fetch_all(fetcher: Fetcher) -> None:
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

    articles = ArticleSummary()
    async with Fetcher(config.settings, network=network) as fetcher:
        fetching = asyncio.ensure_future(fetch_all(fetcher))
        watcher = asyncio.ensure_future(_watch(stop, fetching)) if stop is not None else None
        try:
            await fetching
        except asyncio.CancelledError:
            if stop is None or not stop.is_set():
                raise
            log.info("poll interrupted: %d of %d feeds fetched", ingest.submitted, len(states))
        finally:
            if watcher is not None:
                watcher.cancel()
            # Feeds already fetched are committed (or rolled back) before returning.
            await ingest.close()
        # Articles only once every feed fetch is done (none waits for one),
        # through the same Fetcher; the store is free: the ingest thread ended.
        if (stop is None or not stop.is_set()) and _articles_due(store, matcher, config):
            articles = await fetch_articles(fetcher, store, matcher.get(), config.settings,
                                            stop=stop, alerts=config.alerts)
    offline = _log_dns_failures(ingest.dns_failures, results, states)
    return PollSummary(tuple(results), started, time.monotonic() - t0, len(states),
                       offline=offline, articles=articles)


def _workers_detect(config: Config, states: Sequence[FeedState]) -> bool:
    """Whether a cycle's parser workers detect languages, and so get every
    body: when detection is needed, this process does not hold the model yet
    (a second copy costs ~6 MB and ~0.03 s in each worker), and at least
    MIN_FEEDS due feeds have no validators (a first poll: a body each, sure
    to repay the worker). Else a re-poll's few changed bodies are parsed in
    the ingest thread, as before."""
    if language_loaded() or all(f.language is not None for f in config.feeds):
        return False
    fresh = sum(1 for s in states if not (s.etag or s.last_modified or s.body_hash))
    return fresh >= MIN_FEEDS


class _Matchers:
    """The cycle's Matcher, built at its first use: building one costs about
    0.1 s with feeds.yaml's topics, a third of a re-poll of 300 feeds in
    which nothing is matched. Built in the ingest thread, used after it ends."""

    def __init__(self, topics: Sequence[Topic]) -> None:
        self._topics = topics
        self._matcher: Matcher | None = None

    @property
    def built(self) -> bool:
        return self._matcher is not None

    def get(self) -> Matcher:
        if self._matcher is None:
            self._matcher = shared_matcher(tuple(self._topics))
        return self._matcher


def _articles_due(store: Store, matchers: _Matchers, config: Config) -> bool:
    """Whether fetch_articles has work, asked before it needs a Matcher."""
    if config.settings.article_budget <= 0:
        return False
    return matchers.built or bool(store.due_articles(datetime.now(UTC), 1))


def _log_dns_failures(failures: Sequence[PollResult], results: Sequence[PollResult],
                      states: Sequence[FeedState]) -> bool:
    """Log the cycle's DNS failures, held back until the cycle's end: when
    every feed failed so, on two hosts or more, one line says the machine
    looks offline instead of one identical line per feed. Returns whether so."""
    failed = {r.feed_id for r in failures}
    hosts = {urlsplit(s.url).hostname for s in states if s.id in failed}
    if len(failures) == len(results) and len(hosts) >= 2:
        log.warning("all %d feeds failed name resolution (DNS, %d hosts): this machine looks "
                    "offline; each is retried after its backoff", len(failures), len(hosts),
                    extra={"event": "offline", "feeds": len(failures)})
        return True
    for r in failures:
        _log_result(r)
    return False


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


async def _watch(stop: StopFlag, task: asyncio.Future[None]) -> None:
    """Cancel the fetching when ``stop`` is set (by a signal, from another thread)."""
    while not task.done():
        if stop.is_set():
            task.cancel()
            return
        await asyncio.sleep(0.1)


# What a parser worker made of a body: its ParsedFeed, or the ParseError.
Parsed = ParsedFeed | ParseError


@dataclass(frozen=True)
class _Job:
    state: FeedState
    fetched: FetchResult
    parsed: Parsed | None = None  # None: the ingest thread parses it
    detected: bool = False  # the worker gave its entries their languages


@dataclass(frozen=True)
class _Prepared:
    """What a feed's poll writes, and its result once written. With
    ``counted``, the result's status, new items and hits come from the commit."""

    write: PollWrite
    result: PollResult
    counted: bool = False


@dataclass(frozen=True)
class _Ready:
    """A feed parsed and matched, waiting for its group's commit."""

    job: _Job
    prepared: _Prepared
    started: float  # monotonic, when its ingest began

    @property
    def write(self) -> PollWrite:
        return self.prepared.write


@dataclass
class _Group:
    ready: list[_Ready] = field(default_factory=list)
    since: float = 0.0
    closed: bool = False  # ends with a feed that has items

    def add(self, r: _Ready) -> None:
        if not self.ready:
            self.since = time.monotonic()
        self.ready.append(r)
        self.closed = bool(r.write.new or r.write.changed)

    def full(self) -> bool:
        return (self.closed or len(self.ready) >= GROUP_FEEDS
                or time.monotonic() - self.since >= GROUP_SECONDS)

    def take(self) -> list[_Ready]:
        ready, self.ready, self.closed = self.ready, [], False
        return ready


class _Ingest:
    """The ingest thread: parses, matches and commits fetched feeds in
    arrival order. Feeds finished back to back are committed in one
    transaction, flushed whenever the queue runs dry or the group is full, so
    a feed waits for its commit only while other work is being done. Results
    go back to the event loop (``committed``) after their commit or rollback,
    a group's at once."""

    def __init__(self, cycle: _Cycle, loop: asyncio.AbstractEventLoop,
                 parsed: Callable[[], None],
                 committed: Callable[[list[PollResult]], None]) -> None:
        self._cycle = cycle
        self._loop = loop
        self._parsed = parsed  # called (in the loop) once a body is no longer held
        self._committed = committed  # called in the loop
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._out: list[PollResult] = []  # finished, not yet handed to the loop
        self.dns_failures: list[PollResult] = []  # logged at the cycle's end
        self._finished: asyncio.Future[None] = loop.create_future()
        self.submitted = 0
        self._thread = threading.Thread(target=self._run, name="monitor-ingest", daemon=True)
        self._thread.start()

    def submit(self, state: FeedState, fetched: FetchResult,
               parsed: Parsed | None = None, *, detected: bool = False) -> None:
        self.submitted += 1
        self._queue.put(_Job(state, fetched, parsed, detected))

    async def close(self) -> None:
        """Commit what is waiting, hand over every result and stop the thread.
        Cancelled, it still waits for the thread: the caller may close the
        store next."""
        self._queue.put(None)
        try:
            await asyncio.shield(self._finished)
        finally:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._work()
        finally:
            # Every result was scheduled before this, so it is delivered first.
            self._loop.call_soon_threadsafe(_set_done, self._finished)

    def _work(self) -> None:
        group = _Group()
        while True:
            try:
                # Block only while nothing waits for a commit.
                job = self._queue.get(block=not group.ready)
            except queue.Empty:
                self._flush(group.take())
                continue
            if job is None:
                self._flush(group.take())
                return
            ready = self._prepare(job)
            if ready is None:
                self._hand_over()
            else:
                group.add(ready)
                if group.full():
                    self._flush(group.take())

    def _prepare(self, job: _Job) -> _Ready | None:
        t0 = time.monotonic()
        outcome: _Prepared | PollResult
        try:
            outcome = self._cycle.prepare(job.state, job.fetched, job.parsed,
                                          detected=job.detected)
        except MonitorError as exc:  # logged once, with the result
            outcome = PollResult(job.state.id, "failed", error=FetchFailure("storage", str(exc)))
        except Exception as exc:  # a bug must not stop the other feeds
            log.exception("feed %s: unexpected error while ingesting", job.state.id)
            outcome = PollResult(job.state.id, "failed",
                                 error=FetchFailure("internal", f"{type(exc).__name__}: {exc}"))
        finally:
            self._loop.call_soon_threadsafe(self._parsed)
        if isinstance(outcome, PollResult):
            self._finish(job, outcome, t0)
            return None
        return _Ready(job, outcome, t0)

    def _flush(self, ready: list[_Ready]) -> None:
        if not ready:
            return
        if len(ready) > 1:
            try:
                counts = self._cycle.store.commit_polls([r.write for r in ready])
            except Exception as exc:
                # One bad feed must not fail the others: each on its own.
                log.info("a group of %d feeds could not be committed (%s); committing them "
                         "one by one", len(ready), exc)
            else:
                for r, n in zip(ready, counts, strict=True):
                    self._cycle.held.release(r.write.update.feed_id)
                    self._finish(r.job, _counted(r, n), r.started)
                self._hand_over()
                return
        for r in ready:
            self._finish(r.job, self._commit_one(r), r.started)
        self._hand_over()

    def _commit_one(self, r: _Ready) -> PollResult:
        feed_id = r.job.state.id
        try:
            return _counted(r, self._cycle.commit(r.write))
        except MonitorError as exc:  # logged once, with the result
            return PollResult(feed_id, "failed", error=FetchFailure("storage", str(exc)))
        except Exception as exc:  # a bug must not stop the other feeds
            log.exception("feed %s: unexpected error while storing", feed_id)
            return PollResult(feed_id, "failed",
                              error=FetchFailure("internal", f"{type(exc).__name__}: {exc}"))

    def _finish(self, job: _Job, result: PollResult, started: float) -> None:
        result = replace(result, duration=job.fetched.duration + (time.monotonic() - started))
        if result.error is not None and result.error.kind == "dns":
            self.dns_failures.append(result)
        else:
            _log_result(result)
        self._out.append(result)

    def _hand_over(self) -> None:
        if self._out:
            out, self._out = self._out, []
            self._loop.call_soon_threadsafe(self._committed, out)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _counted(r: _Ready, counts: tuple[int, int]) -> PollResult:
    p = r.prepared
    if not p.counted:
        return p.result
    inserted, n_hits = counts
    return replace(p.result, status="new" if inserted else "unchanged", new_items=inserted,
                   hits=n_hits)


class _Cycle:
    """The per-feed work of one cycle, run in the ingest thread."""

    def __init__(self, config: Config, store: Store, matchers: _Matchers,
                 rng: random.Random, held: HeldFeeds) -> None:
        self.config = config
        self.store = store
        self.matchers = matchers
        self.rng = rng
        self.held = held

    def prepare(self, state: FeedState, fetched: FetchResult,
                parsed: Parsed | None = None, *, detected: bool = False) -> _Prepared:
        """Everything but the commit: what to write, or the result of a feed
        that has nothing to write. ``parsed`` is the body already parsed
        elsewhere (a parser worker), else it is parsed here; ``detected``:
        its entries' languages were detected there too."""
        if fetched.failure is not None:
            return self._failed(state, fetched, self._decide(state, fetched, None))
        if fetched.not_modified or fetched.unchanged or fetched.body is None:
            decision = self._decide(state, fetched, None)
            return _Prepared(PollWrite(self._update(state, fetched, decision, None)),
                          PollResult(state.id, decision.outcome, http_status=fetched.status))
        if parsed is None:
            try:
                parsed = parse_feed(fetched.body, url=fetched.final_url, headers=fetched.headers,
                                    fetched_at=fetched.fetched_at,
                                    max_items=self.config.settings.max_items_per_feed,
                                    language=self._language(state))
            except ParseError as exc:
                parsed = exc
        if isinstance(parsed, ParseError):
            return self._failed(state, fetched, self._decide(state, fetched, parsed))
        return self._store_entries(state, fetched, parsed, detected=detected)

    def _store_entries(self, state: FeedState, fetched: FetchResult,
                       parsed: ParsedFeed, *, detected: bool = False) -> _Prepared:
        known = self.store.existing_hashes(state.id, [e.key for e in parsed.entries])
        new = [e for e in parsed.entries if e.key not in known]
        changed = [e for e in parsed.entries if e.key in known and known[e.key] != e.content_hash]
        new, skipped, limit = self._within_quota(state, new, fetched.fetched_at)
        if not detected:
            new, changed = with_languages(new), with_languages(changed)
        hits = self.matchers.get().match(new + changed) if new or changed else []
        decision = self._decide(state, fetched, parsed, new_items=bool(new),
                                quota_skipped=skipped)
        update = replace(self._update(state, fetched, decision, parsed),
                         quota_skipped=skipped, quota_limit=limit)
        since = self._articles_since(state, parsed, fetched.fetched_at) if new else None
        return _Prepared(PollWrite(update, tuple(new), tuple(changed), tuple(hits),
                                   alerts=self.config.alerts, articles_since=since),
                      PollResult(state.id, "unchanged", http_status=fetched.status,
                                 updated_items=len(changed), bozo_reason=parsed.bozo_reason,
                                 bozo_notable=parsed.bozo_notable,
                                 quota_skipped=skipped),
                      counted=True)

    def _articles_since(self, state: FeedState, parsed: ParsedFeed,
                        now: datetime) -> datetime | None:
        """For a feed that gets article text, the oldest publication time of
        the new items to queue (settings.article_window); else None."""
        try:
            mode = self.config.article_mode(self.config.feed(state.id))
        except MonitorError:
            mode = self.config.settings.article_text
        lengths = [len(e.title or "") + len(e.summary or "") for e in parsed.entries]
        if not wants_article_text(mode, lengths):
            return None
        return now - timedelta(seconds=self.config.settings.article_window)

    def _within_quota(self, state: FeedState, new: list[Entry],
                      now: datetime) -> tuple[list[Entry], int, int]:
        """(the new entries the feed's daily quota has room for, how many it
        leaves out, the quota): room is the quota less the items stored in
        the last 24 hours; the first entries in document order are kept."""
        limit = self._quota(state)
        if not new:
            return new, 0, limit
        kept, skipped = within_quota(
            new, limit, self.store.items_fetched_since(state.id, now - QUOTA_WINDOW))
        if skipped:
            log.warning("feed %s: %d new items skipped, over its quota of %d items a day",
                        state.id, skipped, limit)
        return kept, skipped, limit

    def _quota(self, state: FeedState) -> int:
        try:
            return self.config.quota_of(self.config.feed(state.id))
        except MonitorError:
            return self.config.settings.max_items_per_day

    def _decide(self, state: FeedState, fetched: FetchResult, parsed: Parsed | None, *,
                new_items: bool = False, quota_skipped: int = 0) -> Decision:
        return decide(state, fetched, parsed, fetched.fetched_at,
                      interval=self._interval(state),
                      max_backoff=self.config.settings.max_backoff, rng=self.rng,
                      new_items=new_items, quota_skipped=quota_skipped)

    def _failed(self, state: FeedState, fetched: FetchResult, d: Decision) -> _Prepared:
        f = d.failing
        assert f is not None, "a failed poll's decision says how it failed"
        update = FeedUpdate(
            feed_id=state.id, fetched_at=fetched.fetched_at, outcome=d.outcome,
            next_due_at=d.next_due_at, http_status=fetched.status, error_count=f.error_count,
            failure=f.failure, failing_since=f.failing_since, retry_after=f.retry_after,
            disabled_reason=f.disabled_reason, moved_to=d.move.moved_to,
            moved_count=d.move.moved_count, bytes_read=fetched.bytes_read,
            duration=fetched.duration, request_url=fetched.url)
        return _Prepared(PollWrite(update),
                      PollResult(state.id, d.outcome, http_status=fetched.status,
                                 error=f.failure))

    def commit(self, write: PollWrite) -> tuple[int, int]:
        """One feed's write in its own transaction; a feed whose write is
        rolled back is held until its next due time (see HeldFeeds)."""
        feed_id = write.update.feed_id
        try:
            done = self.store.commit_polls([write])[0]
        except StorageError:
            self.held.hold(feed_id, write.update.next_due_at)  # the schedule the rollback lost
            raise
        self.held.release(feed_id)
        return done

    def _update(self, state: FeedState, fetched: FetchResult, d: Decision,
                parsed: ParsedFeed | None) -> FeedUpdate:
        keep = d.keep_validators
        return FeedUpdate(
            feed_id=state.id, fetched_at=fetched.fetched_at, outcome=d.outcome,
            next_due_at=d.next_due_at, http_status=fetched.status, url=d.move.url,
            etag=fetched.etag if keep else None,
            last_modified=fetched.last_modified if keep else None,
            body_hash=fetched.body_hash if keep else None,
            replace_validators=parsed is not None, moved_to=d.move.moved_to,
            moved_count=d.move.moved_count,
            title=parsed.title if parsed else None,
            bozo_reason=parsed.bozo_reason if parsed else None, bytes_read=fetched.bytes_read,
            duration=fetched.duration, request_url=fetched.url)

    def _language(self, state: FeedState) -> str | None:
        try:
            return self.config.feed(state.id).language
        except MonitorError:
            return None

    def _interval(self, state: FeedState) -> float:
        try:
            return self.config.interval_of(self.config.feed(state.id))
        except MonitorError:
            return self.config.settings.interval


def _log_result(r: PollResult) -> None:
    """One line per feed and cycle. The reader's notes that change nothing
    (served as text/xml, charset overridden) only at debug level (-v)."""
    extra = {"event": "feed", "feed": r.feed_id, "status": r.status}
    if r.error is not None:
        if r.error.kind == "internal":
            return  # logged with its traceback where it happened
        if r.error.kind == "storage":
            # Our own side failing (the database), not the feed: an error, and
            # not one of the per-feed lines `monitor poll` leaves to its summary.
            level, extra["event"] = logging.ERROR, "storage"
        else:
            level = logging.WARNING
        log.log(level, "feed %s: %s (%s) in %.2fs", r.feed_id, r.error.reason, r.error.kind,
                r.duration, extra=extra)
        return
    note = r.bozo_reason if log.isEnabledFor(logging.DEBUG) else r.bozo_notable
    log.info("feed %s: %s, %d new, %d hits in %.2fs%s", r.feed_id, r.status, r.new_items,
             r.hits, r.duration, f" (note: {note})" if note else "", extra=extra)
