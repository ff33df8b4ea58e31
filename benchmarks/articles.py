"""Article text throughput: the first poll of N teaser feeds whose items link
to real article pages (the shared article-extraction corpus, else the tests'
two pages), served from loopback addresses by the tests' feed server.

    python -m benchmarks.articles [--feeds 50] [--items 10]

Prints feeds/s of the feed part and articles/s of the article part with
``article_text: always``, and the feed part alone with ``article_text: never``
beside it. Figures are measured, never asserted.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from benchmarks.common import ROOT, serve_feeds, table
from monitor.config import parse_config
from monitor.poll import run_poll
from monitor.store import Store
from tests.feedserver import FeedServer

PAGES = ROOT.parent / "shared" / "data" / "article-extraction" / "html"
TEST_PAGES = ROOT / "tests" / "data" / "articles"


def _pages() -> list[bytes]:
    if PAGES.is_dir():
        return [gzip.decompress(p.read_bytes()) for p in sorted(PAGES.glob("*.html.gz"))]
    return [p.read_bytes() for p in sorted(TEST_PAGES.glob("*.html"))]


def _rss(feed: int, links: list[str]) -> bytes:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>Story {feed}-{n}</title><link>{url}</link><guid>{feed}-{n}</guid>"
        f"<description>A teaser.</description>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=n))}</pubDate></item>"
        for n, url in enumerate(links))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {feed}</title>'
            f"<link>http://example.org/</link><description>d</description>{items}"
            "</channel></rss>").encode()


def _serve(host: FeedServer, feeds: int, items: int, pages: list[bytes]) -> list[str]:
    urls = []
    for f in range(feeds):
        links = []
        for n in range(items):
            path = f"/a/{f}/{n}"
            host.put(path, pages[(f * items + n) % len(pages)], "text/html; charset=utf-8")
            links.append(host.url(path, f))
        host.put(f"/feed/{f}", _rss(f, links), "application/rss+xml")
        urls.append(host.url(f"/feed/{f}", f))
    return urls


def _config(urls: list[str], mode: str, budget: int) -> str:
    feeds = "".join(f"  - id: f{i}\n    url: {u}\n" for i, u in enumerate(urls))
    return (f"settings:\n  allow_private: true\n  article_text: {mode}\n"
            f"  article_budget: {budget}\n  parse_workers: 0\n"
            f"feeds:\n{feeds}topics:\n  - id: t\n    name: t\n    query: methane\n")


def run(feeds: int, items: int) -> list[list[object]]:
    pages = _pages()
    rows: list[list[object]] = []
    with serve_feeds(10) as host:
        urls = _serve(host, feeds, items, pages)
        for mode in ("never", "always"):
            with tempfile.TemporaryDirectory() as tmp:
                config = parse_config(_config(urls, mode, feeds * items))
                with Store(Path(tmp) / "m.db") as store:
                    store.sync_feeds(config.feeds, datetime.now(UTC))
                    store.sync_topics(config.topics, datetime.now(UTC))
                    t0 = time.perf_counter()
                    summary = run_poll(config, store, force=True)
                    wall = time.perf_counter() - t0
                a = summary.articles
                feed_part = wall - a.seconds if a.fetched else wall
                rows.append([mode, len(summary.results), f"{len(summary.results) / feed_part:.1f}",
                             a.fetched, a.ok,
                             f"{a.fetched / a.seconds:.1f}" if a.fetched and a.seconds else "-",
                             f"{wall:.2f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--items", type=int, default=10)
    args = ap.parse_args()
    rows = run(args.feeds, args.items)
    print(table(["article_text", "feeds", "feeds/s (feed part)", "articles", "ok",
                 "articles/s", "poll s"], rows))


if __name__ == "__main__":
    main()
