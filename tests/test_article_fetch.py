"""Article pages fetched through the polling Fetcher (monitor.fetch.article,
issue 15): the fetcher's fault catalogue (research/reliability-catalogue.md)
applied to article URLs, on real servers on 127.0.0.1 (tests/faultserver.py,
tests/feedserver.py). Every failure is a PageResult, never an exception.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import (
    Exchange,
    FaultServer,
    Handler,
    closed_port,
    drip,
    endless,
    fault_server,
    gzip_bomb,
    never_reply,
    redirect,
    sleep_then,
    static,
    status,
)
from feedserver import FeedServer
from test_address_guard import PUBLIC, Routed, StubDNS

from monitor.fetch import Fetcher, Network
from monitor.fetch.article import PageResult, fetch_page
from monitor.types import FeedState, FetchResult, Settings

__all__ = ["closed_port", "fault_server"]  # fixtures, used by name

PAGE = (Path(__file__).parent / "data" / "articles" / "x-hostile.html").read_bytes()
HTML = "text/html; charset=utf-8"
FAST = Settings(timeout=1.0, connect_timeout=0.5, allow_private=True, max_bytes=1_000_000,
                max_redirects=5)


def fetch_pages(urls: list[str], settings: Settings = FAST,
                network: Network | None = None) -> list[PageResult]:
    async def run() -> list[PageResult]:
        async with Fetcher(settings, network=network) as fetcher:
            return list(await asyncio.gather(*(fetch_page(fetcher, u) for u in urls)))
    return asyncio.run(run())


def fetch_one(url: str, settings: Settings = FAST) -> PageResult:
    return fetch_pages([url], settings)[0]


def assert_failed(result: PageResult, kind: str, url: str, *, retryable: bool) -> None:
    assert not result.ok, result
    assert result.error_kind == kind, result
    assert result.retryable is retryable
    assert result.body == b""
    assert result.error is not None and url in result.error


def as_html(handler: Handler) -> Handler:
    """A fault server handler whose response says it is an HTML page (the
    catalogue's handlers say RSS, which fetch_page would refuse unread)."""
    def handle(ex: Exchange) -> None:
        send = ex.send

        def send_html(data: bytes) -> bool:
            return send(data.replace(b"Content-Type: application/rss+xml",
                                     b"Content-Type: text/html; charset=utf-8", 1))

        ex.send = send_html  # type: ignore[method-assign]
        handler(ex)

    return handle


@pytest.fixture
def page_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.route("/page", static(PAGE, content_type=HTML))
        yield server


def test_page_comes_back_with_its_body_type_and_the_polls_headers(
        page_server: FaultServer) -> None:
    result = fetch_one(page_server.url("/page"))
    assert result.ok and result.error_kind is None and result.error is None
    assert result.body == PAGE and result.status == 200 and result.content_type == HTML
    request = page_server.requests[-1]
    assert (request.header("accept") or b"").startswith(b"text/html")
    assert request.header("user-agent") == FAST.user_agent.encode()
    assert request.header("if-none-match") is None and request.header("cookie") is None


def test_n1_hang_times_out_at_the_deadline(fault_server: FaultServer) -> None:
    url = fault_server.route("/hang", never_reply)
    result = fetch_one(url, Settings(timeout=0.5, connect_timeout=0.5, allow_private=True))
    assert_failed(result, "timeout", url, retryable=True)
    assert "timed out" in (result.error or "")


def test_n5_drip_is_cut_by_the_wall_clock_deadline(fault_server: FaultServer) -> None:
    # Each byte arrives within the read timeout; only the deadline ends it.
    url = fault_server.route("/drip", as_html(drip(interval=0.2, total=200)))
    result = fetch_one(url, Settings(timeout=0.6, connect_timeout=0.5, allow_private=True))
    assert_failed(result, "timeout", url, retryable=True)


def test_b10_gzip_bomb_stops_at_the_cap(fault_server: FaultServer) -> None:
    url = fault_server.route("/bomb", as_html(gzip_bomb()))
    result = fetch_one(url, Settings(timeout=5, allow_private=True, max_bytes=1_000_000))
    assert_failed(result, "too-large", url, retryable=False)


def test_b11_huge_body_stops_at_the_cap(fault_server: FaultServer) -> None:
    url = fault_server.route("/huge", as_html(endless(chunked=True)))
    result = fetch_one(url, Settings(timeout=5, allow_private=True, max_bytes=500_000))
    assert_failed(result, "too-large", url, retryable=False)


def test_gzip_page_is_inflated(fault_server: FaultServer) -> None:
    url = fault_server.route("/gz", static(gzip.compress(PAGE), content_type=HTML,
                                           headers=[("Content-Encoding", "gzip")]))
    result = fetch_one(url)
    assert result.ok and result.body == PAGE


def test_b12_gzip_header_on_plain_html_is_a_decode_failure(fault_server: FaultServer) -> None:
    url = fault_server.route("/lie", static(PAGE, content_type=HTML,
                                            headers=[("Content-Encoding", "gzip")]))
    assert_failed(fetch_one(url), "decode", url, retryable=False)


def test_n17_redirect_loop_ends_after_max_redirects(fault_server: FaultServer) -> None:
    a, b = fault_server.url("/a"), fault_server.url("/b")
    fault_server.route("/a", redirect(302, b))
    fault_server.route("/b", redirect(302, a))
    result = fetch_one(a)
    assert_failed(result, "redirects", a, retryable=False)
    assert len(fault_server.requests) == FAST.max_redirects + 1


def test_redirect_to_the_page_is_followed(page_server: FaultServer) -> None:
    start = page_server.route("/moved", redirect(301, page_server.url("/page")))
    result = fetch_one(start)
    assert result.ok and result.url == page_server.url("/page") and result.body == PAGE


def test_n18_redirect_to_file_is_refused(fault_server: FaultServer) -> None:
    url = fault_server.route("/file", redirect(302, "file:///etc/passwd"))
    assert_failed(fetch_one(url), "redirects", url, retryable=False)


def test_k2_private_address_is_refused_unless_allowed(page_server: FaultServer) -> None:
    url = page_server.url("/page")
    refused = fetch_one(url, Settings(timeout=2, allow_private=False))
    assert_failed(refused, "address", url, retryable=False)
    assert "private address 127.0.0.1 refused" in (refused.error or "")
    assert page_server.count("/page") == 0
    assert fetch_one(url).ok


def test_k2_metadata_address_is_refused() -> None:
    url = "http://169.254.169.254/latest/meta-data"
    result = fetch_one(url, Settings(timeout=2, allow_private=False))
    assert_failed(result, "address", url, retryable=False)
    assert result.status is None


def test_k2_redirect_from_a_public_page_to_a_private_one_is_refused() -> None:
    # 'news.test' resolves to a public address that the test network routes
    # to a server on 127.0.0.1; the page there redirects to loopback itself.
    with FaultServer() as internal, FaultServer() as public:
        internal.route("/admin", static(PAGE, content_type=HTML))
        public.route("/story", redirect(302, internal.url("/admin")))
        dns = StubDNS.fixed({"news.test": [PUBLIC]})
        url = f"http://news.test:{public.port}/story"
        result = fetch_pages([url], Settings(timeout=5, allow_private=False),
                             Network(dns, Routed({PUBLIC: public.port})))[0]
        reached = internal.count("/admin")
    assert_failed(result, "address", url, retryable=False)
    assert result.status == 302 and reached == 0


@pytest.mark.parametrize(("code", "retryable"), [(404, False), (410, False), (500, True),
                                                 (503, True), (429, True)])
def test_http_errors_are_failures_with_their_status(fault_server: FaultServer, code: int,
                                                    retryable: bool) -> None:
    url = fault_server.route("/err", status(code))
    result = fetch_one(url)
    assert_failed(result, "http", url, retryable=retryable)
    assert result.status == code and f"HTTP {code}" in (result.error or "")


@pytest.mark.parametrize(("body", "content_type"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>',
     "application/rss+xml"),
    (b'{"title": "not a page"}', "application/json"),
    (b"%PDF-1.7\n\x00\x00binary", "application/octet-stream"),
    (b"just some words, no markup at all", "text/plain"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00", "text/html"),  # a binary file sent as HTML
])
def test_not_html_is_a_failure(fault_server: FaultServer, body: bytes,
                               content_type: str) -> None:
    url = fault_server.route("/thing", static(body, content_type=content_type))
    result = fetch_one(url)
    assert_failed(result, "not-html", url, retryable=False)
    assert result.content_type == content_type


def test_html_served_with_no_useful_type_is_sniffed(fault_server: FaultServer) -> None:
    url = fault_server.route("/odd", static(b"\xef\xbb\xbf\n<!DOCTYPE html><html><p>hi",
                                            content_type="application/octet-stream"))
    assert fetch_one(url).ok


def test_feed_served_where_a_page_was_expected_is_refused_unread(
        fault_server: FaultServer) -> None:
    url = fault_server.route("/bomb", gzip_bomb())  # Content-Type: application/rss+xml
    result = fetch_one(url, Settings(timeout=5, allow_private=True, max_bytes=1_000_000))
    assert_failed(result, "not-html", url, retryable=False)


def test_n8_empty_body_is_a_failure(fault_server: FaultServer) -> None:
    url = fault_server.route("/empty", static(b"", content_type=HTML))
    assert_failed(fetch_one(url), "not-html", url, retryable=False)


def test_n2_closed_port_is_a_retryable_network_failure(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/page"
    assert_failed(fetch_one(url), "network", url, retryable=True)


def test_bad_url_and_scheme_are_refused_not_raised() -> None:
    for url in ("ftp://example.org/a", "not a url at all", "http://"):
        result = fetch_one(url)
        assert_failed(result, "address", url, retryable=False)


def test_pages_and_feeds_share_the_fetchers_per_host_limit(fault_server: FaultServer) -> None:
    page = fault_server.route("/slow", sleep_then(0.2, static(PAGE, content_type=HTML)))
    feed = fault_server.route("/feed", sleep_then(0.2, static(b"<rss version='2.0'/>")))
    settings = Settings(timeout=10, allow_private=True, per_host=2, concurrency=10)

    async def run() -> tuple[list[PageResult], list[FetchResult]]:
        async with Fetcher(settings) as fetcher:
            pages = asyncio.gather(*(fetch_page(fetcher, page) for _ in range(4)))
            feeds = asyncio.gather(*(fetcher.fetch(FeedState(f"f{i}", feed)) for i in range(2)))
            return list(await pages), list(await feeds)

    pages, feeds = asyncio.run(run())
    assert all(r.ok for r in pages) and all(f.failure is None for f in feeds)
    assert fault_server.max_in_flight == 2


def test_one_hung_page_leaves_the_others_alone(fault_server: FaultServer) -> None:
    hang = fault_server.route("/hang", never_reply)
    good = fault_server.route("/page", static(PAGE, content_type=HTML))
    settings = Settings(timeout=0.5, connect_timeout=0.5, allow_private=True)
    bad, ok = fetch_pages([hang, good], settings)
    assert bad.error_kind == "timeout" and ok.ok and ok.body == PAGE


def test_page_from_the_feed_server(server: FeedServer) -> None:
    server.put("/article.html", PAGE, HTML)
    result = fetch_one(server.url("/article.html"))
    assert result.ok and result.body == PAGE

