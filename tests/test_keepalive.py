"""Connection reuse by the fetcher: a real HTTP/1.1 server on 127.0.0.1 that
counts the TCP connections it accepts.

A kept-alive connection serves the next feed of its host, after a full body or
a 304; a connection whose exchange did not end cleanly (body over the cap, body
cut short) is never handed to another feed.
"""

from __future__ import annotations

import asyncio
import hashlib
from http.server import BaseHTTPRequestHandler

from feedserver import FeedServer, Route, respond

from monitor.fetch import Fetcher
from monitor.types import FeedState, FetchResult, Settings

BODY = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"
SETTINGS = Settings(timeout=5.0, connect_timeout=2.0, allow_private=True, max_bytes=100_000,
                    concurrency=4, per_host=2)

def feed_route(body: bytes) -> Route:
    """A feed with an ETag, answering 304 to a matching If-None-Match."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:12]}"'

    def route(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == etag:
            respond(h, 304, b"", {"ETag": etag})
        else:
            respond(h, 200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})
    return route


def cut_short(h: BaseHTTPRequestHandler) -> None:
    """Promises more than it sends, then closes."""
    respond(h, 200, BODY[:20], {"Content-Type": "application/rss+xml"}, length=len(BODY) + 500)
    h.close_connection = True


async def _fetch_in_order(feeds: list[FeedState]) -> list[FetchResult]:
    async with Fetcher(SETTINGS) as fetcher:
        return [await fetcher.fetch(f) for f in feeds]


async def _fetch_together(feeds: list[FeedState]) -> list[FetchResult]:
    async with Fetcher(SETTINGS) as fetcher:
        return list(await asyncio.gather(*(fetcher.fetch(f) for f in feeds)))


def test_feeds_of_one_host_share_kept_alive_connections(server: FeedServer) -> None:
    feeds = []
    for i in range(12):
        server.routes[f"/f{i}"] = feed_route(BODY + f"<!-- {i} -->".encode())
        feeds.append(FeedState(f"f{i}", server.url(f"/f{i}")))
    first = asyncio.run(_fetch_together(feeds))
    assert all(r.failure is None and r.body for r in first)
    connections, requests = server.counts()
    assert requests == 12
    assert connections <= SETTINGS.per_host  # never more at once than the host's slots

    # Conditional requests answered 304 hand their connection on as well.
    again = [FeedState(f.id, f.url, etag=r.etag) for f, r in zip(feeds, first, strict=True)]
    second = asyncio.run(_fetch_together(again))
    assert all(r.not_modified for r in second)
    connections2, requests2 = server.counts()
    assert requests2 == 24
    assert connections2 - connections <= SETTINGS.per_host


def test_a_body_over_the_cap_does_not_leave_its_connection_to_the_next_feed(
    server: FeedServer,
) -> None:
    big = BODY + b" " * (SETTINGS.max_bytes * 3)
    server.routes["/big"] = feed_route(big)  # the server writes all of it on the connection
    server.routes["/ok"] = feed_route(BODY)
    results = asyncio.run(_fetch_in_order([FeedState("big", server.url("/big")),
                                           FeedState("ok", server.url("/ok")),
                                           FeedState("ok2", server.url("/ok"))]))
    assert results[0].failure is not None and results[0].failure.kind == "too-large"
    # Reused, the connection would hand the rest of the big body to the next feed.
    assert results[1].body == BODY and results[2].body == BODY
    connections, requests = server.counts()
    assert requests == 3
    assert connections == 2  # a new one after the cap, then reused


def test_a_body_cut_short_fails_alone_and_the_next_feed_gets_a_new_connection(
    server: FeedServer,
) -> None:
    server.routes["/cut"] = cut_short
    server.routes["/ok"] = feed_route(BODY)
    results = asyncio.run(_fetch_in_order([FeedState("ok0", server.url("/ok")),
                                           FeedState("cut", server.url("/cut")),
                                           FeedState("ok", server.url("/ok"))]))
    assert results[0].body == BODY
    assert results[1].failure is not None and results[1].failure.kind == "protocol"
    assert results[2].body == BODY
    connections, requests = server.counts()
    assert requests == 3
    assert connections == 2  # the first served ok0 and cut, then was closed
