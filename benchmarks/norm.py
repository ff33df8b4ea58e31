"""What the archive's norm column costs (issue 14): ingest, search, the
migration and its backfill, on real-size items of the shared real-feed corpus.

    python -m benchmarks.norm ingest --items 20000
    python -m benchmarks.norm build ARCHIVE --items 200000
    python -m benchmarks.norm search ARCHIVE
    python -m benchmarks.norm migrate ARCHIVE   # an archive built before m010

Run ``ingest``, ``build`` and ``search`` once with the code before the norm
column (PYTHONPATH=<a checkout of it>) and once with this one, back to back:
the machine is shared, so compare figures of one run only. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.storage import OLD, copies, real_entries, write
from monitor.store import Store
from monitor.types import FeedConfig

FEEDS = 50
SEARCHES = (
    ("quoted (exact)", '"kazakhstan"'),
    ("word", "kazakhstan"),
    ("place", "zhanaozen"),
    ("phrase", '"unpaid wages"'),
    ("prefix", "strik*"),
    ("boolean", "(almaty OR astana) AND (strike OR protest*)"),
    ("Cyrillic prefix", "бастую*"),
    ("Cyrillic word", "Алматы"),
    ("Kazakh form", "Алматыдағы"),
    ("filler word", "report"),
    ("word, 1k matches", "election"),
    ("word with forms", "running"),
    ("two words", "python releases"),
    ("most items", "the"),
)


def _store(path: Path) -> Store:
    s = Store(path, check=False)
    s.sync_feeds([FeedConfig(id=f"f{i}", url=f"https://example.org/{i}", name=f"F{i}")
                  for i in range(FEEDS)], OLD)
    return s


def ingest(items: int) -> None:
    base = real_entries()
    with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "i.db") as s:
        entries = copies(base, items, "i", OLD)
        seconds = write(s, entries, FEEDS, OLD)
    print(f"ingest into an empty archive: {items:,} items in {seconds:.1f}s = "
          f"{items / seconds:,.0f} items/s")


def build(path: Path, items: int) -> None:
    base = real_entries()
    with _store(path) as s:
        seconds = write(s, copies(base, items, "a", OLD), FEEDS, OLD)
        s.checkpoint()
        s.conn.execute("PRAGMA optimize")
    print(f"built {path}: {items:,} items in {seconds:.1f}s = {items / seconds:,.0f} items/s")


def search(path: Path) -> None:
    with Store(path, check=False) as s:
        for label, query in SEARCHES:
            s.search(query)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                results = s.search(query)
                times.append(time.perf_counter() - t0)
            print(f"{label:28} {query:48} {len(results):3} stories  best "
                  f"{min(times) * 1000:7.1f} ms  median {statistics.median(times) * 1000:7.1f} ms")


def migrate(path: Path) -> None:
    t0 = time.perf_counter()
    with Store(path, check=False) as s:
        t1 = time.perf_counter()
        backlog = s.norm_backlog()
        batches: list[float] = []
        last = time.perf_counter()

        def tick(done: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            batches.append(now - last)
            last = now

        done = s.backfill_norm(progress=tick)
        t2 = time.perf_counter()
    print(f"migration (open + m010): {t1 - t0:.1f}s; backfill: {done:,} of {backlog:,} items "
          f"in {t2 - t1:.1f}s = {done / max(t2 - t1, 1e-9):,.0f} items/s; per batch "
          f"median {statistics.median(batches):.2f}s, worst {max(batches):.2f}s")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.norm")
    p.add_argument("what", choices=("ingest", "build", "search", "migrate"))
    p.add_argument("archive", nargs="?", type=Path)
    p.add_argument("--items", type=int, default=20_000)
    args = p.parse_args(argv)
    print(f"# {args.what} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    if args.what == "ingest":
        ingest(args.items)
    elif args.archive is None:
        p.error("ARCHIVE is needed")
    elif args.what == "build":
        build(args.archive, args.items)
    elif args.what == "search":
        search(args.archive)
    else:
        migrate(args.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
