"""The HTTP adapter: one polite, bounded GET per feed, returned as a FetchResult.

Owns everything between a feed URL and the bytes of its body (DESIGN.md
"Fetching rules"): conditional GET with the server's validators sent back
byte for byte, a wall-clock deadline per fetch, a cap on the decompressed
body counted while streaming, at most ``max_redirects`` redirects followed by
hand (so each hop is checked), per-host and global concurrency limits, no
cookies, no proxy from the environment, and refusal of private addresses
unless allowed. That refusal is monitor.fetch.guard's: every connection is
opened by its GuardedBackend, which resolves the URL's raw host once, vets
every address and connects to a vetted one, so the host checked is the host
connected to, for the feed URL and each redirect hop alike (article pages and
webhook targets use the same guard through ``guarded_transport``).
HTTP/1.1 connections are kept alive and reused per origin
only after an exchange that ended cleanly (monitor.fetch.pool). Network
and HTTP problems never raise: they come back as ``FetchResult.failure`` with
a kind from ``FAILURE_KINDS`` and a short reason.
Headers are read and written by monitor.fetch.http, bodies inflated by
monitor.fetch.inflate. It never parses feeds (monitor.parse) nor touches the
database (monitor.store).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import httpx

from monitor.errors import FetchError
from monitor.fetch.failure import _Failed, _short, format_seconds, format_size
from monitor.fetch.guard import Network, vet_host
from monitor.fetch.http import (
    ACCEPT,
    ACCEPT_ENCODING,
    PERMANENT_STATUSES,
    RATE_LIMIT_STATUSES,
    _conditional,
    _header_pairs,
    _host_of,
    _is_html_page,
    _parse_url,
    _raw_header,
    _redirect_target,
    _status_reason,
    parse_max_age,
    parse_retry_after,
)
from monitor.fetch.inflate import _Inflater
from monitor.fetch.pool import _PoolPerOrigin
from monitor.types import FeedState, FetchFailure, FetchResult, Settings

log = logging.getLogger(__name__)


@dataclass
class _Progress:
    """What one fetch has learnt so far, so a failure at any point still
    reports the status, headers and URL reached."""

    url: str
    started: datetime
    clock: float
    hops: int = 0
    all_permanent: bool = True
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    bytes_read: int = 0
    retry_after: datetime | None = None


class Fetcher:
    """Fetches feeds over one httpx transport; use as ``async with``.

    Requests go to the transport directly, not through an httpx.AsyncClient:
    we follow no redirect, keep no cookie and use no proxy, auth or hook, and
    the client's per-request work (merging, cookie jar, redirect bookkeeping)
    was a tenth of a poll's event-loop time."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None,
        network: Network | None = None,
    ) -> None:
        self._settings = settings
        self._given = transport
        self._network = network or Network()
        self._transport: httpx.AsyncBaseTransport | None = None
        self._headers = [
            (b"User-Agent", settings.user_agent.encode("latin-1", "replace")),
            (b"Accept", ACCEPT.encode()),
            (b"Accept-Encoding", ACCEPT_ENCODING.encode()),
        ]
        self._timeouts = httpx.Timeout(settings.timeout,
                                       connect=settings.connect_timeout).as_dict()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        self._transport = self._given or _PoolPerOrigin(self._settings, self._network)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    async def fetch(self, feed: FeedState) -> FetchResult:
        """One conditional GET of ``feed``, within the limits; never raises for
        network or HTTP problems.

        The deadline (``settings.timeout``) starts once a slot is free, so
        feeds queued behind a busy host do not time out while waiting. The
        host slot is that of the feed's own URL, held across its redirects.
        """
        if self._transport is None:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        # Host slot first: feeds queued behind a busy host must not hold
        # global slots that other hosts could use.
        async with self._host_slot(feed.url), self._slots:
            progress = _Progress(
                url=feed.url, started=datetime.now(UTC), clock=time.monotonic()
            )
            try:
                async with asyncio.timeout(self._settings.timeout):
                    return await self._exchange(feed, progress)
            except Exception as exc:  # one feed's failure never stops the cycle
                return self._failed(feed, progress, self._classify(exc, progress))

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = _host_of(url)
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._settings.per_host)
        return slot

    async def _exchange(self, feed: FeedState, p: _Progress) -> FetchResult:
        assert self._transport is not None
        url = _parse_url(feed.url)
        await self._check_target(url, previous=None)
        headers = [*self._headers, *_conditional(feed).items()]
        while True:
            request = httpx.Request("GET", url, headers=headers,
                                    extensions={"timeout": self._timeouts})
            resp = await self._transport.handle_async_request(request)
            resp.request = request
            try:
                p.url, p.status = str(resp.url), resp.status_code
                p.headers = _header_pairs(resp)
                target = _redirect_target(resp)
                if target is None:
                    return await self._final(feed, resp, p)
            finally:
                await resp.aclose()
            p.hops += 1
            p.all_permanent = p.all_permanent and p.status in PERMANENT_STATUSES
            if p.hops > self._settings.max_redirects:
                raise _Failed("redirect", f"more than {self._settings.max_redirects} redirects")
            await self._check_target(target, previous=url)
            url = target

    async def _check_target(self, url: httpx.URL, previous: httpx.URL | None) -> None:
        if url.scheme not in ("http", "https"):
            if previous is None:
                raise _Failed("refused", f"unsupported URL scheme {url.scheme!r}")
            raise _Failed("redirect", f"redirect to {url.scheme}: refused")
        if previous is not None and previous.scheme == "https" and url.scheme == "http":
            raise _Failed("redirect", "redirect from https to http refused")
        if self._given is not None and not self._settings.allow_private:
            # A transport from outside connects where it likes, so its target
            # can only be vetted before the request; ours vets at connect time.
            await vet_host(url.raw_host.decode("ascii"), allow_private=False,
                           resolver=self._network.resolver)

    async def _final(self, feed: FeedState, resp: httpx.Response, p: _Progress) -> FetchResult:
        status = resp.status_code
        if status == 304:
            await _finish_empty(resp)
            return self._not_modified(feed, resp, p)
        if 200 <= status < 300:
            return self._ok(feed, resp, p, await self._read_body(resp, p))
        reason = _status_reason(resp)
        if status == 410:
            raise _Failed("gone", reason)
        if status in RATE_LIMIT_STATUSES:
            p.retry_after = parse_retry_after(resp.headers.get("retry-after"), p.started)
            raise _Failed("rate-limited", reason)
        raise _Failed("http-status", reason)

    async def _read_body(self, resp: httpx.Response, p: _Progress) -> bytes:
        cap = self._settings.max_bytes
        too_large = _Failed("too-large", f"body larger than {format_size(cap)}")
        inflater = _Inflater.for_encoding(resp.headers.get("content-encoding", ""))
        body = bytearray()
        async for raw in _raw_chunks(resp):
            p.bytes_read += len(raw)
            if p.bytes_read > cap:
                raise too_large
            for piece in inflater.feed(raw):
                body += piece
                if len(body) > cap:
                    raise too_large
        inflater.finish()
        return bytes(body)

    # True hands HTML pages back as bodies, for feed discovery (monitor.discover's
    # PageFetcher); a poll fails them as not-a-feed.
    pages: bool = False

    def _ok(
        self, feed: FeedState, resp: httpx.Response, p: _Progress, body: bytes
    ) -> FetchResult:
        if not body:
            raise _Failed("empty", "empty response")
        if not self.pages and _is_html_page(resp.headers.get("content-type", ""), body):
            raise _Failed("not-a-feed", "HTML page, not a feed")
        digest = hashlib.sha256(body).hexdigest()
        unchanged = digest == feed.body_hash
        return self._result(
            feed,
            p,
            body=None if unchanged else body,
            unchanged=unchanged,
            body_hash=digest,
            etag=_raw_header(resp, b"etag"),
            last_modified=_raw_header(resp, b"last-modified"),
            max_age=parse_max_age(resp.headers, p.started),
            permanent_redirect=self._permanent(p),
        )

    def _not_modified(self, feed: FeedState, resp: httpx.Response, p: _Progress) -> FetchResult:
        # A 304 need not repeat the validators; the ones we sent still hold.
        return self._result(
            feed,
            p,
            not_modified=True,
            body_hash=feed.body_hash,
            etag=_raw_header(resp, b"etag") or feed.etag,
            last_modified=_raw_header(resp, b"last-modified") or feed.last_modified,
            max_age=parse_max_age(resp.headers, p.started),
            permanent_redirect=self._permanent(p),
        )

    def _permanent(self, p: _Progress) -> str | None:
        return p.url if p.hops and p.all_permanent else None

    def _result(self, feed: FeedState, p: _Progress, **fields: object) -> FetchResult:
        return FetchResult(
            feed_id=feed.id,
            url=feed.url,
            final_url=p.url,
            fetched_at=p.started,
            duration=time.monotonic() - p.clock,
            status=p.status,
            headers=p.headers,
            bytes_read=p.bytes_read,
            **fields,  # type: ignore[arg-type]
        )

    def _failed(self, feed: FeedState, p: _Progress, failure: FetchFailure) -> FetchResult:
        # Debug only: poll.py logs every failed feed once, with its result.
        log.debug("fetch %s (%s) failed: %s: %s", feed.id, feed.url, failure.kind, failure.reason)
        return self._result(feed, p, failure=failure, retry_after=p.retry_after)

    def _classify(self, exc: Exception, p: _Progress) -> FetchFailure:
        s = self._settings
        if isinstance(exc, _Failed):
            return exc.failure
        if isinstance(exc, FetchError):  # the address guard's refusals
            return FetchFailure(exc.kind, _short(exc.message))
        if isinstance(exc, TimeoutError):  # our wall-clock deadline
            return FetchFailure("timeout", f"timed out after {format_seconds(s.timeout)} s")
        if isinstance(exc, httpx.ConnectTimeout):
            return FetchFailure(
                "timeout", f"connect timed out after {format_seconds(s.connect_timeout)} s"
            )
        if isinstance(exc, httpx.TimeoutException):
            return FetchFailure("timeout", f"timed out after {format_seconds(s.timeout)} s")
        if isinstance(exc, httpx.InvalidURL) or "Invalid URL in location header" in str(exc):
            # httpx builds the next request of a redirect even when it does
            # not follow it, and rejects Locations it cannot parse.
            return FetchFailure("redirect", "redirect to an invalid URL refused")
        if isinstance(exc, httpx.HTTPError | OSError | zlib.error):
            return classify_transport_error(exc, _host_of(p.url))
        log.exception("unexpected error fetching %s", p.url)
        return FetchFailure("protocol", _short(f"unexpected error: {type(exc).__name__}: {exc}"))


async def _raw_chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    if resp.is_stream_consumed:
        # A transport that read the body already (httpx.MockTransport with
        # content=): what it holds is the body as given, undecoded.
        yield resp.content
        return
    async for raw in resp.aiter_raw():
        yield raw


async def _finish_empty(resp: httpx.Response) -> None:
    """Read a response that has no body (a 304) to its end, so its connection
    may serve the next request; anything unexpected is left unread, which
    closes the connection instead."""
    async for raw in _raw_chunks(resp):
        if raw:
            return


def classify_transport_error(exc: BaseException, host: str) -> FetchFailure:
    """Map an httpx/OS error to a failure kind by the cause chain underneath."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FetchFailure("tls", _short(f"TLS error: {cause.verify_message}"))
        if isinstance(cause, ssl.SSLError):
            return FetchFailure("tls", _short(f"TLS error: {cause.reason or cause}"))
        if isinstance(cause, socket.gaierror):
            return FetchFailure("dns", f"DNS lookup failed for {host}")
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return FetchFailure("refused", "connection refused")
        if isinstance(cause, ConnectionResetError):
            return FetchFailure("protocol", "connection reset by peer")
    message = str(exc)
    if "Receive buffer too long" in message:
        return FetchFailure("protocol", "response headers too large")
    if "without sending complete message body" in message:
        return FetchFailure("protocol", "connection closed before the body was complete")
    if isinstance(exc, httpx.ConnectError):
        return FetchFailure("refused", _short(f"cannot connect: {message}"))
    if isinstance(exc, zlib.error):
        return FetchFailure("protocol", _short(f"body does not match its Content-Encoding: {exc}"))
    return FetchFailure("protocol", _short(f"protocol error: {message or type(exc).__name__}"))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
