"""The HTTP adapter: one polite, bounded GET per feed, returned as a FetchResult.

Owns everything between a feed URL and the bytes of its body (DESIGN.md
"Fetching rules"): conditional GET with the server's validators sent back
byte for byte, a wall-clock deadline per fetch, a cap on the decompressed
body counted while streaming, at most ``max_redirects`` redirects followed by
hand (so each hop is checked), per-host and global concurrency limits, no
cookies, no proxy from the environment, and refusal of private addresses
unless allowed. That refusal is monitor.addressguard's: every connection is
opened by its GuardedBackend, which resolves the URL's raw host once, vets
every address and connects to a vetted one, so the host checked is the host
connected to, for the feed URL and each redirect hop alike (article pages and
webhook targets use the same guard through ``guarded_transport``).
HTTP/1.1 connections are kept alive and reused per origin
only after an exchange that ended cleanly (see ``_PoolPerOrigin``). Network
and HTTP problems never raise: they come back as ``FetchResult.failure`` with
a kind from ``FAILURE_KINDS`` and a short reason.
It never parses feeds (parse.py) nor touches the database (store.py).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import logging
import re
import socket
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType

import httpx

from monitor.addressguard import GuardedTransport, Network, vet_host
from monitor.errors import FetchError
from monitor.types import FailureKind, FeedState, FetchFailure, FetchResult, Settings

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Brotli is not a dependency and zlib is what lets us bound inflation
# (max_length), so only gzip and deflate are offered.
ACCEPT_ENCODING = "gzip, deflate"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_STATUSES = frozenset({301, 308})
RATE_LIMIT_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = timedelta(hours=24)
# An idle pooled connection is closed after this long: within one cycle a
# host's feeds follow each other closely, and servers drop idle ones anyway.
KEEPALIVE_EXPIRY = 5.0

# Largest piece of decompressed output produced at once: the body cap is
# checked after every piece, so memory never exceeds max_bytes + _PIECE.
_PIECE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_UNSAFE_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Failed(Exception):
    """Internal: ends an exchange with a failure of a known kind."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.failure = FetchFailure(kind=kind, reason=reason)


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

    async def fetch_many(self, feeds: Sequence[FeedState]) -> AsyncIterator[FetchResult]:
        """Fetch all ``feeds`` concurrently, yielding each result as it completes."""
        tasks = [asyncio.create_task(self.fetch(feed)) for feed in feeds]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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


@dataclass
class _Pool:
    transport: httpx.AsyncHTTPTransport
    busy: int = 0  # requests whose response is not closed yet


class _PoolPerOrigin(httpx.AsyncBaseTransport):
    """A small connection pool per origin (scheme, host, port), the least
    recently used idle pools closed beyond ``2 x concurrency``.

    A pool keeps a connection for the next request to its origin only when
    the exchange on it ended cleanly: httpcore closes, never pools, a
    connection whose response was not read to its end (an error, our
    deadline's cancellation, the body cap, a cut-off body, a redirect left
    unread) or that the server asked to close. A new TCP (and TLS) handshake
    per feed was most of the cost of a poll of unchanged feeds. Every pool
    opens its connections through one address guard (GuardedBackend).

    httpcore's pool scans every one of its connections, some twice over, on
    each request and each release: one pool for a cycle's ``concurrency``
    connections cost more event-loop time than the HTTP itself. One TLS
    context is shared (building one costs ~15 ms)."""

    def __init__(self, settings: Settings, network: Network) -> None:
        self._tls = httpx.create_ssl_context(trust_env=False)
        self._guard = network.guard(settings)
        self._limits = httpx.Limits(max_connections=settings.concurrency,
                                    max_keepalive_connections=settings.per_host,
                                    keepalive_expiry=KEEPALIVE_EXPIRY)
        self._keep = 2 * settings.concurrency
        self._pools: OrderedDict[tuple[bytes, bytes, int | None], _Pool] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.pop(key, None)
        if pool is None:
            pool = _Pool(GuardedTransport(self._guard, tls=self._tls, limits=self._limits))
        self._pools[key] = pool  # the most recently used last
        pool.busy += 1
        try:
            await self._trim()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.busy -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, pool)
        return response

    async def _trim(self) -> None:
        for key, pool in list(self._pools.items()):
            if len(self._pools) <= self._keep:
                return
            if not pool.busy:
                del self._pools[key]
                await pool.transport.aclose()

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.transport.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that marks its pool free again once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, pool: _Pool) -> None:
        self._stream = stream
        self._pool: _Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.busy -= 1
            self._pool = None
        await self._stream.aclose()


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


class _Inflater:
    """Undoes one Content-Encoding in pieces of at most ``_PIECE`` bytes, so
    the body cap bounds memory however well the body compresses (httpx's own
    decoder inflates a whole network read at once: 64 KB can become 60 MB)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj = self._new(raw=False)
        self._started = False
        self._done = False

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater:
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return cls("identity")
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return cls(codings[0])
        raise _Failed("protocol", _short(f"unsupported Content-Encoding {header!r}"))

    def _new(self, *, raw: bool) -> zlib._Decompress:
        if raw:
            return zlib.decompressobj(-zlib.MAX_WBITS)
        # 47 = auto-detect a gzip or zlib header; servers mix them up.
        return zlib.decompressobj((zlib.MAX_WBITS | 32) if self._encoding != "deflate" else 15)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._encoding == "identity":
            if data:
                yield data
            return
        while data and not self._done:
            try:
                out = self._obj.decompress(data, _PIECE)
            except zlib.error:
                # "deflate" is often sent without the zlib header.
                if self._encoding != "deflate" or self._started:
                    raise
                self._obj, self._started = self._new(raw=True), True
                continue
            self._started = True
            if out:
                yield out
            data = self._next_member() if self._obj.eof else self._obj.unconsumed_tail

    def _next_member(self) -> bytes:
        rest = self._obj.unused_data
        if self._encoding != "deflate" and rest.startswith(_GZIP_MAGIC):
            self._obj = self._new(raw=False)
            return rest
        self._done = True  # trailing padding after the stream: ignored
        return b""


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as seconds or an HTTP-date -> a time within [now, now + 24 h];
    None when absent or not understood ('soon', '-5')."""
    if value is None:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        seconds = min(int(text[:9]), int(MAX_RETRY_AFTER.total_seconds()))
        return now + timedelta(seconds=seconds)
    when = _parse_http_date(text)
    if when is None:
        return None
    return min(max(when, now), now + MAX_RETRY_AFTER)


def parse_max_age(headers: httpx.Headers, now: datetime) -> float | None:
    """How long the server says the response stays fresh, in seconds:
    Cache-Control max-age, else Expires minus Date; None if it does not say."""
    directives = _cache_control(headers.get("cache-control", ""))
    if "no-cache" in directives or "no-store" in directives:
        return None
    max_age = directives.get("max-age")
    if max_age is not None and _DIGITS.fullmatch(max_age):
        return float(int(max_age[:9]))
    expires = _parse_http_date(headers.get("expires", ""))
    if expires is None:
        return None
    date = _parse_http_date(headers.get("date", "")) or now
    return max(0.0, (expires - date).total_seconds())


def _cache_control(value: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.partition("=")
        if name.strip():
            directives[name.strip().lower()] = arg.strip().strip('"')
    return directives


def _parse_http_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _conditional(feed: FeedState) -> dict[bytes, bytes]:
    """If-None-Match / If-Modified-Since, byte-identical to what the server sent
    (validators are kept as latin-1 text, which maps bytes one to one)."""
    headers: dict[bytes, bytes] = {}
    for name, value in ((b"If-None-Match", feed.etag), (b"If-Modified-Since", feed.last_modified)):
        if value and not _UNSAFE_HEADER_VALUE.search(value):
            try:
                headers[name] = value.encode("latin-1")
            except UnicodeEncodeError:
                continue  # not something a server sent us; skip rather than fail
    return headers


def _raw_header(resp: httpx.Response, name: bytes) -> str | None:
    for key, value in resp.headers.raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _header_pairs(resp: httpx.Response) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)


def _redirect_target(resp: httpx.Response) -> httpx.URL | None:
    location = resp.headers.get("location")
    if resp.status_code not in REDIRECT_STATUSES or not location:
        return None
    try:
        return resp.url.join(location.strip())
    except (httpx.InvalidURL, ValueError):
        raise _Failed("redirect", _short(f"invalid redirect Location {location!r}")) from None


def _status_reason(resp: httpx.Response) -> str:
    try:
        phrase = HTTPStatus(resp.status_code).phrase
    except ValueError:
        phrase = resp.reason_phrase
    return _short(f"HTTP {resp.status_code} {phrase}".strip())


def _is_html_page(content_type: str, body: bytes) -> bool:
    if "text/html" not in content_type.lower():
        return False
    head = body[:1024].removeprefix(_UTF8_BOM).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


@functools.lru_cache(maxsize=4096)
def _url(url: str) -> httpx.URL | None:
    """httpx's parse of a feed URL (immutable, so shared): the same URLs come
    back every cycle, and each fetch needs its host and its URL."""
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return None


def _parse_url(url: str) -> httpx.URL:
    parsed = _url(url)
    if parsed is None or not parsed.scheme or (parsed.scheme in ("http", "https") and not parsed.host):
        raise _Failed("refused", _short(f"invalid URL {url!r}"))
    return parsed


def _host_of(url: str) -> str:
    parsed = _url(url)
    return parsed.host.lower() if parsed is not None else ""


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


def format_size(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("MiB", 2**20), ("kB", 1000), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

