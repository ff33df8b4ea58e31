"""The storage settings chosen by measurement: page cache and mmap sizes, the
incremental-vacuum batch, and the integrity check's cost, on an archive of
real-size items.

    python -m benchmarks.storage                 # 200,000 items
    python -m benchmarks.storage --items 50000   # quicker

Builds one archive from the entries of the shared real-feed corpus (parsed by
monitor's own parser; each entry stored many times under new keys, so items
have real titles and summaries), then on a copy of it per setting measures
the ingest of new items the way polls write them (``commit_polls``, 200 items
per feed), a quick_check, and, after pruning half the archive, the time of
each ``PRAGMA incremental_vacuum`` batch. Figures are printed, never asserted:
the machine is shared, so run the settings back to back and compare them
within one run only.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import SHARED_FEEDS, load_corpus, table
from monitor.parse import parse_feed
from monitor.store import PollWrite, Store
from monitor.types import Entry, FeedConfig, FeedUpdate

OLD = datetime(2024, 1, 1, tzinfo=UTC)
PER_POLL = 200
# (cache_size in KiB, mmap_size in MiB): SQLite's default first.
SETTINGS = ((2000, 0), (16384, 0), (65536, 0), (16384, 256), (65536, 1024))


def real_entries(folder: Path = SHARED_FEEDS) -> list[Entry]:
    out: list[Entry] = []
    for feed in load_corpus(folder):
        try:
            parsed = parse_feed(feed.body, url="https://example.org/" + feed.name,
                                headers=(), fetched_at=OLD)
        except Exception:  # a corpus file our parser refuses is not a storage figure
            continue
        out += parsed.entries
    return out


def copies(base: Sequence[Entry], n: int, prefix: str, when: datetime) -> list[Entry]:
    rng = random.Random(len(prefix))
    out = []
    for i in range(n):
        e = base[rng.randrange(len(base))]
        out.append(replace(e, key=f"{prefix}{i}", url=f"https://example.org/{prefix}{i}",
                           content_hash=f"{prefix}{i}", published_at=when))
    return out


def write(store: Store, entries: Sequence[Entry], feeds: int, when: datetime) -> float:
    t0 = time.perf_counter()
    for n, start in enumerate(range(0, len(entries), PER_POLL)):
        upd = FeedUpdate(feed_id=f"f{n % feeds}", fetched_at=when, outcome="new",
                         next_due_at=when + timedelta(minutes=15), http_status=200)
        store.commit_polls([PollWrite(upd, new=list(entries[start:start + PER_POLL]))])
    return time.perf_counter() - t0


def build(path: Path, base: Sequence[Entry], n: int, feeds: int) -> float:
    with Store(path, check=False) as s:
        s.sync_feeds([FeedConfig(id=f"f{i}", url=f"https://example.org/{i}", name=f"F{i}")
                      for i in range(feeds)], OLD)
        seconds = write(s, copies(base, n, "a", OLD), feeds, OLD)
        s.checkpoint()
        s.conn.execute("PRAGMA optimize")
    return seconds


def tune(store: Store, cache_kib: int, mmap_mib: int) -> None:
    store.conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    store.conn.execute(f"PRAGMA mmap_size = {mmap_mib * 1024 * 1024}")


def ingest(archive: Path, folder: Path, base: Sequence[Entry], new: int, feeds: int,
           cache_kib: int, mmap_mib: int) -> tuple[float, float]:
    """New items per second into a copy of ``archive``, and its quick_check seconds."""
    path = folder / f"c{cache_kib}-m{mmap_mib}.db"
    shutil.copy(archive, path)
    now = datetime.now(UTC)
    with Store(path, check=False) as s:
        tune(s, cache_kib, mmap_mib)
        seconds = write(s, copies(base, new, f"n{cache_kib}-{mmap_mib}-", now), feeds, now)
        check = s.quick_check()
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return new / seconds, check


def vacuum_batches(archive: Path, folder: Path, pages: Sequence[int]) -> list[list[object]]:
    """Prune the archive (every item is old), then time incremental_vacuum batches."""
    rows: list[list[object]] = []
    for n in pages:
        path = folder / f"v{n}.db"
        shutil.copy(archive, path)
        with Store(path, check=False) as s:
            s.prune(86400, datetime.now(UTC), batch=20000)
            free = s.free_pages()
            times = []
            for _ in range(10):  # only batches that had pages to free
                if s.free_pages() < n:
                    break
                t0 = time.perf_counter()
                s._vacuum_batch(n)
                times.append(time.perf_counter() - t0)
            if not times:
                continue
            rows.append([n, free, f"{statistics.median(times) * 1000:.0f}",
                         f"{max(times) * 1000:.0f}"])
        path.unlink()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.storage")
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settings", default=",".join(f"{c}:{m}" for c, m in SETTINGS),
                    help="cache KiB:mmap MB pairs, comma-separated")
    ap.add_argument("--batches", default="500,1000,2000,8000",
                    help="incremental_vacuum pages per batch to time")
    args = ap.parse_args(argv)
    settings = [(int(c), int(m)) for c, m in (p.split(":") for p in args.settings.split(","))]
    batches = [int(n) for n in args.batches.split(",")]
    base = real_entries()
    if not base:
        print(f"no corpus under {SHARED_FEEDS}", file=sys.stderr)
        return 1
    mean = statistics.mean(len(e.title) + len(e.summary) for e in base)
    print(f"{len(base)} real entries, {mean:.0f} characters of title and summary on average")
    with tempfile.TemporaryDirectory(prefix="monitor-storage-") as tmp:
        folder = Path(tmp)
        archive = folder / "archive.db"
        built = build(archive, base, args.items, args.feeds)
        size = archive.stat().st_size / 1e6
        print(f"archive: {args.items} items, {size:.0f} MB, built at {args.items / built:.0f} "
              "items/s")
        rates: dict[tuple[int, int], list[float]] = {k: [] for k in settings}
        checks: dict[tuple[int, int], list[float]] = {k: [] for k in settings}
        for r in range(args.rounds):  # interleaved, so a busy moment hits every setting
            for key in settings if r % 2 == 0 else settings[::-1]:
                rate, check = ingest(archive, folder, base, args.new, args.feeds, *key)
                rates[key].append(rate)
                checks[key].append(check)
                print(f"round {r + 1}: cache {key[0]} KiB, mmap {key[1]} MB: {rate:.0f} "
                      f"items/s, quick_check {check:.2f}s", flush=True)
        rows = [[f"{c / 1024:.0f} MB", f"{m} MB",
                 " / ".join(f"{x:.0f}" for x in rates[(c, m)]),
                 f"{statistics.median(rates[(c, m)]):.0f}",
                 f"{statistics.median(checks[(c, m)]):.2f}"] for c, m in settings]
        print(table(["cache_size", "mmap_size", "new items/s per round", "median",
                     "quick_check s"], rows))
        print(table(["pages per batch", "free pages", "median ms", "max ms"],
                    vacuum_batches(archive, folder, batches)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
