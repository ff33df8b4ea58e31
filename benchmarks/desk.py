"""Desk page times on the large archive of benchmarks.digest (1M items, 100k hits).

Builds that archive with benchmarks.digest's own builder (full-text index
filled, as search needs it), shifted so that it ends now (the desk's periods
are relative to the clock), then requests each page ~20 times through the
real Starlette app as `monitor serve` builds it (one feeds.yaml cache per
process) and prints the median and worst of each. The goal (issue 17): under
200 ms a page.

    python -m benchmarks.desk [--items N --hits N --feeds N --days N] [--requests N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from benchmarks import digest as bd
from monitor.web.app import create_app, desk_monitors

GOAL = 0.2  # seconds
TOPIC = "kz-labour-protests"


def write_config(path: Path) -> None:
    path.write_text("topics:\n" + "".join(
        f"  - {{id: {tid}, name: \"{name}\", query: \"x\"}}\n" for tid, name in bd.TOPICS),
        encoding="utf-8")


def pages(client: TestClient) -> dict[str, str]:
    """The URL of each page measured; the story is the topic page's first."""
    topic = f"/topic/{TOPIC}?period=7d"
    found = re.search(r'href="/story\?key=([^"]+)" class="open"', client.get(topic).text)
    story = f"/story?key={found.group(1)}" if found else "/story?key=none"
    return {"overview": "/", "topic (7d)": topic, "topic (30d)": f"/topic/{TOPIC}?period=30d",
            "story": story, "search": "/search?q=unpaid%20wages",
            # a filler word of most items: the heaviest search of the archive
            "search (common)": "/search?q=report", "sources": "/sources"}


def measure(client: TestClient, url: str, requests: int) -> tuple[float, float, int]:
    status = client.get(url).status_code  # warm-up: the config read, SQLite's page cache
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        status = client.get(url).status_code
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="build the database here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-desk-") as tmp:
        path = args.keep or Path(tmp) / "bench.db"
        if not path.exists():
            # The builder dates everything from its NOW: the archive ends at this minute.
            bd.NOW = datetime.now(UTC).replace(second=0, microsecond=0)
            t0 = time.perf_counter()
            bd.build(path, items=args.items, hits=args.hits, feeds=args.feeds, days=args.days,
                     fts=True)
            print(f"built {args.items:,} items, {args.hits:,} hits, {args.feeds} feeds over "
                  f"{args.days} days in {time.perf_counter() - t0:.1f}s "
                  f"({path.stat().st_size / 1e6:.0f} MB)")
        config = Path(tmp) / "feeds.yaml"
        write_config(config)
        print(f"{'page':<16} {'median':>9} {'worst':>9}  status  ({args.requests} requests each)")
        with TestClient(create_app(desk_monitors(str(config), str(path)))) as client:
            for name, url in pages(client).items():
                med, worst, status = measure(client, url, args.requests)
                print(f"{name:<16} {med * 1000:>7.1f}ms {worst * 1000:>7.1f}ms  {status}  "
                      f"{'ok' if med < GOAL else 'SLOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
