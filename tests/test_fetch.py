"""monitor.fetch against a real misbehaving server on 127.0.0.1.

One test per reliability-catalogue row the fetcher owns (N1-N22, B1, B8,
B10-B12, K2). Each faulty feed is fetched concurrently with a
healthy one, which must still succeed: one feed's failure never stops the
cycle. httpx transports are injected only where a loopback server cannot
provoke the case (https->http downgrade, DNS failure, public addresses).
"""

from __future__ import annotations

import asyncio
import gzip
import random
import ssl
import time
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from faultserver import (
    FaultServer,
    closed_port,
    drip,
    empty,
    endless,
    fail_then,
    fault_server,
    full_backlog,
    gzip_bomb,
    http_date,
    huge_header,
    length_lie,
    never_reply,
    redirect,
    reset_mid_body,
    self_signed_tls,
    sleep_then,
    static,
    status,
)

from monitor.decide import next_due
from monitor.fetch import Fetcher, parse_max_age, parse_retry_after
from monitor.fetch.http import accept_encoding
from monitor.fetch.inflate import BROTLI
from monitor.types import FeedState, FetchResult, Settings

__all__ = ["closed_port", "fault_server", "full_backlog"]  # fixtures, used by name

BODY = (Path(__file__).parent / "data" / "fetch" / "rss_2.0_bbc.xml").read_bytes()
LAST_MODIFIED = "Mon, 01 Jan 2024 10:00:00 GMT"
FAST = Settings(
    timeout=1.0, connect_timeout=0.5, allow_private=True, max_bytes=1_000_000, max_redirects=5
)
# A wall-clock deadline must hold: generous slack for a loaded CI machine.
DEADLINE_SLACK = 1.5


def feed(
    url: str,
    feed_id: str = "bad",
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    body_hash: str | None = None,
) -> FeedState:
    return FeedState(feed_id, url, etag=etag, last_modified=last_modified, body_hash=body_hash)


async def fetch_all(
    feeds: list[FeedState],
    settings: Settings = FAST,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, FetchResult]:
    async with Fetcher(settings, transport=transport) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(f) for f in feeds))
        return {r.feed_id: r for r in results}


def fetch_one(
    url: str,
    settings: Settings = FAST,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    body_hash: str | None = None,
) -> FetchResult:
    state = feed(url, etag=etag, last_modified=last_modified, body_hash=body_hash)
    return asyncio.run(fetch_all([state], settings))["bad"]


def beside_healthy(
    server: FaultServer, bad: str | FeedState, settings: Settings = FAST
) -> FetchResult:
    """Fetch ``bad`` and a healthy feed together; the healthy one must succeed."""
    healthy = feed(server.route("/healthy", static(BODY)), "healthy")
    bad_feed = feed(bad) if isinstance(bad, str) else bad
    results = asyncio.run(fetch_all([bad_feed, healthy], settings))
    assert results["healthy"].ok, results["healthy"].failure
    assert results["healthy"].body == BODY
    return results[bad_feed.id]


def assert_failed(result: FetchResult, kind: str, reason: str | None = None) -> None:
    assert result.failure is not None, "expected a failure"
    assert result.failure.kind == kind, result.failure
    if reason is not None:
        assert result.failure.reason == reason
    assert result.body is None
    assert result.etag is None and result.last_modified is None


# ------------------------------------------------------------------ success


def test_healthy_feed_returns_body_validators_hash_and_headers(fault_server: FaultServer) -> None:
    url = fault_server.route(
        "/feed",
        static(BODY, etag='"v1"', last_modified=LAST_MODIFIED, headers=[("Cache-Control", "max-age=600")]),
    )
    result = fetch_one(url)
    assert result.ok and result.status == 200
    assert result.body == BODY and result.bytes_read == len(BODY)
    assert result.etag == '"v1"' and result.last_modified == LAST_MODIFIED
    assert result.body_hash and len(result.body_hash) == 64
    assert result.header("content-type") == "application/rss+xml; charset=utf-8"
    assert result.max_age == 600
    assert result.final_url == url and result.permanent_redirect is None
    assert result.fetched_at.tzinfo is not None and result.duration >= 0
    assert not result.not_modified and not result.unchanged


def test_same_body_hash_is_unchanged_without_body(fault_server: FaultServer) -> None:
    url = fault_server.route("/feed", static(BODY))
    first = fetch_one(url)
    second = fetch_one(url, body_hash=first.body_hash)
    assert second.ok and second.unchanged and second.body is None
    assert second.body_hash == first.body_hash


@pytest.mark.parametrize(
    "encoding, packed",
    [
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate, as some servers send it
        ("x-gzip", gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:])),  # two members
    ],
)
def test_compressed_body_is_decoded(fault_server: FaultServer, encoding: str, packed: bytes) -> None:
    url = fault_server.route("/feed", static(packed, headers=[("Content-Encoding", encoding)]))
    result = fetch_one(url)
    assert result.ok, result.failure
    assert result.body == BODY and result.bytes_read == len(packed)


def test_outside_async_with_is_a_usage_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(Fetcher(FAST).fetch(feed("http://127.0.0.1:1/")))


# ------------------------------------------------------------------ N1-N8


def test_n1_server_never_replies_times_out_at_the_deadline(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.route("/never", never_reply))
    assert_failed(result, "timeout", "timed out after 1 s")
    assert result.duration < FAST.timeout + DEADLINE_SLACK


def test_n2_connection_refused(fault_server: FaultServer, closed_port: int) -> None:
    result = beside_healthy(fault_server, f"http://127.0.0.1:{closed_port}/feed")
    assert_failed(result, "refused", "connection refused")
    assert result.duration < FAST.timeout


def test_n3_full_backlog_hits_the_connect_timeout(
    fault_server: FaultServer, full_backlog: int
) -> None:
    result = beside_healthy(fault_server, f"http://127.0.0.1:{full_backlog}/feed")
    assert_failed(result, "timeout")
    assert result.failure is not None
    assert result.failure.reason in ("connect timed out after 0.5 s", "timed out after 1 s")
    assert result.duration < FAST.timeout + DEADLINE_SLACK


def test_n4_slow_status_line_times_out_and_closes_the_connection(
    fault_server: FaultServer,
) -> None:
    result = beside_healthy(fault_server, fault_server.route("/slow", sleep_then(60, static(BODY))))
    assert_failed(result, "timeout", "timed out after 1 s")
    for _ in range(100):  # the server notices the client hung up
        if fault_server.disconnects.get("/slow"):
            break
        time.sleep(0.02)
    assert fault_server.disconnects.get("/slow") == 1


def test_n5_dripping_body_is_cut_by_the_wall_clock_deadline(fault_server: FaultServer) -> None:
    # Each byte arrives well within httpx's read timeout: only a total
    # deadline stops it (httpx alone took 19.5 s for 40 bytes).
    result = beside_healthy(fault_server, fault_server.route("/drip", drip(interval=0.3)))
    assert_failed(result, "timeout", "timed out after 1 s")
    assert result.status == 200 and 0 < result.bytes_read < 10
    assert result.duration < FAST.timeout + DEADLINE_SLACK


def test_n6_body_shorter_than_content_length_is_a_protocol_error(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.route("/lie", length_lie(1000, b"<rss>")))
    assert_failed(result, "protocol", "connection closed before the body was complete")


def test_n7_reset_mid_body_is_a_protocol_error(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.route("/rst", reset_mid_body))
    assert_failed(result, "protocol")


@pytest.mark.parametrize("content_length", [True, False], ids=["length-0", "close-delimited"])
def test_n8_empty_body_is_an_error(fault_server: FaultServer, content_length: bool) -> None:
    url = fault_server.route("/empty", empty(content_length=content_length))
    result = beside_healthy(fault_server, url)
    assert_failed(result, "empty", "empty response")
    assert result.status == 200


# ------------------------------------------------------------------ N9-N13


@pytest.mark.parametrize(
    "code, value, expected",
    [
        (429, "3600", 3600),
        (503, "120", 120),
        (429, "date+7200", 7200),
        (429, "999999999", 86400),  # capped at 24 h
        (429, "9" * 5000, 86400),
        (503, "date+432000", 86400),
    ],
    ids=["429-seconds", "503-seconds", "429-date", "cap-seconds", "cap-huge", "cap-date"],
)
def test_n9_rate_limited_with_retry_after(
    fault_server: FaultServer, code: int, value: str, expected: float
) -> None:
    if value.startswith("date+"):
        value = http_date(float(value.removeprefix("date+")))
    url = fault_server.route("/limited", status(code, [("Retry-After", value)]))
    result = beside_healthy(fault_server, url)
    phrase = "Too Many Requests" if code == 429 else "Service Unavailable"
    assert_failed(result, "rate-limited", f"HTTP {code} {phrase}")
    assert result.retry_after is not None
    wait = (result.retry_after - result.fetched_at).total_seconds()
    assert expected - 5 <= wait <= expected + 1  # HTTP dates have whole seconds


@pytest.mark.parametrize("value", ["soon", "-5", "", "1.5", "Mon, 99 Foo 2024"])
def test_n10_junk_retry_after_is_ignored(fault_server: FaultServer, value: str) -> None:
    url = fault_server.route("/limited", status(429, [("Retry-After", value)]))
    result = beside_healthy(fault_server, url)
    assert_failed(result, "rate-limited", "HTTP 429 Too Many Requests")
    assert result.retry_after is None


def test_n11_errors_then_success_and_growing_backoff(fault_server: FaultServer) -> None:
    url = fault_server.route("/flaky", fail_then(2, 500, static(BODY)))
    results = [fetch_one(url) for _ in range(3)]
    for failed in results[:2]:
        assert_failed(failed, "http-status", "HTTP 500 Internal Server Error")
    assert results[2].ok and results[2].body == BODY
    now = datetime(2024, 1, 1, tzinfo=UTC)
    delays = [next_due(now=now, interval=900, error_count=n, rng=_FixedRandom()) - now
              for n in range(4)]
    assert delays == sorted(delays) and delays[3] > delays[1]


class _FixedRandom(random.Random):
    def random(self) -> float:
        return 0.5


def test_n12_not_modified_returns_no_body_and_the_new_last_modified(
    fault_server: FaultServer,
) -> None:
    newer = "Tue, 02 Jan 2024 10:00:00 GMT"
    url = fault_server.route(
        "/feed",
        static(BODY, etag='"v1"', last_modified=LAST_MODIFIED,
               not_modified_headers=[("Last-Modified", newer), ("Cache-Control", "max-age=300")]),
    )
    first = fetch_one(url)
    result = beside_healthy(
        fault_server, feed(url, etag=first.etag, last_modified=first.last_modified,
                           body_hash=first.body_hash)
    )
    assert result.ok and result.not_modified and result.status == 304
    assert result.body is None and result.body_hash == first.body_hash
    assert result.etag == '"v1"' and result.last_modified == newer
    assert result.max_age == 300


def test_n12_not_modified_without_validators_keeps_the_stored_ones(
    fault_server: FaultServer,
) -> None:
    url = fault_server.route("/bare304", status(304))
    result = fetch_one(url, etag='"old"', last_modified=LAST_MODIFIED)
    assert result.not_modified and result.etag == '"old"' and result.last_modified == LAST_MODIFIED


@pytest.mark.parametrize("etag", ['W/"a b"', '"café"'], ids=["weak-with-space", "latin-1-byte"])
def test_n13_validators_are_sent_back_byte_identical_without_cookies(
    fault_server: FaultServer, etag: str
) -> None:
    url = fault_server.route(
        "/feed",
        static(BODY, etag=etag, last_modified=LAST_MODIFIED,
               headers=[("Set-Cookie", "session=abc; Path=/"), ("Set-Cookie", "t=1")]),
    )
    state = feed(url)
    for _ in range(3):
        result = fetch_one(url, etag=state.etag, last_modified=state.last_modified)
        assert result.ok
        state = feed(url, etag=result.etag, last_modified=result.last_modified)
    first, *later = fault_server.requests_to("/feed")
    assert first.header("if-none-match") is None and first.header("if-modified-since") is None
    assert len(later) == 2
    for request in later:
        assert request.header("if-none-match") == etag.encode("latin-1")
        assert request.header("if-modified-since") == LAST_MODIFIED.encode()
    for request in [first, *later]:
        assert request.header("cookie") is None and request.header("referer") is None
        assert request.header("user-agent") == FAST.user_agent.encode()
        # b"gzip, deflate" without the brotli extra: test_fetch_brotli.py.
        assert request.header("accept-encoding") == accept_encoding(BROTLI).encode()
        assert b"application/rss+xml" in (request.header("accept") or b"")


def test_n13_cookies_are_not_kept_within_one_fetcher(fault_server: FaultServer) -> None:
    url = fault_server.route("/feed", static(BODY, headers=[("Set-Cookie", "session=abc")]))

    async def twice() -> None:
        async with Fetcher(FAST) as fetcher:
            for _ in range(2):
                assert (await fetcher.fetch(feed(url))).ok

    asyncio.run(twice())
    assert [r.header("cookie") for r in fault_server.requests_to("/feed")] == [None, None]


# ------------------------------------------------------------------ N15-N22


@pytest.mark.parametrize(
    "codes, permanent",
    [((301,), True), ((308,), True), ((301, 308), True), ((301, 302), False),
     ((302,), False), ((307,), False), ((307, 301), False)],
)
def test_n15_n16_redirects_permanent_only_when_every_hop_is(
    fault_server: FaultServer, codes: tuple[int, ...], permanent: bool
) -> None:
    target = fault_server.route("/new", static(BODY))
    for i, code in reversed(list(enumerate(codes))):
        fault_server.route(f"/hop{i}", redirect(code, f"/hop{i + 1}" if i + 1 < len(codes) else "/new"))
    result = beside_healthy(fault_server, fault_server.url("/hop0"))
    assert result.ok and result.body == BODY
    assert result.final_url == target
    assert result.permanent_redirect == (target if permanent else None)


def test_n17_redirect_loop_stops_after_max_redirects(fault_server: FaultServer) -> None:
    fault_server.route("/a", redirect(302, "/b"))
    fault_server.route("/b", redirect(302, "/a"))
    result = beside_healthy(fault_server, fault_server.url("/a"))
    assert_failed(result, "redirect", "more than 5 redirects")
    assert fault_server.count("/a") + fault_server.count("/b") == 6


@pytest.mark.parametrize("length, ok", [(5, True), (6, False), (10, False)])
def test_n17_redirect_chain_length(fault_server: FaultServer, length: int, ok: bool) -> None:
    for i in range(length):
        fault_server.route(f"/c{i}", redirect(301, f"/c{i + 1}"))
    fault_server.route(f"/c{length}", static(BODY))
    result = beside_healthy(fault_server, fault_server.url("/c0"))
    assert result.ok is ok
    if not ok:
        assert_failed(result, "redirect", "more than 5 redirects")
        assert fault_server.count(f"/c{length}") == 0


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "data:text/xml,<rss/>", "gopher://x/"],
)
def test_n18_redirect_to_non_http_scheme_is_refused(
    fault_server: FaultServer, location: str
) -> None:
    result = beside_healthy(fault_server, fault_server.route("/evil", redirect(302, location)))
    assert_failed(result, "redirect")
    assert result.failure is not None and "refused" in result.failure.reason
    assert fault_server.count("/evil") == 1


def test_n18_https_to_http_downgrade_is_refused() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.scheme == "https" and request.url.path == "/feed":
            return httpx.Response(301, headers={"Location": "http://feeds.example.org/feed"})
        return httpx.Response(200, content=BODY)

    feeds = [feed("https://feeds.example.org/feed"), feed("https://ok.example.org/x", "healthy")]
    results = asyncio.run(fetch_all(feeds, transport=httpx.MockTransport(handler)))
    assert results["healthy"].ok
    assert_failed(results["bad"], "redirect", "redirect from https to http refused")
    assert "http://feeds.example.org/feed" not in seen


def test_n19_gone(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.route("/gone", status(410)))
    assert_failed(result, "gone", "HTTP 410 Gone")
    assert result.status == 410


def test_n19_not_found(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.url("/missing"))
    assert_failed(result, "http-status", "HTTP 404 Not Found")


def test_n20_huge_response_header_is_rejected(fault_server: FaultServer) -> None:
    result = beside_healthy(fault_server, fault_server.route("/big", huge_header(200_000)))
    assert_failed(result, "protocol", "response headers too large")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed_tls(tmp_path_factory.mktemp("tls"), "-subj", "/CN=127.0.0.1",
                           "-addext", "subjectAltName=IP:127.0.0.1")


def test_n21_self_signed_certificate_is_a_tls_error(
    fault_server: FaultServer, self_signed: ssl.SSLContext
) -> None:
    with FaultServer(tls=self_signed) as tls_server:
        url = tls_server.route("/feed", static(BODY))
        result = beside_healthy(fault_server, url)
    assert_failed(result, "tls")
    assert result.failure is not None and "certificate" in result.failure.reason


def test_n22_proxy_environment_is_ignored(
    fault_server: FaultServer, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{closed_port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = beside_healthy(fault_server, fault_server.route("/feed", static(BODY)))
    assert result.ok and result.body == BODY


# ------------------------------------------------------------------ B1, B8, B10-B12


@pytest.mark.parametrize(
    "page", [b"<!DOCTYPE html>\n<html><body>Moved</body></html>",
             b"\xef\xbb\xbf \n<HTML lang=en><head></head></html>"],
)
def test_b1_html_page_is_not_a_feed(fault_server: FaultServer, page: bytes) -> None:
    url = fault_server.route("/page", static(page, content_type="text/html; charset=utf-8"))
    result = beside_healthy(fault_server, url)
    assert_failed(result, "not-a-feed", "HTML page, not a feed")


def test_b1_feed_served_as_text_html_is_still_fetched(fault_server: FaultServer) -> None:
    url = fault_server.route("/feed", static(BODY, content_type="text/html"))
    assert fetch_one(url).body == BODY


class _ExplodingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, except that one path raises something nobody expects."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/boom":
            raise RuntimeError("bug in a transport")
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def test_b8_an_unexpected_error_in_one_fetch_spares_the_others(fault_server: FaultServer) -> None:
    urls = [fault_server.route(f"/f{i}", static(BODY)) for i in range(3)]
    feeds = [feed(fault_server.url("/boom")), *(feed(u, f"ok{i}") for i, u in enumerate(urls))]
    results = asyncio.run(fetch_all(feeds, transport=_ExplodingTransport()))
    assert_failed(results["bad"], "protocol", "unexpected error: RuntimeError: bug in a transport")
    assert all(results[f"ok{i}"].body == BODY for i in range(3))


def traced_beside_healthy(fault_server: FaultServer, url: str) -> tuple[FetchResult, int]:
    """beside_healthy's result for ``url`` and the peak of Python's allocations."""
    tracemalloc.start()
    try:
        result = beside_healthy(fault_server, url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_b10_gzip_bomb_stops_at_the_cap_with_bounded_memory(fault_server: FaultServer) -> None:
    url = fault_server.route("/bomb", gzip_bomb(1 << 30))
    result, peak = traced_beside_healthy(fault_server, url)
    assert_failed(result, "too-large", "body larger than 1 MB")
    assert result.bytes_read <= 128 * 1024  # one 64 KB read inflates to ~64 MB
    # httpx's own decoder inflates a whole read at once: ~150 MB measured here.
    assert peak < 8 * FAST.max_bytes


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_b11_endless_body_stops_at_the_cap(fault_server: FaultServer, chunked: bool) -> None:
    result = beside_healthy(fault_server, fault_server.route("/endless", endless(chunked=chunked)))
    assert_failed(result, "too-large", "body larger than 1 MB")
    assert result.bytes_read <= FAST.max_bytes + 70_000


def test_b11_content_length_lying_low_reads_only_what_was_declared(
    fault_server: FaultServer,
) -> None:
    url = fault_server.route("/short", length_lie(declared=100, sent=BODY))
    result = beside_healthy(fault_server, url)
    assert result.ok and result.body == BODY[:100]


def test_b12_gzip_encoding_on_plain_text_is_a_protocol_error(fault_server: FaultServer) -> None:
    url = fault_server.route("/liar", static(BODY, headers=[("Content-Encoding", "gzip")]))
    result = beside_healthy(fault_server, url)
    assert_failed(result, "protocol")
    assert result.failure is not None and "Content-Encoding" in result.failure.reason


def test_unsupported_content_encoding_is_a_protocol_error(fault_server: FaultServer) -> None:
    # br is taken when the brotli extra is installed (test_fetch_brotli.py); zstd never is.
    url = fault_server.route("/zstd", static(BODY, headers=[("Content-Encoding", "zstd")]))
    assert_failed(fetch_one(url), "protocol", "unsupported Content-Encoding 'zstd'")


# ------------------------------------------------------------------ K2 and DNS


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/feed", "http://localhost:9/feed", "http://[::1]:9/feed",
     "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/feed", "http://100.64.0.1/",
     "http://[::ffff:127.0.0.1]/feed", "http://0.0.0.0/"],
)
def test_k2_private_addresses_are_refused(url: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=BODY)

    feeds = [feed(url), feed("http://93.184.216.34/feed", "healthy")]
    settings = Settings(timeout=2, allow_private=False)
    results = asyncio.run(fetch_all(feeds, settings, httpx.MockTransport(handler)))
    assert results["healthy"].ok
    assert_failed(results["bad"], "refused")
    assert results["bad"].failure is not None
    assert results["bad"].failure.reason.startswith("private address ")
    assert results["bad"].failure.reason.endswith(" refused")
    assert seen == ["http://93.184.216.34/feed"]


def test_k2_redirect_to_a_private_address_is_refused() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:8080/admin"})

    settings = Settings(timeout=2, allow_private=False)
    results = asyncio.run(fetch_all([feed("http://93.184.216.34/feed")], settings,
                                    httpx.MockTransport(handler)))
    assert_failed(results["bad"], "refused", "private address 127.0.0.1 refused")
    assert seen == ["http://93.184.216.34/feed"]


def test_k2_real_server_on_loopback_is_refused_unless_allowed(fault_server: FaultServer) -> None:
    url = fault_server.route("/feed", static(BODY))
    refused = fetch_one(url, Settings(timeout=2, allow_private=False))
    assert_failed(refused, "refused", "private address 127.0.0.1 refused")
    assert fault_server.count("/feed") == 0
    assert fetch_one(url).ok


def test_dns_failure_is_recorded_as_dns() -> None:
    import socket

    def handler(request: httpx.Request) -> httpx.Response:
        # What httpx raises when getaddrinfo fails (measured: ConnectError
        # caused by socket.gaierror).
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    results = asyncio.run(fetch_all([feed("http://no-such-host.example/feed")],
                                    transport=httpx.MockTransport(handler)))
    assert_failed(results["bad"], "dns", "DNS lookup failed for no-such-host.example")


# ------------------------------------------------------------------ limits


def test_at_most_two_requests_per_host(fault_server: FaultServer) -> None:
    fault_server.route("/slow", sleep_then(0.3, static(BODY)))
    feeds = [feed(fault_server.url(f"/slow?n={i}"), f"f{i}") for i in range(6)]
    results = asyncio.run(fetch_all(feeds, Settings(timeout=10, allow_private=True, per_host=2)))
    assert all(r.ok for r in results.values())
    assert fault_server.max_in_flight == 2


def test_global_concurrency_limit(fault_server: FaultServer) -> None:
    fault_server.route("/slow", sleep_then(0.1, static(BODY)))
    feeds = [feed(fault_server.url(f"/slow?n={i}"), f"f{i}") for i in range(4)]
    settings = Settings(timeout=10, allow_private=True, per_host=4, concurrency=1)
    results = asyncio.run(fetch_all(feeds, settings))
    assert all(r.ok for r in results.values())
    assert fault_server.max_in_flight == 1


def test_concurrent_fetches_complete_in_their_own_time(fault_server: FaultServer) -> None:
    fast = feed(fault_server.route("/fast", static(BODY)), "fast")
    slow = feed(fault_server.route("/slow", sleep_then(0.5, static(BODY))), "slow")

    async def order() -> list[str]:
        async with Fetcher(FAST) as fetcher:
            tasks = [asyncio.ensure_future(fetcher.fetch(f)) for f in (slow, fast)]
            return [(await done).feed_id for done in asyncio.as_completed(tasks)]

    assert asyncio.run(order()) == ["fast", "slow"]


def test_cancelling_the_other_fetches_ends_them_early(fault_server: FaultServer) -> None:
    fast = feed(fault_server.route("/fast", static(BODY)), "fast")
    hung = feed(fault_server.route("/never", never_reply), "hung")
    settings = Settings(timeout=30, allow_private=True)

    async def first_only() -> str:
        async with Fetcher(settings) as fetcher:
            tasks = [asyncio.ensure_future(fetcher.fetch(f)) for f in (hung, fast)]
            try:
                for done in asyncio.as_completed(tasks):
                    return (await done).feed_id
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return ""

    started = time.monotonic()
    assert asyncio.run(first_only()) == "fast"
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------ header helpers


NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Cache-Control": "public, max-age=3600"}, 3600),
        ({"Cache-Control": 'max-age="120"'}, 120),
        ({"Cache-Control": "no-cache, max-age=3600"}, None),
        ({"Cache-Control": "max-age=soon"}, None),
        ({"Expires": "Mon, 01 Jan 2024 13:00:00 GMT"}, 3600),
        ({"Expires": "Mon, 01 Jan 2024 13:00:00 GMT", "Date": "Mon, 01 Jan 2024 12:30:00 GMT"}, 1800),
        ({"Expires": "Mon, 01 Jan 2024 11:00:00 GMT"}, 0),
        ({"Expires": "0"}, None),
        ({}, None),
    ],
)
def test_max_age_hint(headers: dict[str, str], expected: float | None) -> None:
    assert parse_max_age(httpx.Headers(headers), NOW) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("60", NOW + timedelta(seconds=60)),
        ("Mon, 01 Jan 2024 13:00:00 GMT", NOW + timedelta(hours=1)),
        ("Mon, 01 Jan 2024 11:00:00 GMT", NOW),  # in the past: now
        ("Fri, 01 Jan 2100 00:00:00 GMT", NOW + timedelta(hours=24)),
        (None, None), ("soon", None), ("-5", None), ("", None), ("٣", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_fixtures_release_everything() -> None:
    with FaultServer() as server:
        server.route("/never", never_reply)
        result = fetch_one(server.url("/never"), Settings(timeout=0.3, allow_private=True))
        assert_failed(result, "timeout")
    assert all(not t.is_alive() for t in server._threads)
