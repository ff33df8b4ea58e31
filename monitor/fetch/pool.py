"""The per-origin connection pool: one small httpcore pool per (scheme,
host, port), least recently used idle ones closed, a connection kept only
after an exchange that ended cleanly, every connection opened through the
address guard.

Owns connection reuse. Must not decide what to request or how to read a
body (monitor.fetch.client).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from monitor.fetch.guard import GuardedTransport, Network
from monitor.types import Settings

# An idle pooled connection is closed after this long: within one cycle a
# host's feeds follow each other closely, and servers drop idle ones anyway.
KEEPALIVE_EXPIRY = 5.0


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
