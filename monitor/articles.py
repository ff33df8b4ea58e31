"""The article-text phase of a polling cycle: the queued articles (see
monitor/store/articles.py; the table is the queue) fetched newest first,
within the cycle's budget and a per-host limit, through the cycle's own
Fetcher (fetch_page), their main text extracted (extract_article), stored
with the item, and the item matched again on title + summary + article: a
new hit is stored, an existing one gets the new evidence. A failure is
stored with its reason; a retryable one is queued again after a backoff
(decide.article_retry), any other is final.

The phase starts once every feed fetch of the cycle is done, so no feed
fetch ever waits for an article. Database work and extraction run in a
worker thread, one at a time, so the event loop keeps downloading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from monitor.decide import article_retry
from monitor.errors import MonitorError
from monitor.fetch import Fetcher
from monitor.fetch.article import fetch_page
from monitor.match import Matcher
from monitor.parse.article import extract_article
from monitor.store import QueuedArticle, Store
from monitor.types import AlertConfig, ArticleSummary, Settings

log = logging.getLogger("monitor.articles")

T = TypeVar("T")


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class _Phase:
    def __init__(self, fetcher: Fetcher, store: Store, matcher: Matcher,
                 settings: Settings, alerts: Sequence[AlertConfig] = ()) -> None:
        self.fetcher = fetcher
        self.alerts = alerts
        self.store = store
        self.matcher = matcher
        self.settings = settings
        self.summary = ArticleSummary()
        self._db = asyncio.Lock()  # the store's one connection: one call at a time
        self._hosts: dict[str, asyncio.Semaphore] = {}

    async def in_thread(self, fn: Callable[..., T], *args: object) -> T:
        async with self._db:
            return await asyncio.to_thread(fn, *args)

    def host_slot(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = asyncio.Semaphore(self.settings.article_per_host)
        return slot

    def count(self, **more: int) -> None:
        s = self.summary
        self.summary = replace(s, **{k: getattr(s, k) + v for k, v in more.items()})

    async def one(self, a: QueuedArticle) -> None:
        async with self.host_slot(a.url):
            page = await fetch_page(self.fetcher, a.url)
        self.count(fetched=1)
        now = datetime.now(UTC)
        if not page.ok:
            reason = f"{page.error_kind}: {page.error}"
            retry_at = article_retry(a.attempts + 1, now) if page.retryable else None
            await self.in_thread(self.store.article_failed, a.item_id, reason, now, retry_at)
            if retry_at:
                self.count(retrying=1)
            else:
                self.count(failed=1)
            log.info("article of item %d (feed %s) failed: %s%s", a.item_id, a.feed_id, reason,
                     ", will retry" if retry_at else "")
            return
        text = await asyncio.to_thread(extract_article, page.body, page.url)
        if not text.ok:
            await self.in_thread(self.store.article_failed, a.item_id,
                                 f"extract: {text.reason}", now, None)
            self.count(failed=1)
            return
        new_hits = await self.in_thread(self._store_text, a, text.text, text.text_hash, now)
        self.count(ok=1, hits=new_hits)

    def _store_text(self, a: QueuedArticle, text: str, text_hash: str, now: datetime) -> int:
        entry = self.store.article_entry(a.item_id)
        if entry is None:  # pruned meanwhile
            return 0
        hits = self.matcher.match([replace(entry, article=text)])
        return self.store.store_article(a.item_id, text, text_hash, now, hits, self.alerts)


async def fetch_articles(fetcher: Fetcher, store: Store, matcher: Matcher, settings: Settings,
                         *, stop: StopFlag | None = None,
                         alerts: Sequence[AlertConfig] = ()) -> ArticleSummary:
    """Fetch, extract, store and match the due queued articles, at most
    ``settings.article_budget``; new hits enqueue ``alerts``. One article's
    failure never stops the others."""
    if settings.article_budget <= 0:
        return ArticleSummary()
    t0 = time.monotonic()
    phase = _Phase(fetcher, store, matcher, settings, alerts)
    due = await phase.in_thread(store.due_articles, datetime.now(UTC), settings.article_budget)
    if not due:
        return phase.summary
    room = asyncio.Semaphore(max(1, min(settings.concurrency, len(due))))

    async def guarded(a: QueuedArticle) -> None:
        async with room:
            if stop is not None and stop.is_set():
                return
            try:
                await phase.one(a)
            except MonitorError as exc:  # the store: this article stays queued
                log.warning("article of item %d (feed %s) not stored: %s", a.item_id,
                            a.feed_id, exc)
            except Exception:  # a bug must not lose the other articles
                log.exception("article of item %d: unexpected error", a.item_id)

    await asyncio.gather(*(guarded(a) for a in due))
    s = phase.summary = replace(phase.summary, seconds=time.monotonic() - t0)
    if s.fetched:
        log.info("articles: %d fetched, %d ok, %d failed, %d to retry, %d new hits", s.fetched,
                 s.ok, s.failed, s.retrying, s.hits, extra={"event": "articles"})
    return s
